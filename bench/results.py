"""The run folder: `results.json` (the documented, versioned schema), `summary.csv`, the
scenario file as it was run, server logs, and `results/latest` pointing at the newest run.

`results.json` is rewritten atomically after every trial, so a crash or a Ctrl-C keeps
everything measured until then. Its reader is bench.results_model (`read_run` here gives
the typed document, `load_run` the same checked document as plain dicts, for readers that
still take them); docs/results-schema.md is generated from its models.
`run_summary_table` is what a run measured, as a terminal shows it at the run's end.
"""

from __future__ import annotations

import json
import os
import textwrap
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from bench import figures
from bench.kinds import kind_of
from bench.metrics import TrialResult, summarize
from bench.ranking import HEADLINE_LABELS, entries, headline
from bench.results_model import POINT_STATUSES as POINT_STATUSES  # imported from here
from bench.results_model import (
    RESULTS_FILE,
    RESULTS_FORMAT,
    Point,
    RunDocument,
    Summary,
    as_run,
    load,
    parse,
    read_json,
    results_path,
)
from bench.results_model import ResultsUnreadable as ResultsUnreadable  # imported from here

SCHEMA_VERSION = RESULTS_FORMAT  # the name results.json gives it
SUMMARY_FILE = "summary.csv"
LATEST_LINK = "latest"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def point_status(trial_statuses: set[str]) -> str:
    """A point's status from its trials' (metrics.TRIAL_STATUSES). With no ok trial, a
    trial that broke outranks one that merely measured nothing: "failed" names the more
    urgent fault, and "invalid" is kept for points where the pattern ran but its figures
    cannot be used."""
    if "interrupted" in trial_statuses:
        return "interrupted"
    if trial_statuses == {"skipped"}:
        return "skipped"
    if trial_statuses == {"ok"}:
        return "ok"
    if "ok" in trial_statuses:
        return "partial"
    if trial_statuses == {"invalid"}:
        return "invalid"
    return "failed"


@dataclass
class PointRecord:
    """One pattern at one point of the scenario, with all its trials."""

    point: int
    label: str
    sweep_parameter: str | None
    sweep_value: float | int | None
    pattern: str
    pattern_label: str
    config: dict
    ablation: str = ""  # a variant with a mechanism switched off: which (see patterns.py)
    latency_set_by: str = ""  # the option that decides its latency, if one does
    status: str = "pending"  # see POINT_STATUSES
    error: str | None = None
    trials: list[TrialResult] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    def add_trial(self, trial: TrialResult) -> None:
        self.trials.append(trial)
        self.summary = summarize(self.trials)
        self.status = point_status({t.status for t in self.trials})
        errors = [t.error for t in self.trials if t.error]
        self.error = errors[-1] if errors else None


def make_run_dir(results_dir: Path, scenario_name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = results_dir / f"{stamp}-{scenario_name}"
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = results_dir / f"{stamp}-{scenario_name}-{suffix}"
    run_dir.mkdir(parents=True)
    return run_dir


def point_latest(results_dir: Path, run_dir: Path) -> None:
    """Make `results/latest` a relative symlink to `run_dir`, replaced atomically."""
    link = results_dir / LATEST_LINK
    partial = results_dir / f".{LATEST_LINK}.partial"
    partial.unlink(missing_ok=True)
    partial.symlink_to(run_dir.name)
    os.replace(partial, link)


def write_json(path: Path, document: dict) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(document, indent=1, default=_jsonable))
    os.replace(partial, path)


def _jsonable(value: object) -> object:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in results.json")


class RunRecorder:
    """Holds a run's document and keeps `results.json` on disk up to date."""

    def __init__(self, run_dir: Path, run: dict, environment: dict, calibration: dict | None):
        self.run_dir = run_dir
        self.points: list[PointRecord] = []
        self.document = {
            "schema_version": SCHEMA_VERSION,
            "run": {**run, "status": "running", "started_at": utc_now(), "finished_at": None},
            "environment": environment,
            "calibration": calibration,
            "points": self.points,
        }

    def point(self, record: PointRecord) -> PointRecord:
        self.points.append(record)
        return record

    def save(self) -> None:
        write_json(self.run_dir / RESULTS_FILE, self.document)

    def finish(self, status: str, error: str | None = None) -> None:
        self.document["run"]["status"] = status
        self.document["run"]["error"] = error
        self.document["run"]["finished_at"] = utc_now()
        self.save()


