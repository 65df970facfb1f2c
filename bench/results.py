"""The run folder: `results.json` (the documented, versioned schema), `summary.csv`, the
scenario file as it was run, server logs, and `results/latest` pointing at the newest run.

`results.json` is rewritten atomically after every trial, so a crash or a Ctrl-C keeps
everything measured until then. The schema is documented in docs/results-schema.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from bench import figures
from bench.metrics import TrialResult, summarize

SCHEMA_VERSION = 2
RESULTS_FILE = "results.json"
SUMMARY_FILE = "summary.csv"
LATEST_LINK = "latest"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


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
    # "ok" | "partial" | "failed" | "skipped" | "interrupted" | "pending"
    status: str = "pending"
    error: str | None = None
    trials: list[TrialResult] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    def add_trial(self, trial: TrialResult) -> None:
        self.trials.append(trial)
        self.summary = summarize(self.trials)
        statuses = {t.status for t in self.trials}
        if "interrupted" in statuses:
            self.status = "interrupted"
        elif statuses == {"skipped"}:
            self.status = "skipped"
        elif statuses == {"ok"}:
            self.status = "ok"
        elif "ok" in statuses:
            self.status = "partial"
        else:
            self.status = "failed"
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


class ResultsUnreadable(Exception):
    """A results.json that is missing, not JSON, or of a schema this version cannot read."""


def load_run(run_dir: Path) -> dict:
    path = run_dir / RESULTS_FILE
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise ResultsUnreadable(f"{path}: cannot read it: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ResultsUnreadable(f"{path}: not valid JSON: {exc}") from None
    version = document.get("schema_version") if isinstance(document, dict) else None
    if version != SCHEMA_VERSION:
        raise ResultsUnreadable(
            f"{path}: schema_version {version!r}; this version of bench reads {SCHEMA_VERSION}"
        )
    return document


def summary_frame(document: dict) -> pd.DataFrame:
    """One row per pattern and point: pooled figures, their spread across the trials, and
    what bounds them (generator-bound, losses, too few samples)."""
    rows = []
    for point in document["points"]:
        summary = figures.summary(point)
        row = {
            "scenario": document["run"]["scenario"],
            "point": point["point"],
            "sweep_parameter": point["sweep_parameter"],
            "sweep_value": point["sweep_value"],
            "pattern": point["pattern"],
            "status": point["status"],
            "trials_ok": summary.get("trials_ok", 0),
            "trials": summary.get("trials", 0),
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
        delivery = figures.delivery(point)
        completeness = figures.completeness(point)
        row.update(
            {
                "requests": summary.get("requests"),
                "errors": summary.get("errors"),
                "timeouts": summary.get("timeouts"),
                "unsent": summary.get("unsent"),
                "completeness": completeness.value if completeness else None,
                "lost": delivery.get("lost"),
                "duplicates": delivery.get("duplicates"),
                "client_bound": summary.get("client_bound"),
                "client_bound_reasons": "; ".join(summary.get("client_bound_reasons") or []),
                "server_cpu_s_per_1000": figures.value(point, "server_cpu_s_per_1000"),
                "generator_cpu_s_per_1000": figures.value(point, "generator_cpu_s_per_1000"),
                "server_peak_rss_bytes": figures.value(point, "server_peak_rss_bytes"),
                "wire_bytes_per_message": figures.value(point, "wire_bytes_per_message"),
                "payload_bytes_per_message": figures.value(point, "payload_bytes_per_message"),
                "error": point.get("error"),
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


def write_summary_csv(run_dir: Path, document: dict) -> Path:
    path = run_dir / SUMMARY_FILE
    summary_frame(document).to_csv(path, index=False)
    return path
