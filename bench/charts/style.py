"""What every chart shares: one colour per pattern, axes, markers, footers, saving.

Charts are derived from a run's results.json alone. Every chart states its question in
its title, puts units on its axes, uses the same colour for a pattern everywhere, draws
whiskers from the smallest to the largest repeat, writes errors and failures next to
their point, and carries the machine, code version and calibration in its footer; a run
over a network path adds the path, as configured and as measured.
"""

from __future__ import annotations

import io
import textwrap
from contextvars import ContextVar
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from PIL import Image

from bench import figures
from bench.environment import describe as describe_environment
from bench.registry import PATTERNS
from bench.results_model import Point, PointConfig, RunDocument

PERCENTILES = (("p50_us", "p50"), ("p90_us", "p90"), ("p99_us", "p99"), ("p999_us", "p99.9"))
FALLBACK_COLOR = "#7f7f7f"
SWEEP_AXIS_LABELS = {
    "load.concurrency": "concurrency (requests in flight)",
    "load.rate_per_s": "offered rate (requests per second)",
    "load.connections": "connections",
    "load.generators": "generator processes",
    "payload.size_bytes": "payload size (bytes)",
    "payload.users": "users in the dataset",
    "workload.per_page": "users per page",
    "workload.rate_per_s": "events published per second",
    "workload.subscribers": "subscribers",
    "network.rtt_ms": "round-trip time (ms)",
    "network.loss_pct": "loss (%)",
    "network.jitter_ms": "jitter (ms)",
    "network.down_mbit": "bandwidth, server to client (Mbit/s)",
    "network.up_mbit": "bandwidth, client to server (Mbit/s)",
}
HOLLOW_NOTE = (
    "hollow marker: generator-bound (the load generator was the limit, see the README): "
    "throughput at least, latency at most this; never ranked"
)
PATH_BOUND_NOTE = (
    "hollow marker over a network path may also be path-bound (the network emulator was "
    "the limit: its CPU, or its queue dropping what the path's settings do not explain)"
)
BOUND_NOTE = (
    "upward triangle: losses (lost events, timeouts, unsent requests) counted at the time "
    "waited reach this percentile: the latency is at least this"
)


def color_of(pattern: str) -> str:
    found = PATTERNS.get(pattern)
    return found.color if found else FALLBACK_COLOR


def by_pattern(document: RunDocument) -> dict[str, list[Point]]:
    grouped: dict[str, list[Point]] = {}
    for point in document.points:
        grouped.setdefault(point.pattern, []).append(point)
    return grouped


def latency_ms(point: Point, name: str) -> tuple[float, float, float] | None:
    """(pooled, smallest trial, largest trial) in ms; None when the samples do not
    support the percentile."""
    found = figures.latency(point, name).as_figure()
    return (found.value, found.low, found.high) if found else None


def problems(point: Point) -> str:
    """What went wrong at a point, short enough to write next to its marker."""
    if point.status in ("failed", "invalid", "skipped", "pending"):
        return point.status
    parts = []
    completeness = figures.completeness(point)
    if completeness is not None and completeness.value < 1:
        parts.append(f"{completeness.value:.1%} delivered")
    faults = figures.faults(point)
    if faults:
        parts.append(f"{faults:,} err")
    if point.summary.unsent:
        parts.append(f"{point.summary.unsent:,} unsent")
    if point.status in ("partial", "interrupted"):
        counted, total = figures.trials_counted(point)
        parts.append(f"{point.status} ({counted} of {total} trials)")
    return ", ".join(parts)


def notes_for(document: RunDocument, latency: bool = True) -> str:
    """The legend lines a chart needs for the markers it draws."""
    points = document.points
    notes = []
    if any(figures.client_bound(p) for p in points):
        notes.append(HOLLOW_NOTE)
    if any(t.extra.path and t.extra.path.path_bound for p in points for t in p.trials):
        notes.append(PATH_BOUND_NOTE)
    if latency and any(p.summary.latency_us.lower_bound for p in points):
        notes.append(BOUND_NOTE)
    return "\n".join(notes)


def footer(document: RunDocument, width_chars: int = 180) -> str:
    """The machine, code, timing and calibration of a run, and its network path if it
    crossed one (those lines wrapped at `width_chars`)."""
    run = document.run
    environment = describe_environment(document.environment.to_dict())
    lines = [f"run {run.id} ({run.status}), {environment}"]
    placement = run.placement.note
    config = document.points[0].config if document.points else PointConfig()
    timing = (
        f"warm-up {config.warmup_s:g} s, {config.duration_s:g} s measured, "
        f"{config.repeats} repeat(s) in rotating order; markers: all repeats pooled, "
        "whiskers: smallest to largest repeat"
    )
    lines.append(f"{timing}; {placement}" if placement else timing)
    lines += calibration_lines(document, width_chars)
    return "\n".join(lines + network_lines(document, width_chars))


def calibration_lines(document: RunDocument, width_chars: int) -> list[str]:
    """The calibration line wrapped at `width_chars` (with the push references it no
    longer fits one line of a chart)."""
    return textwrap.wrap(calibration_line(document), width_chars, subsequent_indent="    ")


def network_lines(document: RunDocument, width_chars: int) -> list[str]:
    """The path a run's points crossed, as configured and as measured, wrapped at
    `width_chars`: none on loopback."""
    from bench.charts.network import network_footer  # the path's figures, read from the run

    return [
        wrapped
        for line in network_footer(document)
        for wrapped in textwrap.wrap(line, width_chars, subsequent_indent="    ")
    ]


