"""From raw measurements to the figures a point reports.

A trial is one run of one pattern at one point; its generators' histograms are merged
exactly. A point summarises its repeated trials: the median of each figure, with the
smallest and largest beside it as the spread.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field

from bench.histogram import LatencyHistogram, LatencySummary
from bench.resources import ServerUsage

CLIENT_BOUND_CPU = 0.9  # a generator at or above this share of one CPU may be the bottleneck


def _latency(summary: LatencySummary) -> dict:
    return asdict(summary)


@dataclass
class TrialResult:
    """One pattern at one point, one repeat. Latencies in microseconds."""

    repeat: int
    status: str  # "ok" | "failed" | "interrupted"
    error: str | None
    measured_s: float
    requests: int  # answered and validated, inside the measured window
    errors: int
    timeouts: int
    unsent: int
    warmup_errors: int
    reconnects: int
    error_kinds: dict[str, int]
    throughput_per_s: float
    offered_rate_per_s: float | None
    latency_us: dict
    latency_histogram: str
    latency_out_of_range: int
    service_time_us: dict | None
    send_lag_us: dict | None
    generator_cpu_share: list[float]
    client_bound: bool
    server_cpu_s: float | None
    server_cpu_s_per_1000: float | None
    server_peak_rss_bytes: int | None
    wire_bytes_sent_per_message: float | None
    wire_bytes_received_per_message: float | None
    wire_bytes_per_message: float | None
    payload_bytes_per_message: float | None = None  # the application's own bytes, both ways
    overhead_bytes_per_message: float | None = None  # wire minus payload: the protocol's
    tcp_connections: int | None = None
    server_rss_per_connection_bytes: int | None = None  # push: per subscriber
    delivery: dict | None = None  # push only: completeness per subscriber and in all
    extra: dict = field(default_factory=dict)


def build_trial(
    repeat: int,
    generator_results: list[dict],
    usage: ServerUsage | None,
    offered_rate_per_s: float | None,
    status: str = "ok",
    error: str | None = None,
    baseline_rss_bytes: int | None = None,
) -> TrialResult:
    """Merge the generators' results for one trial and derive its figures."""
    latency = LatencyHistogram.merge([g["latency"] for g in generator_results])
    latency.out_of_range = sum(g["latency_out_of_range"] for g in generator_results)
    open_loop = any(g["service_time"] for g in generator_results)
    requests = sum(g["ok"] for g in generator_results)
    measured_s = max((g["measured_s"] for g in generator_results), default=0.0)
    error_kinds: dict[str, int] = {}
    for g in generator_results:
        for kind, count in g["error_kinds"].items():
            error_kinds[kind] = error_kinds.get(kind, 0) + count
    cpu_share = [
        round(g["cpu_s"] / g["measured_s"], 3) if g["measured_s"] else 0.0
        for g in generator_results
    ]
    wire_sent = sum(g["wire_sent"] for g in generator_results)
    wire_received = sum(g["wire_received"] for g in generator_results)
    payload = sum(
        g.get("payload_sent", 0) + g.get("payload_received", 0) for g in generator_results
    )
    connections = sum(g.get("tcp_connections", 0) for g in generator_results)

    def per_message(total: int) -> float | None:
        return round(total / requests, 1) if requests and total else None

    rss_per_connection = None
    if usage and baseline_rss_bytes is not None and connections:
        rss_per_connection = round(max(0, usage.peak_rss_bytes - baseline_rss_bytes) / connections)

    return TrialResult(
        repeat=repeat,
        status=status,
        error=error,
        measured_s=round(measured_s, 3),
        requests=requests,
        errors=sum(g["errors"] for g in generator_results),
        timeouts=sum(g["timeouts"] for g in generator_results),
        unsent=sum(g["unsent"] for g in generator_results),
        warmup_errors=sum(g["warmup_errors"] for g in generator_results),
        reconnects=sum(g["reconnects"] for g in generator_results),
        error_kinds=error_kinds,
        throughput_per_s=round(requests / measured_s, 1) if measured_s else 0.0,
        offered_rate_per_s=offered_rate_per_s,
        latency_us=_latency(latency.summary()),
        latency_histogram=latency.encode(),
        latency_out_of_range=latency.out_of_range,
        service_time_us=(
            _latency(
                LatencyHistogram.merge([g["service_time"] for g in generator_results]).summary()
            )
            if open_loop
            else None
        ),
        send_lag_us=(
            _latency(LatencyHistogram.merge([g["send_lag"] for g in generator_results]).summary())
            if open_loop
            else None
        ),
        generator_cpu_share=cpu_share,
        client_bound=any(share >= CLIENT_BOUND_CPU for share in cpu_share),
        server_cpu_s=usage.cpu_s if usage else None,
        server_cpu_s_per_1000=(
            round(usage.cpu_s / requests * 1000, 4) if usage and requests else None
        ),
        server_peak_rss_bytes=usage.peak_rss_bytes if usage else None,
        wire_bytes_sent_per_message=per_message(wire_sent),
        wire_bytes_received_per_message=per_message(wire_received),
        wire_bytes_per_message=per_message(wire_sent + wire_received),
        payload_bytes_per_message=per_message(payload),
        overhead_bytes_per_message=(
            per_message(wire_sent + wire_received - payload) if payload else None
        ),
        tcp_connections=connections or None,
        server_rss_per_connection_bytes=rss_per_connection,
    )


