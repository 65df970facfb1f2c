"""Charts of a run, rendered from its results.json alone (PNG and SVG, matplotlib).

Every chart says what was measured and on what: a title that states the question, units
on every axis, one fixed colour per pattern, whiskers from the smallest to the largest
repeat, and a footer with the machine, the code version and the generator's calibration.
Points a generator could not drive hard enough are drawn hollow (their throughput is a
lower bound); errors and failed points are written on the chart, never left out.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from bench.environment import describe as describe_environment
from bench.patterns import PATTERNS

CHART_DIR = "charts"
PERCENTILES = (("p50_us", "p50"), ("p90_us", "p90"), ("p99_us", "p99"), ("p999_us", "p99.9"))
FALLBACK_COLOR = "#7f7f7f"


def color_of(pattern: str) -> str:
    found = PATTERNS.get(pattern)
    return found.color if found else FALLBACK_COLOR


def _by_pattern(document: dict) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for point in document["points"]:
        grouped.setdefault(point["pattern"], []).append(point)
    return grouped


def _median(point: dict, name: str) -> float | None:
    spread = (point.get("summary") or {}).get(name)
    return spread["median"] if spread else None


def _latency_ms(point: dict, name: str) -> tuple[float, float, float] | None:
    spread = ((point.get("summary") or {}).get("latency_us") or {}).get(name)
    if not spread:
        return None
    return spread["median"] / 1000, spread["min"] / 1000, spread["max"] / 1000


def _problems(point: dict) -> str:
    summary = point.get("summary") or {}
    if point["status"] in ("failed", "pending"):
        return point["status"]
    faults = summary.get("errors", 0) + summary.get("timeouts", 0)
    parts = []
    if faults:
        parts.append(f"{faults:,} err")
    if summary.get("unsent"):
        parts.append(f"{summary['unsent']:,} unsent")
    if point["status"] in ("partial", "interrupted"):
        parts.append(point["status"])
    return ", ".join(parts)


def footer(document: dict) -> str:
    run = document["run"]
    lines = [f"run {run['id']} ({run['status']}), {describe_environment(document['environment'])}"]
    placement = (run.get("placement") or {}).get("note")
    config = document["points"][0]["config"] if document["points"] else {}
    timing = (
        f"warm-up {config.get('warmup_s', 0):g} s, {config.get('duration_s', 0):g} s measured, "
        f"{config.get('repeats', 1)} repeat(s): markers are medians, whiskers min to max"
    )
    lines.append(f"{timing}; {placement}" if placement else timing)
    ratios = (document.get("calibration") or {}).get("ratios")
    if ratios:
        lines.append(
            f"generator calibration against wrk: {ratios['rate_at_32']:.2f}x wrk's rate at "
            f"concurrency 32, {ratios['p50_at_1']:.2f}x wrk's p50 at concurrency 1"
        )
    return "\n".join(lines)


def _finish(figure: Figure, document: dict, out_dir: Path, name: str, note: str = "") -> list[Path]:
    text = footer(document) + (f"\n{note}" if note else "")
    figure.text(0.01, 0.01, text, fontsize=7, color="#444444", va="bottom", ha="left")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix in ("png", "svg"):
        path = out_dir / f"{name}.{suffix}"
        figure.savefig(path, dpi=130)
        paths.append(path)
    plt.close(figure)
    return paths


SWEEP_AXIS_LABELS = {
    "load.concurrency": "concurrency (requests in flight)",
    "load.rate_per_s": "offered rate (requests per second)",
    "load.connections": "connections",
    "load.generators": "generator processes",
    "payload.size_bytes": "payload size (bytes of JSON per user)",
    "payload.users": "users in the dataset",
    "workload.per_page": "users per page",
}
HOLLOW_NOTE = "hollow: the generator was at >= 90% CPU (client-bound): the figure is a lower bound"


def _sweep_axis(axis, document: dict, values: list[float]) -> None:
    parameter = document["run"].get("sweep_parameter") or ""
    axis.set_xlabel(SWEEP_AXIS_LABELS.get(parameter, parameter))
    axis.margins(x=0.12)
    positive = [v for v in values if v and v > 0]
    if positive and max(positive) / min(positive) >= 8:
        axis.set_xscale("log")
    axis.set_xticks(values)
    axis.set_xticklabels([f"{v:g}" for v in values])
    axis.minorticks_off()


def _log_latency_axis(axis) -> None:
    """Log scale with plain numbers (0.2, 0.5, 1, 2, 5 ...), not powers of ten."""
    axis.set_yscale("log")
    axis.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.yaxis.set_minor_formatter(NullFormatter())


def _mark(axis, x: float, y: float, point: dict, color: str) -> None:
    hollow = (point.get("summary") or {}).get("client_bound")
    axis.plot(
        [x],
        [y],
        marker="o",
        markersize=7,
        color=color,
        markerfacecolor="white" if hollow else color,
        zorder=3,
    )
    problem = _problems(point)
    if problem:
        axis.annotate(
            problem, (x, y), textcoords="offset points", xytext=(4, 6), fontsize=7, color="#b00020"
        )


def _whisker(axis, x: float, low: float, high: float, color: str) -> None:
    axis.plot([x, x], [low, high], color=color, linewidth=1.2, alpha=0.8, zorder=2)


def throughput_chart(document: dict, out_dir: Path) -> list[Path]:
    run = document["run"]
    grouped = _by_pattern(document)
    figure, axis = plt.subplots(figsize=(9, 5.6))
    figure.subplots_adjust(left=0.1, right=0.97, top=0.88, bottom=0.2)
    swept = run.get("sweep_parameter") is not None
    any_hollow = False
    if swept:
        values = sorted({p["sweep_value"] for p in document["points"]})
        for pattern, points in grouped.items():
            color = color_of(pattern)
            xs, ys = [], []
            for point in sorted(points, key=lambda p: p["sweep_value"]):
                spread = (point.get("summary") or {}).get("throughput_per_s")
                if not spread:
                    axis.annotate(
                        point["status"],
                        (point["sweep_value"], 0),
                        fontsize=7,
                        color="#b00020",
                        xytext=(0, 4),
                        textcoords="offset points",
                    )
                    continue
                xs.append(point["sweep_value"])
                ys.append(spread["median"])
                _whisker(axis, point["sweep_value"], spread["min"], spread["max"], color)
                _mark(axis, point["sweep_value"], spread["median"], point, color)
                any_hollow |= bool(point["summary"].get("client_bound"))
            axis.plot(xs, ys, color=color, label=points[0]["pattern_label"], linewidth=1.6)
        _sweep_axis(axis, document, values)
    else:
        for index, (pattern, points) in enumerate(grouped.items()):
            point, color = points[0], color_of(pattern)
            spread = (point.get("summary") or {}).get("throughput_per_s")
            height = spread["median"] if spread else 0
            hollow = bool((point.get("summary") or {}).get("client_bound"))
            any_hollow |= hollow
            axis.bar(
                index,
                height,
                color="white" if hollow else color,
                edgecolor=color,
                linewidth=1.5,
                label=point["pattern_label"],
            )
            if spread:
                _whisker(axis, index, spread["min"], spread["max"], "#333333")
            problem = _problems(point)
            if problem:
                axis.annotate(
                    problem,
                    (index, height),
                    ha="center",
                    fontsize=8,
                    color="#b00020",
                    xytext=(0, 4),
                    textcoords="offset points",
                )
        axis.set_xticks(range(len(grouped)))
        axis.set_xticklabels([points[0]["pattern_label"] for points in grouped.values()])
    axis.set_ylabel("throughput (validated responses per second)")
    axis.set_ylim(bottom=0)
    axis.grid(True, axis="y", alpha=0.3)
    axis.legend(fontsize=8, loc="best")
    figure.suptitle(
        f"{run['title']}\nHow many requests per second does each pattern answer?", fontsize=11
    )
    return _finish(figure, document, out_dir, "throughput", HOLLOW_NOTE if any_hollow else "")


def latency_chart(document: dict, out_dir: Path) -> list[Path]:
    run = document["run"]
    grouped = _by_pattern(document)
    swept = run.get("sweep_parameter") is not None
    model = document["points"][0]["config"].get("model") if document["points"] else "closed"
    measured_from = (
        "intended send time (open loop, coordinated omission corrected)"
        if model == "open"
        else "actual send time (closed loop)"
    )
    if swept:
        figure, axes = plt.subplots(2, 2, figsize=(10, 7.5), sharex=True)
        figure.subplots_adjust(left=0.09, right=0.97, top=0.87, bottom=0.16, hspace=0.3)
        values = sorted({p["sweep_value"] for p in document["points"]})
        for axis, (name, label) in zip(axes.flat, PERCENTILES, strict=True):
            for pattern, points in grouped.items():
                color = color_of(pattern)
                xs, ys = [], []
                for point in sorted(points, key=lambda p: p["sweep_value"]):
                    figures = _latency_ms(point, name)
                    if figures is None:
                        continue
                    xs.append(point["sweep_value"])
                    ys.append(figures[0])
                    _whisker(axis, point["sweep_value"], figures[1], figures[2], color)
                    _mark(axis, point["sweep_value"], figures[0], point, color)
                axis.plot(xs, ys, color=color, label=points[0]["pattern_label"], linewidth=1.5)
            axis.set_title(f"{label} latency", fontsize=10)
            axis.set_ylabel("latency (ms)")
            _log_latency_axis(axis)
            axis.grid(True, which="both", alpha=0.3)
            _sweep_axis(axis, document, values)
        axes.flat[0].legend(fontsize=8, loc="best")
    else:
        figure, axis = plt.subplots(figsize=(9, 5.6))
        figure.subplots_adjust(left=0.1, right=0.97, top=0.86, bottom=0.24)
        width = 0.8 / max(1, len(grouped))
        for offset, (pattern, points) in enumerate(grouped.items()):
            point, color = points[0], color_of(pattern)
            for index, (name, _) in enumerate(PERCENTILES):
                figures = _latency_ms(point, name)
                if figures is None:
                    continue
                x = index + (offset - (len(grouped) - 1) / 2) * width
                axis.bar(
                    x,
                    figures[0],
                    width=width * 0.95,
                    color=color,
                    label=point["pattern_label"] if index == 0 else None,
                )
                _whisker(axis, x, figures[1], figures[2], "#333333")
        axis.set_xticks(range(len(PERCENTILES)))
        axis.set_xticklabels([label for _, label in PERCENTILES])
        axis.set_xlabel("percentile")
        axis.set_ylabel("latency (ms)")
        _log_latency_axis(axis)
        axis.grid(True, axis="y", which="both", alpha=0.3)
        axis.legend(fontsize=8, loc="best")
    figure.suptitle(
        f"{run['title']}\nHow long does each pattern take to answer? Measured from the "
        f"{measured_from}",
        fontsize=10,
    )
    any_hollow = any((p.get("summary") or {}).get("client_bound") for p in document["points"])
    return _finish(figure, document, out_dir, "latency", HOLLOW_NOTE if any_hollow else "")


def _wire(point: dict) -> tuple[float, float] | None:
    summary = point.get("summary") or {}
    sent = summary.get("wire_bytes_sent_per_message")
    received = summary.get("wire_bytes_received_per_message")
    if not sent or not received:
        return None
    return sent["median"], received["median"]


def wire_chart(document: dict, out_dir: Path) -> list[Path]:
    """Bytes on the wire per exchange, beside the payload's own size."""
    run = document["run"]
    grouped = _by_pattern(document)
    by_payload = run.get("sweep_parameter") == "payload.size_bytes"
    figure, axis = plt.subplots(figsize=(9, 5.6))
    figure.subplots_adjust(left=0.12 if by_payload else 0.3, right=0.97, top=0.86, bottom=0.22)
    if by_payload:
        values = sorted({p["sweep_value"] for p in document["points"]})
        for pattern, points in grouped.items():
            xs, ys = [], []
            for point in sorted(points, key=lambda p: p["sweep_value"]):
                wire = _wire(point)
                if wire:
                    xs.append(point["sweep_value"])
                    ys.append(wire[0] + wire[1])
            axis.plot(xs, ys, marker="o", color=color_of(pattern), label=points[0]["pattern_label"])
        axis.plot(
            values, values, linestyle="--", color="#444444", label="the payload itself (JSON)"
        )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xticks(values)
        axis.set_xticklabels([f"{v:g}" for v in values])
        axis.minorticks_off()
        axis.set_xlabel(SWEEP_AXIS_LABELS["payload.size_bytes"])
        axis.set_ylabel("bytes on the wire per exchange (request + response)")
        axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        where = ""
    else:
        first = min(p["point"] for p in document["points"])
        points = [p for p in document["points"] if p["point"] == first]
        labels = []
        for index, point in enumerate(points):
            wire = _wire(point)
            labels.append(point["pattern_label"])
            if not wire:
                continue
            color = color_of(point["pattern"])
            axis.barh(index, wire[0], color=color, alpha=0.45, edgecolor=color)
            axis.barh(index, wire[1], left=wire[0], color=color, edgecolor=color)
            axis.annotate(
                f"{wire[0]:,.0f} + {wire[1]:,.0f} B",
                (wire[0] + wire[1], index),
                xytext=(4, -3),
                textcoords="offset points",
                fontsize=8,
            )
        axis.set_yticks(range(len(points)))
        axis.set_yticklabels(labels, fontsize=8)
        axis.invert_yaxis()
        payload = points[0]["config"].get("payload_bytes") if points else None
        only_get_user = points and points[0]["config"]["workload"].get("mix") == {"get_user": 1.0}
        if payload and only_get_user:
            axis.axvline(payload, linestyle="--", color="#444444")
            axis.annotate(
                f"the record as compact JSON: {payload:,} B",
                (payload, len(points) - 0.55),
                xytext=(-4, 0),
                textcoords="offset points",
                ha="right",
                fontsize=8,
                color="#444444",
            )
        axis.set_xlabel("bytes on the wire per exchange: request (light) + response (dark)")
        axis.margins(x=0.25)
        where = f" ({points[0]['label']})" if points and points[0]["label"] else ""
    axis.grid(True, alpha=0.3)
    if by_payload:
        axis.legend(fontsize=8, loc="best")
    figure.suptitle(
        f"{run['title']}\nWhat does each pattern put on the wire per exchange?{where} "
        "Measured from the kernel's TCP counters",
        fontsize=10,
    )
    return _finish(figure, document, out_dir, "wire-bytes")


def render_run(document: dict, run_dir: Path) -> list[Path]:
    """Write every chart of a run into `<run_dir>/charts/`; returns the files written."""
    if not document["points"]:
        return []
    out_dir = run_dir / CHART_DIR
    return (
        throughput_chart(document, out_dir)
        + latency_chart(document, out_dir)
        + wire_chart(document, out_dir)
    )