def calibration_line(document: RunDocument) -> str:
    """One line on the generator calibration a run used, or why it has none."""
    calibration = document.calibration
    if not calibration:
        why = document.run.calibration_problem or "run `bench calibrate`"
        return f"no generator calibration for this run: {why}"
    from bench.calibrate import describe_ratios

    return describe_ratios(calibration)


# Where charts go and in which formats; publishing sets PNG only (SVGs stay with the runs).
FORMATS: ContextVar[tuple[str, ...]] = ContextVar("chart_formats", default=("png", "svg"))
DPI = 130


def save(figure: Figure, out_dir: Path, name: str) -> list[Path]:
    """The figure as PNG (palette-quantised: a third of the size, no visible change) and,
    unless publishing, SVG."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix in FORMATS.get():
        path = out_dir / f"{name}.{suffix}"
        if suffix == "png":
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=DPI)
            image = Image.open(buffer).convert("RGB").quantize(256, Image.Quantize.MEDIANCUT)
            image.save(path, optimize=True)
        else:
            figure.savefig(path, dpi=DPI)
        paths.append(path)
    plt.close(figure)
    return paths


def finish(
    figure: Figure, document: RunDocument, out_dir: Path, name: str, note: str = ""
) -> list[Path]:
    """Footer, then the figure saved into `out_dir`; returns the files."""
    width_chars = int(figure.get_figwidth() * FOOTER_CHARS_PER_IN)
    # The layouts leave room for the usual footer, calibration on one line: make room
    # for the lines beyond it.
    extra = len(network_lines(document, width_chars))
    extra += len(calibration_lines(document, width_chars)) - 1
    if extra > 0:
        make_room_below(figure, extra * FOOTER_LINE_IN)
    text = footer(document, width_chars) + (f"\n{note}" if note else "")
    figure.text(0.01, 0.01, text, fontsize=7, color="#444444", va="bottom", ha="left")
    return save(figure, out_dir, name)


FOOTER_LINE_IN = 7 * 1.25 / 72  # one 7-point footer line, with its leading, in inches
FOOTER_CHARS_PER_IN = 17  # 7-point DejaVu Sans: about 0.55 em a character, with a margin


def make_room_below(figure: Figure, inches: float) -> None:
    """Make the figure `inches` taller at the bottom, everything already drawn (panels,
    titles, legends) staying where it was relative to the top."""
    height = figure.get_figheight()
    taller = height + inches

    def moved(y: float) -> float:
        return (y * height + inches) / taller

    # Read every position in figure fractions before the size changes them.
    legends = [
        (legend, legend.get_bbox_to_anchor().transformed(figure.transFigure.inverted()))
        for legend in figure.legends
    ]
    for axis in figure.axes:
        box = axis.get_position()
        axis.set_position([box.x0, moved(box.y0), box.width, box.height * height / taller])
    for text in figure.texts:
        x, y = text.get_position()
        text.set_position((x, moved(y)))
    figure.set_figheight(taller)
    for legend, box in legends:
        anchor = (box.x0, moved(box.y0), box.width, box.height * height / taller)
        legend.set_bbox_to_anchor(anchor, transform=figure.transFigure)


def sweep_axis(axis, document: RunDocument, values: list[float]) -> None:
    parameter = document.run.sweep_parameter or ""
    axis.set_xlabel(SWEEP_AXIS_LABELS.get(parameter, parameter))
    axis.margins(x=0.12)
    positive = [v for v in values if v and v > 0]
    # Log only when every value can sit on it: a sweep from 0 (no delay, no loss) cannot.
    if positive and len(positive) == len(values) and max(positive) / min(positive) >= 8:
        axis.set_xscale("log")
    axis.set_xticks(values)
    axis.set_xticklabels([f"{v:g}" for v in values])
    axis.minorticks_off()


def log_latency_axis(axis, x: bool = False) -> None:
    """Log scale with plain numbers (0.2, 0.5, 1, 2, 5 ...), not powers of ten."""
    which = axis.xaxis if x else axis.yaxis
    if x:
        axis.set_xscale("log")
    else:
        axis.set_yscale("log")
    which.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    which.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    which.set_minor_formatter(NullFormatter())


def mark(axis, x: float, y: float, point: Point, color: str, bound: str = "") -> None:
    """A point's marker: filled; hollow when generator-bound; a triangle pointing up when
    the figure is a lower bound (losses counted at the time waited)."""
    hollow = figures.client_bound(point)
    axis.plot(
        [x],
        [y],
        marker="^" if bound == "at_least" and not hollow else "o",
        markersize=7,
        color=color,
        markerfacecolor="white" if hollow else color,
        zorder=3,
    )
    problem = problems(point)
    if problem:
        axis.annotate(
            problem, (x, y), textcoords="offset points", xytext=(4, 6), fontsize=7, color="#b00020"
        )


def whisker(axis, x: float, low: float, high: float, color: str) -> None:
    axis.plot([x, x], [low, high], color=color, linewidth=1.2, alpha=0.8, zorder=2)


def legend_below(figure: Figure, axis, y: float) -> None:
    """One legend for every panel, below them: inside one it would cover the lines it names."""
    handles, labels = axis.get_legend_handles_labels()
    figure.legend(
        handles,
        labels,
        loc="lower center",
        ncol=3,
        fontsize=7.5,
        bbox_to_anchor=(0.5, y),
        frameon=False,
    )