def delivery_counts(counts: list[bytes], first: int | None, last: int | None) -> dict:
    """What the subscribers got of events first..last (the measured window's), from their
    per-sequence arrival counts."""
    expected = (last - first + 1) if first is not None and last is not None else 0
    per_subscriber = []
    duplicates = 0
    for arrivals in counts:
        window = arrivals[first : last + 1] if expected else b""
        received = len(window) - window.count(0)  # events past the end never arrived: 0
        duplicates += sum(window) - received
        per_subscriber.append(received)
    subscribers = len(counts)
    delivered = sum(per_subscriber)
    return {
        "events_in_window": expected,
        "subscribers": subscribers,
        "expected": expected * subscribers,
        "delivered": delivered,
        "lost": expected * subscribers - delivered,
        "duplicates": duplicates,
        "completeness": round(delivered / (expected * subscribers), 6) if expected else None,
        "worst_subscriber_completeness": (
            round(min(per_subscriber) / expected, 6) if expected and per_subscriber else None
        ),
    }


def build_push_trial(
    repeat: int,
    generator_results: list[dict],
    report: dict | None,
    usage: ServerUsage | None,
    baseline_rss_bytes: int | None,
    status: str = "ok",
    error: str | None = None,
) -> TrialResult:
    """Merge the subscribers' results for one push trial, against the server's report."""
    counts = [c for g in generator_results for c in g["counts"]]
    first = (report or {}).get("first_seq_in_window")
    last = (report or {}).get("last_seq_in_window")
    delivery = delivery_counts(counts, first, last)
    delivery["out_of_order"] = sum(g["out_of_order"] for g in generator_results)
    delivered = delivery["delivered"]
    trial = build_trial(
        repeat,
        [_as_request_result(g, delivered) for g in generator_results],
        usage,
        None,
        status,
        error,
    )
    trial.requests = delivered
    trial.throughput_per_s = round(delivered / trial.measured_s, 1) if trial.measured_s else 0.0
    trial.server_cpu_s_per_1000 = (
        round(usage.cpu_s / delivered * 1000, 4) if usage and delivered else None
    )
    # Bytes over the whole trial (handshakes, keepalives, empty polls and all) per event
    # delivered over the whole trial, warm-up included on both sides.
    all_deliveries = sum(len(c) - c.count(0) for c in counts)
    wire_sent = sum(g["wire_sent"] for g in generator_results)
    wire_received = sum(g["wire_received"] for g in generator_results)
    payload = sum(g.get("payload_received", 0) for g in generator_results)
    if all_deliveries:
        trial.wire_bytes_sent_per_message = round(wire_sent / all_deliveries, 1)
        trial.wire_bytes_received_per_message = round(wire_received / all_deliveries, 1)
        trial.wire_bytes_per_message = round((wire_sent + wire_received) / all_deliveries, 1)
        if payload:
            trial.payload_bytes_per_message = round(payload / all_deliveries, 1)
            trial.overhead_bytes_per_message = round(
                (wire_sent + wire_received - payload) / all_deliveries, 1
            )
    subscribers = delivery["subscribers"]
    if usage and baseline_rss_bytes is not None and subscribers:
        delivery["server_rss_per_subscriber_bytes"] = round(
            max(0, usage.peak_rss_bytes - baseline_rss_bytes) / subscribers
        )
        trial.server_rss_per_connection_bytes = delivery["server_rss_per_subscriber_bytes"]
    trial.delivery = delivery
    counters: dict[str, int] = {}
    for g in generator_results:
        for name, value in g["counters"].items():
            counters[name] = counters.get(name, 0) + value
    trial.extra = {
        "subscriber_counters": counters,
        "server_counters": (report or {}).get("counters", {}),
        "publish_lag_us": (report or {}).get("publish_lag_us"),
        "events_published": (report or {}).get("published"),
        "reconnects": sum(g["reconnects"] for g in generator_results),
    }
    if counters.get("polls") and all_deliveries:
        trial.extra["polls_per_delivered_event"] = round(counters["polls"] / all_deliveries, 3)
    return trial


