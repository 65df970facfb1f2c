"""Ranking a scenario's patterns on its headline figure, claiming no order the data cannot
support.

The rules, in order:

1. **Not ranked** (listed with the reason): a point that did not run every trial, one
   whose headline percentile the samples do not support ("n/a (340 samples)"), and an
   ablation variant (a pattern with a mechanism switched off: it is there to be compared
   with its pattern, not to compete).
2. **Bounds, not ranks**: a generator-bound point, where the generator can move the
   figure, counts only as the bound it is (throughput at least, latency at most this): it
   gets no rank of its own, but no other point is ranked ahead of it unless clearly ahead
   of even that bound. It can neither win nor lose, and nobody wins a contest it might.
3. **Losses last on latency**: a point that lost events, timed out, left requests unsent
   or answered wrongly never ranks ahead of a complete one on a latency figure (its
   losses are also counted in the latency itself, at the time waited).
4. **Clearly ahead, pairwise**: a point's rank is one more than the number of points
   clearly ahead of it (its range across repeats entirely better, widened by the
   generator's own delay on latency); points no other point is clearly ahead of share
   rank 1, and so on. Nothing is inferred along chains of neighbours.
5. **Across runs**: with several independent runs of the same scenario, one point is
   clearly ahead of another only if every run puts it clearly ahead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench import figures
from bench.kinds import kind_of
from bench.results_model import Point, RunDocument

HIGHER_IS_BETTER = {"throughput_per_s", "completeness"}
LATENCY_HEADLINES = ("p50_us", "p90_us", "p99_us", "p999_us")
# Figures a saturated generator can move: its points are not ranked on them.
GENERATOR_SENSITIVE = {
    "throughput_per_s",
    "completeness",
    "server_cpu_s_per_1000",
    *LATENCY_HEADLINES,
}
HEADLINE_LABELS = {
    "throughput_per_s": "throughput (per second)",
    "p50_us": "p50 latency (ms)",
    "p90_us": "p90 latency (ms)",
    "p99_us": "p99 latency (ms)",
    "p999_us": "p99.9 latency (ms)",
    "wire_bytes_per_message": "bytes on the wire per message",
    "server_cpu_s_per_1000": "server CPU per 1,000 (ms)",
    "completeness": "delivered / expected",
}


def headline(document: RunDocument) -> tuple[str, object]:
    """The figure and sweep value a scenario is ranked on."""
    report = document.run.report
    points = document.points
    open_loop = bool(points) and points[0].config.model == "open"
    latency_first = kind_of(document).ranked_latency_first(open_loop)
    field = report.headline or ("p99_us" if latency_first else "throughput_per_s")
    values = sorted({p.sweep_value for p in points}, key=lambda v: (v is None, v))
    at = report.at
    if at is None:
        at = values[-1] if values else None
    return field, at


@dataclass(frozen=True)
class Entry:
    """One pattern's headline figure at the ranked point, or why it is not ranked."""

    pattern: str
    label: str
    figure: figures.Figure | None  # in display units (ms for latency)
    excluded: str  # "" when it takes part; otherwise why it does not
    lossy: bool
    caveat: str  # short notes for the reader: "95.1% delivered", "1,204 errors"
    bounded: bool = False  # generator-bound: takes part as a bound, without a rank

    def text(self, field: str) -> str:
        if self.figure is None:
            return self.excluded
        prefix = {"at_least": ">= ", "at_most": "<= "}.get(self.figure.bound, "")
        return prefix + format_value(field, self.figure.value)


@dataclass(frozen=True)
class Ranked:
    rank: int | None  # None: not ranked (see entry.excluded)
    tied: bool
    entry: Entry


def format_value(field: str, value: float) -> str:
    if field == "completeness":
        return f"{value:.2%}"
    if field in LATENCY_HEADLINES:
        return figures.format_ms(value)
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _figure(point: Point, field: str) -> tuple[figures.Figure | None, str]:
    """(the figure in display units, why there is none)."""
    if field in LATENCY_HEADLINES:
        found = figures.latency(point, field)
        if not found.supported:
            needed = f"{found.needed:,} needed"
            return None, f"n/a ({found.samples:,} samples, {needed})" if found.samples else ""
        return found.as_figure(), ""
    if field == "completeness":
        return figures.completeness(point), ""
    if field == "throughput_per_s":
        return figures.throughput(point), ""
    found = figures.spread(point, field)
    if found is not None and field == "server_cpu_s_per_1000":
        found = found.scaled(1000)
    return found, ""


def caveat(point: Point, field: str) -> str:
    notes = []
    if figures.client_bound(point) and field in GENERATOR_SENSITIVE:
        notes.append("generator-bound, not ranked")
    option = point.latency_set_by
    if option and field in LATENCY_HEADLINES:
        value = point.config.options.get(option)
        notes.append(f"set by {option} = {value:g}" if value is not None else f"set by {option}")
    completeness = figures.completeness(point)
    if field != "completeness" and completeness is not None and completeness.value < 1:
        notes.append(f"{completeness.value:.1%} delivered")
    faults = figures.faults(point)
    if faults:
        notes.append(f"{faults:,} errors")
    unsent = point.summary.unsent
    if unsent:
        notes.append(f"{unsent:,} unsent")
    return ", ".join(notes)