def read_run(run_dir: Path) -> RunDocument:
    """A run's results.json, typed (see bench.results_model.load for what it refuses)."""
    return load(run_dir)


def load_run(run_dir: Path) -> dict:
    """A run's results.json as plain dicts, checked as read_run checks it: for readers that
    index it (claims, the command line), which get exactly what the file holds."""
    path = results_path(run_dir)
    document = read_json(path)
    parse(document, path)
    return document


def summary_frame(document: RunDocument | dict) -> pd.DataFrame:
    """One row per pattern and point: pooled figures (over the trials that count), their
    spread across the trials, and what bounds them (generator-bound, losses, too few
    samples). Push columns (delivered, expected...) are empty for request/response."""
    document = as_run(document)
    rows = []
    for point in document.points:
        summary = point.summary
        trials_ok, trials_total = figures.trials_counted(point)
        row = {
            "scenario": document.run.scenario,
            "point": point.point,
            "sweep_parameter": point.sweep_parameter,
            "sweep_value": point.sweep_value,
            "pattern": point.pattern,
            "status": point.status,
            "trials_ok": trials_ok,
            "trials": trials_total,  # the name summary.csv has always had
            "trials_total": trials_total,
            "partial_note": figures.trials_note(point),
        }
        throughput = figures.spread(point, "throughput_per_s")
        row["throughput_per_s"] = throughput.value if throughput else None
        row["throughput_min_per_s"] = throughput.low if throughput else None
        row["throughput_max_per_s"] = throughput.high if throughput else None
        for name in figures.LATENCY_FIELDS:
            found = figures.latency(point, name)
            row[name] = found.value_us
            row[f"{name}_lower_bound"] = found.lower_bound
        row["latency_samples"] = figures.latency(point, "p50_us").samples
        delivery = summary.delivery  # push only: the columns stay empty for request/response
        completeness = figures.completeness(point)
        row.update(
            {
                "requests": _stored(summary, "requests"),
                "errors": _stored(summary, "errors"),
                "timeouts": _stored(summary, "timeouts"),
                "unsent": _stored(summary, "unsent"),
                "unsent_fraction": figures.unsent_fraction(point),
                "completeness": completeness.value if completeness else None,
                "delivered": delivery.delivered if delivery else None,
                "expected": delivery.expected if delivery else None,
                "lost": delivery.lost if delivery else None,
                "duplicates": delivery.duplicates if delivery else None,
                "out_of_order": delivery.out_of_order if delivery else None,
                "client_bound": _stored(summary, "client_bound"),
                "client_bound_reasons": "; ".join(summary.client_bound_reasons),
                "server_cpu_s_per_1000": figures.value(point, "server_cpu_s_per_1000"),
                "generator_cpu_s_per_1000": figures.value(point, "generator_cpu_s_per_1000"),
                "server_peak_rss_bytes": figures.value(point, "server_peak_rss_bytes"),
                "wire_bytes_per_message": figures.value(point, "wire_bytes_per_message"),
                "payload_bytes_per_message": figures.value(point, "payload_bytes_per_message"),
                "error": point.error,
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


def _stored(summary: Summary, name: str) -> object:
    """A summary field as stored; empty for a point never reached (it has no summary), so
    that summary.csv does not show it as having measured zero."""
    return getattr(summary, name) if name in summary.model_fields_set else None


def write_summary_csv(run_dir: Path, document: RunDocument | dict) -> Path:
    path = run_dir / SUMMARY_FILE
    summary_frame(document).to_csv(path, index=False)
    return path


# The end-of-run table ---------------------------------------------------------------------
TABLE_WIDTH = 100  # a terminal's width, with room to spare
MIN_FLAGS_WIDTH = 24
HEADLINE_HEADERS = {
    "throughput_per_s": "per second",
    "p50_us": "p50",
    "p90_us": "p90",
    "p99_us": "p99",
    "p999_us": "p99.9",
    "wire_bytes_per_message": "bytes/message",
    "server_cpu_s_per_1000": "CPU ms/1k",
    "completeness": "delivered",
}
BOUND_LEGEND = {
    ">= ": ">= at least: losses counted at the time waited, or a generator-bound throughput",
    "<= ": "<= at most: a generator-bound latency (the generator's own delay is in it)",
}


def run_summary_table(document: RunDocument | dict, width: int = TABLE_WIDTH) -> str:
    """What a run measured, for the terminal at its end: one row per point and pattern with
    its status, the scenario's headline figure (the one the published overview ranks on),
    completeness for push, and flags to read it by; then why any point did not count in
    full, and what the `>=` and `<=` prefixes mean."""
    document = as_run(document)
    run = document.run
    push = kind_of(document).counts_deliveries
    field, _ = headline(document)
    shown = {
        (entry.pattern, value): entry
        for value in {p.sweep_value for p in document.points}
        for entry in entries(document, field, value)
    }
    header = ["point", "pattern", "status", HEADLINE_HEADERS.get(field, field)]
    with_completeness = push and field != "completeness"
    if with_completeness:
        header.append("delivered")
    rows, notes = [], []
    for point in document.points:
        entry = shown[(point.pattern, point.sweep_value)]
        figure = entry.text(field) if entry.figure is not None else "-"
        if entry.figure is None and entry.excluded.startswith("n/a"):
            figure = "n/a"
        row = [point.label or "-", point.pattern, point.status, figure]
        if with_completeness:
            completeness = figures.completeness(point)
            row.append(f"{completeness.value:.2%}" if completeness else "-")
        rows.append((row, _flags(point, field)))
        if point.status != "ok":
            where = point.pattern + (f" at {point.label}" if point.label else "")
            why = figures.trials_note(point) or point.error or ""
            notes.append(f"{where}: {point.status}" + (f": {why}" if why else ""))
    quick = ", a --quick smoke run" if run.quick else ""
    lines = [f"{run.scenario} ({run.status}{quick}): {HEADLINE_LABELS.get(field, field)}"]
    lines += _aligned(header, rows, width)
    for note in notes:
        lines += textwrap.wrap(note, width, subsequent_indent="    ")
    lines += [
        legend for prefix, legend in BOUND_LEGEND.items() if any(prefix in r[3] for r, _ in rows)
    ]
    return "\n".join(lines)


def _flags(point: Point, field: str) -> list[str]:
    """What to bear in mind reading a row: generator-bound, trials left out, a lower bound
    or unsupported percentile, losses."""
    flags = []
    if figures.client_bound(point):
        flags.append("generator-bound")
    counted, total = figures.trials_counted(point)
    if point.status == "partial":
        flags.append(f"partial: {counted} of {total} trials")
    if field in figures.LATENCY_FIELDS:
        found = figures.latency(point, field)
        if found.lower_bound and found.supported:
            flags.append("lower bound (losses)")
        if not found.supported and found.samples:
            flags.append(f"n/a: {found.samples:,} of {found.needed:,} samples needed")
    faults, unsent = figures.faults(point), point.summary.unsent
    if faults:
        flags.append(f"{faults:,} errors")
    if unsent:
        flags.append(f"{unsent:,} unsent")
    lost = figures.delivery(point).lost
    if lost:
        flags.append(f"{lost:,} lost")
    return flags


def _aligned(header: list[str], rows: list[tuple[list[str], list[str]]], width: int) -> list[str]:
    """Columns padded to their widest cell (figures right-aligned), then the flags, wrapped
    to what is left of `width`."""
    widths = [
        max(len(cells[i]) for cells in [header] + [r for r, _ in rows]) for i in range(len(header))
    ]
    numeric = range(3, len(header))  # the headline and completeness columns

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        )

    indent = sum(widths) + 2 * len(widths)
    room = max(MIN_FLAGS_WIDTH, width - indent)
    lines = [line(header) + "  flags"]
    for cells, flags in rows:
        wrapped = textwrap.wrap(", ".join(flags), room) or [""]
        lines.append((line(cells) + "  " + wrapped[0]).rstrip())
        lines += [" " * indent + more for more in wrapped[1:]]
    return lines