def _as_request_result(generator: dict, delivered: int) -> dict:
    """A push generator's result in the shape build_trial merges."""
    return {
        "ok": 0,
        "errors": generator["errors"],
        "timeouts": 0,
        "unsent": 0,
        "warmup_errors": 0,
        "reconnects": generator["reconnects"],
        "error_kinds": generator["error_kinds"],
        "latency": generator["latency"],
        "latency_out_of_range": generator["latency_out_of_range"],
        "service_time": "",
        "send_lag": "",
        "measured_s": generator["measured_s"],
        "cpu_s": generator["cpu_s"],
        "wire_sent": 0,
        "wire_received": 0,
    }


def failed_trial(repeat: int, status: str, error: str) -> TrialResult:
    """A trial that measured nothing; kept in the results so that it is never left out."""
    return build_trial(repeat, [], None, None, status=status, error=error)


# Fields summarised across repeats: median, with min and max as the spread.
SUMMARISED = (
    "throughput_per_s",
    "server_cpu_s_per_1000",
    "server_peak_rss_bytes",
    "server_rss_per_connection_bytes",
    "wire_bytes_per_message",
    "wire_bytes_sent_per_message",
    "wire_bytes_received_per_message",
    "payload_bytes_per_message",
    "overhead_bytes_per_message",
    "tcp_connections",
)
SUMMARISED_LATENCY = ("p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us")


def _spread(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(trials: list[TrialResult]) -> dict:
    """The point's figures across its trials. Only trials that ran to the end count."""
    measured = [t for t in trials if t.status == "ok"]
    summary: dict = {
        "trials": len(trials),
        "trials_ok": len(measured),
        "requests": sum(t.requests for t in trials),
        "errors": sum(t.errors for t in trials),
        "timeouts": sum(t.timeouts for t in trials),
        "unsent": sum(t.unsent for t in trials),
        "client_bound": any(t.client_bound for t in trials),
    }
    for name in SUMMARISED:
        summary[name] = _spread(
            [getattr(t, name) for t in measured if getattr(t, name) is not None]
        )
    summary["latency_us"] = {
        name: _spread([t.latency_us[name] for t in measured if t.latency_us["count"]])
        for name in SUMMARISED_LATENCY
    }
    deliveries = [t.delivery for t in measured if t.delivery]
    if deliveries:
        summary["delivery"] = {
            "completeness": _spread(
                [d["completeness"] for d in deliveries if d["completeness"] is not None]
            ),
            "worst_subscriber_completeness": min(
                (
                    d["worst_subscriber_completeness"]
                    for d in deliveries
                    if d["worst_subscriber_completeness"] is not None
                ),
                default=None,
            ),
            "expected": sum(d["expected"] for d in deliveries),
            "delivered": sum(d["delivered"] for d in deliveries),
            "lost": sum(d["lost"] for d in deliveries),
            "duplicates": sum(d["duplicates"] for d in deliveries),
            "out_of_order": sum(d["out_of_order"] for d in deliveries),
            "server_rss_per_subscriber_bytes": _spread(
                [
                    d["server_rss_per_subscriber_bytes"]
                    for d in deliveries
                    if d.get("server_rss_per_subscriber_bytes") is not None
                ]
            ),
        }
    merged = LatencyHistogram.merge([t.latency_histogram for t in measured])
    summary["latency_all_trials_us"] = _latency(merged.summary())
    summary["latency_all_trials_histogram"] = merged.encode()
    return summary