def entries(document: RunDocument, field: str, at: object) -> list[Entry]:
    found = []
    for point in document.points:
        if point.sweep_value != at:
            continue
        figure, why_not = _figure(point, field)
        bounded = figures.client_bound(point) and field in GENERATOR_SENSITIVE
        if figure is None:
            excluded = why_not or point.status
        elif point.status != "ok":
            excluded = f"{point.status}: {figures.trials_note(point) or 'not every trial counts'}"
        elif point.ablation:
            excluded = "an ablation: compared, not ranked"
        else:
            excluded = ""
        if figure is not None and bounded and not excluded:
            figure = figures.Figure(
                figure.value,
                figure.low,
                figure.high,
                "at_least" if field in HIGHER_IS_BETTER else "at_most",
            )
        found.append(
            Entry(
                point.pattern,
                point.pattern_label,
                figure,
                excluded,
                figures.lossy(point),
                caveat(point, field),
                bounded,
            )
        )
    return found


def _interval(entry: Entry) -> tuple[float, float]:
    figure = entry.figure
    low, high = min(figure.low, figure.value), max(figure.high, figure.value)
    if figure.bound == "at_least":
        high = math.inf  # a lower bound: the truth may lie anywhere above
    elif figure.bound == "at_most":
        low = 0.0
    return low, high


def clearly_better(a: Entry, b: Entry, field: str) -> bool:
    """a beats b beyond the spread of both (and, on latency, a lost nothing b did not)."""
    if field in LATENCY_HEADLINES and a.lossy and not b.lossy:
        return False  # rule 2: a lossy point is never ahead of a complete one
    if field in LATENCY_HEADLINES and b.lossy and not a.lossy:
        return True
    (a_low, a_high), (b_low, b_high) = _interval(a), _interval(b)
    if field in HIGHER_IS_BETTER:
        return a_low > b_high
    return a_high < b_low


def _sort_key(entry: Entry, field: str) -> tuple:
    lossy_last = field in LATENCY_HEADLINES and entry.lossy
    value = entry.figure.value
    return (lossy_last, -value if field in HIGHER_IS_BETTER else value)


def order(runs: list[list[Entry]], field: str) -> list[Ranked]:
    """Rank one pattern set measured in one or more runs (rules 2 to 5)."""
    by_pattern: dict[str, list[Entry]] = {}
    for run in runs:
        for entry in run:
            by_pattern.setdefault(entry.pattern, []).append(entry)
    taking_part, excluded = [], []
    for seen in by_pattern.values():
        reason = next((e.excluded for e in seen if e.excluded), "")
        if reason or len(seen) < len(runs):
            excluded.append(Ranked(None, False, _combined(seen, reason or "not in every run")))
        else:
            taking_part.append(seen)

    def ahead(a: list[Entry], b: list[Entry]) -> bool:
        return all(clearly_better(x, y, field) for x, y in zip(a, b, strict=True))

    ranks = []
    for seen in taking_part:
        beaten_by = sum(1 for other in taking_part if other is not seen and ahead(other, seen))
        ranks.append((1 + beaten_by, seen))
    ranks.sort(key=lambda item: (item[0], _sort_key(_combined(item[1]), field)))
    shared: dict[int, int] = {}
    for rank, _ in ranks:
        shared[rank] = shared.get(rank, 0) + 1
    result = []
    for rank, seen in ranks:
        entry = _combined(seen)
        placed = None if any(e.bounded for e in seen) else rank
        result.append(Ranked(placed, shared[rank] > 1, entry))
    return result + excluded


def _combined(seen: list[Entry], excluded: str | None = None) -> Entry:
    """One entry for a pattern seen in several runs: the mean value, the widest range."""
    first = seen[0]
    shown = [e.figure for e in seen if e.figure is not None]
    figure = None
    if shown:
        figure = figures.Figure(
            sum(f.value for f in shown) / len(shown),
            min(f.low for f in shown),
            max(f.high for f in shown),
            next((f.bound for f in shown if f.bound), ""),
        )
    return Entry(
        first.pattern,
        first.label,
        figure,
        first.excluded if excluded is None else excluded,
        any(e.lossy for e in seen),
        "; ".join(sorted({e.caveat for e in seen if e.caveat})),
        any(e.bounded for e in seen),
    )


def rank(document: RunDocument) -> tuple[str, object, list[Ranked]]:
    """Patterns in order, best first, from one run; not-ranked ones last."""
    field, at = headline(document)
    return field, at, order([entries(document, field, at)], field)


def rank_runs(documents: list[RunDocument]) -> tuple[str, object, list[Ranked]]:
    """The order every one of these runs of one scenario agrees on (rule 4)."""
    field, at = headline(documents[0])
    return field, at, order([entries(d, field, at) for d in documents], field)


def ranking_text(ranked: list[Ranked]) -> str:
    """'1. rest, 2= grpc, 2= websocket; not ranked: soap (generator-bound)'."""
    placed = [f"{r.rank}{'=' if r.tied else '.'} {r.entry.pattern}" for r in ranked if r.rank]
    others = [
        f"{r.entry.pattern} ({r.entry.excluded or 'generator-bound: a bound, not a rank'})"
        for r in ranked
        if r.rank is None
    ]
    text = ", ".join(placed) or "nothing ranked"
    return text + (f"; not ranked: {', '.join(others)}" if others else "")


def signature(ranked: list[Ranked]) -> list[tuple]:
    """What two rankings must share to agree: each pattern's rank, tie or exclusion."""
    return sorted((r.entry.pattern, r.rank, r.tied) for r in ranked)
