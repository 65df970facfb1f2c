"""From raw measurements to the figures a point reports.

A trial is one run of one pattern at one point; its generators' histograms are merged
exactly. A point pools its repeated trials: latency percentiles come from the histograms
of every trial merged (never a median of per-trial tails), rates and costs from the
totals (requests over seconds, CPU over requests), each with the smallest and largest
trial beside it as the spread.

Only trials that count ("ok") are pooled. A trial that ran to the end but measured nothing
usable (no validated answer, most requests due never sent, no event delivered) is
"invalid", never an empty "ok".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.generator_bound import GeneratorLoad, judge, merged_reasons
from bench.resources import ServerUsage
from common.events import PublicationTally
from common.histogram import (
    LatencyHistogram,
    latency_figures,
    percentile_interval,
    percentile_of,
)
from common.schedule import DueTimes


@dataclass
class TrialResult:
    """One pattern at one point, one repeat. Latencies in microseconds."""

    repeat: int
    status: str  # "ok" | "invalid" | "failed" | "skipped" | "interrupted": see TRIAL_STATUSES
    error: str | None
    measured_s: float
    requests: int  # answered and validated (push: delivered), inside the measured window
    errors: int
    timeouts: int
    unsent: int
    warmup_errors: int
    reconnects: int
    error_kinds: dict[str, int]
    throughput_per_s: float
    offered_rate_per_s: float | None
    latency_us: dict  # histogram.latency_figures: censored values (losses) included
    latency_histogram: str  # answered or delivered only
    censored_histogram: str  # timeouts, unsent requests, lost events: time waited
    latency_out_of_range: int
    service_time_histogram: str = ""  # open loop: from the actual send
    send_lag_histogram: str = ""  # open loop: the generator's own lateness
    connection_wait_histogram: str = ""  # open loop: waiting for a free connection
    generator: dict = field(default_factory=dict)  # what the generators used: see below
    client_bound: bool = False
    client_bound_reasons: list[str] = field(default_factory=list)
    totals: dict = field(default_factory=dict)  # raw sums the point pools: see below
    server_cpu_share: float | None = None  # of the CPUs the server was given
    server_peak_rss_bytes: int | None = None
    tcp_connections: int | None = None  # at the end of the window (push: subscribers')
    delivery: dict | None = None  # push only: completeness per subscriber and in all
    extra: dict = field(default_factory=dict)
    # Where the trial's wall-clock time went, by phase (bench/trial_time.py), in seconds.
    timings: dict[str, float] = field(default_factory=dict)


TRIAL_STATUSES = {
    "ok": "ran to the end and measured something",
    "invalid": "ran to the end but measured nothing usable (see invalid_reason)",
    "failed": "the server or a generator broke",
    "skipped": "what the pattern needs is not installed",
    "interrupted": "stopped by the user",
}
# Beyond half of the requests due left unsent, even the median of the latencies is a time
# waited for a request never sent (a censored value), not a latency measured. When the
# server is why (every connection waiting on it: an open-loop rate past its capacity),
# that is the measurement, shown as lower bounds. When the generator is why (it was
# judged generator-bound: it could not keep its own schedule), nothing of the pattern was
# measured, and the trial is invalid.
MAX_UNSENT_SHARE = 0.5


# Raw sums per trial, pooled across trials into rates and costs:
#   messages: requests (push: deliveries) the byte and CPU figures are per
#   server_cpu_s, generator_cpu_s, check_s: seconds in the window
#   wire_sent, wire_received, payload: bytes (push: over the whole trial, per delivery)
#   byte_messages: the messages the byte figures are per (push: every delivery of the
#     trial, warm-up and drain included, as the bytes are)
#   connections_opened, connections_used: TCP connections opened in the window, and
#     those that carried its requests (request/response)


def _server_figures(usage: ServerUsage | None, measured_s: float, server_cpus: int) -> dict:
    """What the server used in a trial's window, for either kind of trial."""
    return {
        "server_cpu_share": (
            round(usage.cpu_s / (measured_s * server_cpus), 3) if usage and measured_s else None
        ),
        "server_peak_rss_bytes": usage.peak_rss_bytes if usage else None,
    }


def _merged(results: list[dict], key: str) -> LatencyHistogram:
    return LatencyHistogram.merge([g.get(key, "") for g in results])


def _sum_kinds(results: list[dict]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for g in results:
        for kind, count in g["error_kinds"].items():
            kinds[kind] = kinds.get(kind, 0) + count
    return kinds


def _sum_tls(results: list[dict]) -> dict[str, int]:
    """TLS handshakes by version, all generators (none without TLS)."""
    versions: dict[str, int] = {}
    for g in results:
        for version, count in g.get("tls_handshakes", {}).items():
            versions[version] = versions.get(version, 0) + count
    return versions


def _generator_figures(
    results: list[dict],
    cpus_held: int,
    measured_s: float,
    messages: int,
    open_loop: bool,
    usage: ServerUsage | None,
) -> tuple[dict, list[str]]:
    """The generators' own figures for one trial, and why they were the limit (if so)."""
    loop_lag = latency_figures(_merged(results, "loop_lag"))
    send_lag = latency_figures(_merged(results, "send_lag")) if open_loop else None
    cpu = [g["cpu_s"] for g in results]
    load = GeneratorLoad(
        cpu_s=cpu,
        measured_s=measured_s,
        cpus_held=max(1, cpus_held),
        loop_lag_p50_us=loop_lag["p50_us"],
        send_lag_p90_us=send_lag["p90_us"] if send_lag else None,
        cpus_busy=usage.generator_cpus_busy if usage else None,
    )
    reasons = judge(load) if measured_s else []
    figures = {
        "processes": len(results),
        "cpus_held": cpus_held,
        "cpu_share_per_process": [round(share, 3) for share in load.loop_cpu_shares],
        "total_cpu_share": round(load.total_cpu_share, 3),
        "cpus_busy": load.cpus_busy,
        "loop_lag_us": loop_lag,
        "loop_lag_histogram": _merged(results, "loop_lag").encode(),
        "send_lag_us": send_lag,
        "cpu_us_per_message": round(sum(cpu) / messages * 1e6, 2) if messages else None,
        "check_us_per_message": (
            round(sum(g.get("check_s", 0.0) for g in results) / messages * 1e6, 2)
            if messages
            else None
        ),
    }
    return figures, reasons


def requests_due(requests: int, errors: int, timeouts: int, unsent: int) -> int:
    """The requests due in a measured window: each was answered and validated, failed,
    timed out or (open loop) never sent."""
    return requests + errors + timeouts + unsent


def invalid_reason(
    requests: int, errors: int, timeouts: int, unsent: int, generator_bound: list[str]
) -> str | None:
    """Why a request/response trial that ran to the end measured nothing usable, or None:
    no validated answer in its window, or more than MAX_UNSENT_SHARE of the requests due
    never sent by a generator that was the limit (`generator_bound`: its reasons)."""
    due = requests_due(requests, errors, timeouts, unsent)
    if requests == 0:
        return (
            f"no validated answer in the measured window: {due - unsent:,} of {due:,} "
            f"requests due were sent, none answered correctly ({errors:,} errors, "
            f"{timeouts:,} timeouts, {unsent:,} never sent)"
        )
    if unsent > MAX_UNSENT_SHARE * due and generator_bound:
        return (
            f"the generator could not send {unsent:,} of the {due:,} requests due in the "
            f"measured window ({unsent / due:.0%}, more than {MAX_UNSENT_SHARE:.0%}) and was "
            f"the limit ({'; '.join(generator_bound)}): even the median latency would be a "
            "time the generator made a request wait"
        )
    return None


def invalid_push_reason(delivery: dict) -> str | None:
    """Why a push trial that ran to the end measured nothing usable, or None: no event
    delivered in its window."""
    if delivery["delivered"]:
        return None
    return (
        f"no event delivered in the measured window: 0 of {delivery['expected']:,} expected "
        f"({delivery['events_in_window']:,} events to {delivery['subscribers']:,} subscribers)"
    )


def build_trial(
    repeat: int,
    generator_results: list[dict],
    usage: ServerUsage | None,
    offered_rate_per_s: float | None,
    status: str = "ok",
    error: str | None = None,
    *,
    generator_cpus: int = 1,
    server_cpus: int = 1,
) -> TrialResult:
    """Merge the generators' results for one request/response trial. A trial that ran to
    the end but measured nothing usable is "invalid" (invalid_reason says why)."""
    results = generator_results
    latency = _merged(results, "latency")
    latency.out_of_range = sum(g["latency_out_of_range"] for g in results)
    censored = _merged(results, "censored")
    open_loop = any(g.get("service_time") for g in results)
    requests = sum(g["ok"] for g in results)
    errors = sum(g["errors"] for g in results)
    timeouts = sum(g["timeouts"] for g in results)
    unsent = sum(g["unsent"] for g in results)
    measured_s = max((g["measured_s"] for g in results), default=0.0)
    generator, reasons = _generator_figures(
        results, generator_cpus, measured_s, requests, open_loop, usage
    )
    reason = invalid_reason(requests, errors, timeouts, unsent, reasons) if status == "ok" else None
    if reason:
        status, error = "invalid", reason
    totals = {
        "messages": requests,
        "byte_messages": requests,
        "server_cpu_s": usage.cpu_s if usage else None,
        "generator_cpu_s": sum(g["cpu_s"] for g in results),
        "check_s": sum(g.get("check_s", 0.0) for g in results),
        "wire_sent": sum(g["wire_sent"] for g in results),
        "wire_received": sum(g["wire_received"] for g in results),
        "payload": sum(g.get("payload_sent", 0) + g.get("payload_received", 0) for g in results),
        "connections_opened": sum(g.get("connections_opened", 0) for g in results),
        # Connections that carried the window's requests: open at its end, or opened (and
        # perhaps closed again) during it.
        "connections_used": sum(
            g.get("connections_opened", 0) + g.get("tcp_connections", 0) for g in results
        ),
        "tls_handshakes": _sum_tls(results),
    }
    return TrialResult(
        repeat=repeat,
        status=status,
        error=error,
        measured_s=round(measured_s, 3),
        requests=requests,
        errors=errors,
        timeouts=timeouts,
        unsent=unsent,
        warmup_errors=sum(g["warmup_errors"] for g in results),
        reconnects=sum(g["reconnects"] for g in results),
        error_kinds=_sum_kinds(results),
        throughput_per_s=round(requests / measured_s, 1) if measured_s else 0.0,
        offered_rate_per_s=offered_rate_per_s,
        latency_us=latency_figures(latency, censored),
        latency_histogram=latency.encode(),
        censored_histogram=censored.encode(),
        latency_out_of_range=latency.out_of_range,
        service_time_histogram=_merged(results, "service_time").encode() if open_loop else "",
        send_lag_histogram=_merged(results, "send_lag").encode() if open_loop else "",
        connection_wait_histogram=(
            _merged(results, "connection_wait").encode() if open_loop else ""
        ),
        generator=generator,
        client_bound=bool(reasons),
        client_bound_reasons=reasons,
        totals=totals,
        **_server_figures(usage, measured_s, server_cpus),
        tcp_connections=sum(g.get("tcp_connections", 0) for g in results) or None,
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


def lost_event_waits(
    counts: list[bytes], first: int | None, last: int | None, due: DueTimes, horizon_ns: int
) -> LatencyHistogram:
    """Every event of the window a subscriber never got, at the time it was waited for:
    from when it was due to the end of the drain. Its latency is at least that."""
    waits = LatencyHistogram()
    if first is None or last is None:
        return waits
    for arrivals in counts:
        window = arrivals[first : last + 1]
        position = window.find(0)
        while position >= 0:
            waits.record_ns(max(0, horizon_ns - due.due_ns(first + position)))
            position = window.find(0, position + 1)
        missing_beyond = (last - first + 1) - len(window)  # never arrived, never allocated
        for seq in range(first + len(window), first + len(window) + missing_beyond):
            waits.record_ns(max(0, horizon_ns - due.due_ns(seq)))
    return waits


def build_push_trial(
    repeat: int,
    generator_results: list[dict],
    tally: PublicationTally | None,
    usage: ServerUsage | None,
    status: str = "ok",
    error: str | None = None,
    *,
    due: DueTimes | None = None,
    horizon_ns: int = 0,
    generator_cpus: int = 1,
    server_cpus: int = 1,
) -> TrialResult:
    """Merge the subscribers' results for one push trial, against the publisher's tally. A
    trial that ran to the end but delivered nothing in its window is "invalid"."""
    results = generator_results
    counts = [c for g in results for c in g["counts"]]
    tally = tally or PublicationTally()
    first, last = tally.first_seq_in_window, tally.last_seq_in_window
    delivery = delivery_counts(counts, first, last)
    delivery["out_of_order"] = sum(g["out_of_order"] for g in results)
    delivered = delivery["delivered"]
    reason = invalid_push_reason(delivery) if status == "ok" else None
    if reason:
        status, error = "invalid", reason
    latency = _merged(results, "latency")
    latency.out_of_range = sum(g["latency_out_of_range"] for g in results)
    censored = lost_event_waits(counts, first, last, due, horizon_ns) if due is not None else None
    measured_s = max((g["measured_s"] for g in results), default=0.0)
    generator, reasons = _generator_figures(
        results, generator_cpus, measured_s, delivered, False, usage
    )
    # Bytes over the whole trial (handshakes, keepalives, empty polls and all) per event
    # delivered over the whole trial, warm-up included on both sides.
    all_deliveries = sum(len(c) - c.count(0) for c in counts)
    totals = {
        "messages": delivered,
        "byte_messages": all_deliveries,
        "server_cpu_s": usage.cpu_s if usage else None,
        "generator_cpu_s": sum(g["cpu_s"] for g in results),
        "check_s": 0.0,
        "wire_sent": sum(g["wire_sent"] for g in results),
        "wire_received": sum(g["wire_received"] for g in results),
        "payload": sum(g.get("payload_received", 0) for g in results),
        "connections_opened": 0,
        "tls_handshakes": _sum_tls(results),
    }
    counters: dict[str, int] = {}
    for g in results:
        for name, value in g["counters"].items():
            counters[name] = counters.get(name, 0) + value
    extra = {
        "subscriber_counters": counters,
        "server_counters": tally.counters,
        "publish_lag_us": tally.publish_lag_us,
        "events_published": tally.published,
        "faults_skipped": sum(g.get("faults_skipped", 0) for g in results),
    }
    if counters.get("polls") and all_deliveries:
        extra["polls_per_delivered_event"] = round(counters["polls"] / all_deliveries, 3)
    errors = sum(g["errors"] for g in results)
    return TrialResult(
        repeat=repeat,
        status=status,
        error=error,
        measured_s=round(measured_s, 3),
        requests=delivered,
        errors=errors,
        timeouts=0,
        unsent=0,
        warmup_errors=0,
        reconnects=sum(g["reconnects"] for g in results),
        error_kinds=_sum_kinds(results),
        throughput_per_s=round(delivered / measured_s, 1) if measured_s else 0.0,
        offered_rate_per_s=None,
        latency_us=latency_figures(latency, censored),
        latency_histogram=latency.encode(),
        censored_histogram=censored.encode() if censored is not None else "",
        latency_out_of_range=latency.out_of_range,
        generator=generator,
        client_bound=bool(reasons),
        client_bound_reasons=reasons,
        totals=totals,
        **_server_figures(usage, measured_s, server_cpus),
        tcp_connections=delivery["subscribers"] or None,
        delivery=delivery,
        extra=extra,
    )


def build_cold_start_trial(
    repeat: int,
    generator_results: list[dict],
    usage: ServerUsage | None,
    status: str = "ok",
    error: str | None = None,
    *,
    generator_cpus: int = 1,
    server_cpus: int = 1,
) -> TrialResult:
    """Merge the generators' cold starts (bench/cold_start.py) for one trial: the latency
    is new client to first answer or event, its bytes are per cold start the meter
    counted; what is ready, and the reconnects, are in `extra["connection_setup"]`. A trial
    without one validated cold start is "invalid"."""
    results = generator_results
    first = _merged(results, "first")
    first.out_of_range = sum(g["first_out_of_range"] for g in results)
    censored = _merged(results, "censored")
    requests = sum(g["ok"] for g in results)
    errors = sum(g["errors"] + g["reconnect_errors"] for g in results)
    timeouts = sum(g["timeouts"] + g["reconnect_timeouts"] for g in results)
    not_taken = sum(g["not_taken"] for g in results)
    measured_s = max((g["measured_s"] for g in results), default=0.0)
    generator, reasons = _generator_figures(
        results, generator_cpus, measured_s, requests, False, usage
    )
    if status == "ok" and not requests:
        status, error = (
            "invalid",
            (
                f"no validated cold start in the measured window ({errors:,} errors, "
                f"{timeouts:,} timeouts, {not_taken:,} samples not taken)"
            ),
        )
    totals = {
        "messages": requests,
        "byte_messages": sum(g["wire_samples"] for g in results),
        "server_cpu_s": usage.cpu_s if usage else None,
        "generator_cpu_s": sum(g["cpu_s"] for g in results),
        "check_s": 0.0,
        "wire_sent": sum(g["wire_sent"] for g in results),
        "wire_received": sum(g["wire_received"] for g in results),
        "payload": sum(g["payload_sent"] + g["payload_received"] for g in results),
        "connections_opened": sum(g["connections_opened"] for g in results),
        "tls_handshakes": _sum_tls(results),
    }
    cold_start = {
        "ready_histogram": _merged(results, "ready").encode(),
        "reconnect_histogram": _merged(results, "reconnect_first").encode(),
        "reconnect_ready_histogram": _merged(results, "reconnect_ready").encode(),
        "reconnect_censored_histogram": _merged(results, "reconnect_censored").encode(),
        "reconnect_errors": sum(g["reconnect_errors"] for g in results),
        "reconnect_timeouts": sum(g["reconnect_timeouts"] for g in results),
        "warmup_samples": sum(g["warmup_samples"] for g in results),
        "not_taken": not_taken,
        "reconnect_wire_sent": sum(g["reconnect_wire_sent"] for g in results),
        "reconnect_wire_received": sum(g["reconnect_wire_received"] for g in results),
        "reconnect_wire_samples": sum(g["reconnect_wire_samples"] for g in results),
    }
    return TrialResult(
        repeat=repeat,
        status=status,
        error=error,
        measured_s=round(measured_s, 3),
        requests=requests,
        errors=errors,
        timeouts=timeouts,
        unsent=0,  # samples not taken are not lost: the window had room for fewer
        warmup_errors=sum(g["warmup_errors"] for g in results),
        reconnects=sum(g["reconnects"] for g in results),
        error_kinds=_sum_kinds(results),
        throughput_per_s=round(requests / measured_s, 1) if measured_s else 0.0,
        offered_rate_per_s=None,
        latency_us=latency_figures(first, censored),
        latency_histogram=first.encode(),
        censored_histogram=censored.encode(),
        latency_out_of_range=first.out_of_range,
        generator=generator,
        client_bound=bool(reasons),
        client_bound_reasons=reasons,
        totals=totals,
        **_server_figures(usage, measured_s, server_cpus),
        extra={"connection_setup": cold_start},
    )


def failed_trial(repeat: int, status: str, error: str) -> TrialResult:
    """A trial that measured nothing; kept in the results so that it is never left out."""
    return build_trial(repeat, [], None, None, status=status, error=error)


# Pooling a point's trials -----------------------------------------------------------------
def _spread(value: float | None, per_trial: list[float]) -> dict | None:
    if value is None or not per_trial:
        return None
    return {"value": value, "min": min(per_trial), "max": max(per_trial)}


def _ratio(numerator: float, denominator: float, scale: float = 1.0, digits: int = 4):
    return round(numerator / denominator * scale, digits) if denominator else None


def _pooled_ratio(trials: list[TrialResult], top: str, bottom: str, scale: float = 1.0):
    """Sum of `top` over sum of `bottom` (from each trial's totals), with the per-trial
    ratios as its spread; None when nothing was measured."""
    pairs = [
        (t.totals.get(top), t.totals.get(bottom))
        for t in trials
        if t.totals.get(top) is not None and t.totals.get(bottom)
    ]
    if not pairs:
        return None
    value = _ratio(sum(a for a, _ in pairs), sum(b for _, b in pairs), scale)
    return _spread(value, [_ratio(a, b, scale) for a, b in pairs])


def _latency_spread(trials: list[TrialResult], figures: dict, pooled: LatencyHistogram) -> dict:
    """Each reported percentile's range: the trials' own values (where a trial alone has
    the samples for it) and the pooled sample's 95% confidence interval, whichever is
    wider. A point whose trials are too thin to give a percentile each still gets an
    honest width, never a zero-width 'range' of one pooled value."""
    spread = {}
    for name in ("p50_us", "p90_us", "p99_us", "p999_us"):
        if figures.get(name) is None:
            spread[name] = None
            continue
        low, high = percentile_interval(pooled, percentile_of(name))
        values = [figures[name], low, high]
        values += [
            t.latency_us[name]
            for t in trials
            if t.latency_us.get(name) is not None and t.latency_us["count"]
        ]
        spread[name] = [min(values), max(values)]
    return spread


def _generator_delay(trials: list[TrialResult]) -> dict:
    """How late the generators' event loops woke, at each reported percentile, pooled over
    the trials: an answer or event can have waited that long for the generator, so the
    pattern's own latency at that percentile may be as much lower (see ranking.py)."""
    merged = LatencyHistogram.merge([t.generator.get("loop_lag_histogram", "") for t in trials])
    if not merged.count:
        return {}
    lag = latency_figures(merged)
    deepest = lag["max_us"] or 0
    return {
        name: lag[name] if lag[name] is not None else deepest
        for name in ("p50_us", "p90_us", "p99_us", "p999_us")
    }


NOTE_REASON_CHARS = 200  # a failed trial's error ends with a log: its first line will do


def partial_note(outcomes: list[tuple[str, str | None]]) -> str | None:
    """For a point some of whose trials do not count (each a (status, error) pair):
    "2 of 3 trials; 1 failed: <reason>", the first line of the latest such error per
    status; None when every trial counts."""
    left_out: dict[str, list[str | None]] = {}
    for status, error in outcomes:
        if status != "ok":
            left_out.setdefault(status, []).append(error)
    if not left_out:
        return None
    counted = len(outcomes) - sum(len(errors) for errors in left_out.values())
    parts = [f"{counted} of {len(outcomes)} trials"]
    for status, errors in left_out.items():
        reason = next((e for e in reversed(errors) if e), "")
        gist = (reason.strip().splitlines() or [""])[0]
        if len(gist) > NOTE_REASON_CHARS:
            gist = gist[: NOTE_REASON_CHARS - 3].rstrip() + "..."
        parts.append(f"{len(errors)} {status}" + (f": {gist}" if gist else ""))
    return "; ".join(parts)


def summarize(trials: list[TrialResult]) -> dict:
    """The point's figures pooled over its trials. Only trials that ran to the end and
    measured something ("ok") count, in every figure; `partial_note` says which did not."""
    measured = [t for t in trials if t.status == "ok"]
    requests = sum(t.requests for t in measured)
    seconds = sum(t.measured_s for t in measured)
    answered = LatencyHistogram.merge([t.latency_histogram for t in measured])
    censored = LatencyHistogram.merge([t.censored_histogram for t in measured])
    latency = latency_figures(answered, censored)
    together = LatencyHistogram()
    together.add(answered)
    together.add(censored)
    latency["spread"] = _latency_spread(measured, latency, together)
    latency["generator_delay"] = _generator_delay(measured)
    summary: dict = {
        "trials": len(trials),  # the same as trials_total, kept for existing readers
        "trials_total": len(trials),
        "trials_ok": len(measured),
        "partial_note": partial_note([(t.status, t.error) for t in trials]),
        "requests": requests,
        "measured_s": round(seconds, 3),
        "errors": sum(t.errors for t in measured),
        "timeouts": sum(t.timeouts for t in measured),
        "unsent": sum(t.unsent for t in measured),
        "client_bound": any(t.client_bound for t in measured),
        "client_bound_reasons": merged_reasons([t.client_bound_reasons for t in measured]),
        "throughput_per_s": _spread(
            round(requests / seconds, 1) if seconds else None,
            [t.throughput_per_s for t in measured],
        ),
        "latency_us": latency,
        "latency_histogram": answered.encode(),
        "censored_histogram": censored.encode(),
        "server_cpu_s_per_1000": _pooled_ratio(measured, "server_cpu_s", "messages", 1000),
        "generator_cpu_s_per_1000": _pooled_ratio(measured, "generator_cpu_s", "messages", 1000),
        "check_us_per_message": _pooled_ratio(measured, "check_s", "messages", 1e6),
        "wire_bytes_per_message": None,
        "server_cpu_share": _spread(
            max((t.server_cpu_share or 0 for t in measured), default=None),
            [t.server_cpu_share for t in measured if t.server_cpu_share is not None],
        ),
        "server_peak_rss_bytes": _spread(
            max((t.server_peak_rss_bytes or 0 for t in measured), default=None),
            [t.server_peak_rss_bytes for t in measured if t.server_peak_rss_bytes],
        ),
        "tcp_connections": _spread(
            max((t.tcp_connections or 0 for t in measured), default=None),
            [t.tcp_connections for t in measured if t.tcp_connections],
        ),
    }
    for name, parts in (
        ("wire_bytes_per_message", ("wire_sent", "wire_received")),
        ("wire_bytes_sent_per_message", ("wire_sent",)),
        ("wire_bytes_received_per_message", ("wire_received",)),
        ("payload_bytes_per_message", ("payload",)),
    ):
        summary[name] = _pooled_bytes(measured, parts)
    summary["overhead_bytes_per_message"] = _overhead(summary)
    summary["requests_per_connection"] = _pooled_ratio(measured, "messages", "connections_used")
    open_loop = [t for t in measured if t.service_time_histogram]
    if open_loop:
        for name in ("service_time", "send_lag", "connection_wait"):
            merged = LatencyHistogram.merge([getattr(t, f"{name}_histogram") for t in open_loop])
            summary[f"{name}_us"] = latency_figures(merged)
        summary["service_time_histogram"] = LatencyHistogram.merge(
            [t.service_time_histogram for t in open_loop]
        ).encode()
    deliveries = [t.delivery for t in measured if t.delivery]
    if deliveries:
        summary["delivery"] = _pooled_delivery(deliveries)
    summary["lossy"] = bool(
        summary["errors"]
        or summary["timeouts"]
        or summary["unsent"]
        or (summary.get("delivery") or {}).get("lost")
    )
    return summary


def _pooled_bytes(trials: list[TrialResult], parts: tuple[str, ...]) -> dict | None:
    pairs = [
        (sum(t.totals.get(p) or 0 for p in parts), t.totals.get("byte_messages"))
        for t in trials
        if t.totals.get("byte_messages")
    ]
    pairs = [(total, count) for total, count in pairs if total]
    if not pairs:
        return None
    value = round(sum(a for a, _ in pairs) / sum(b for _, b in pairs), 1)
    return _spread(value, [round(a / b, 1) for a, b in pairs])


def _overhead(summary: dict) -> dict | None:
    wire, payload = summary["wire_bytes_per_message"], summary["payload_bytes_per_message"]
    if not wire or not payload:
        return None
    return {
        "value": round(wire["value"] - payload["value"], 1),
        "min": round(wire["min"] - payload["max"], 1),
        "max": round(wire["max"] - payload["min"], 1),
    }


def _pooled_delivery(deliveries: list[dict]) -> dict:
    expected = sum(d["expected"] for d in deliveries)
    delivered = sum(d["delivered"] for d in deliveries)
    per_trial = [d["completeness"] for d in deliveries if d["completeness"] is not None]
    return {
        "completeness": _spread(round(delivered / expected, 6) if expected else None, per_trial),
        "worst_subscriber_completeness": min(
            (
                d["worst_subscriber_completeness"]
                for d in deliveries
                if d["worst_subscriber_completeness"] is not None
            ),
            default=None,
        ),
        "subscribers": max(d["subscribers"] for d in deliveries),
        "expected": expected,
        "delivered": delivered,
        "lost": sum(d["lost"] for d in deliveries),
        "duplicates": sum(d["duplicates"] for d in deliveries),
        "out_of_order": sum(d["out_of_order"] for d in deliveries),
    }


MEMORY_SWEEPS = {
    # the sweep parameter -> what each trial's count is of, and where to read it
    "workload.subscribers": "subscriber",
    "load.connections": "connection",
    "load.concurrency": "request in flight",
}


def memory_unit(sweep_parameter: str | None) -> str | None:
    """What server memory can be given per, for a sweep: per subscriber, per connection,
    or (sweeping concurrency, where HTTP/2 and WebSocket carry several requests on one
    connection) per request in flight; None when the sweep does not vary any of them."""
    return MEMORY_SWEEPS.get(sweep_parameter or "")


def memory_count(point: dict, trial: dict) -> int | None:
    if point["sweep_parameter"] == "load.concurrency":
        return point["config"].get("concurrency")
    return trial.get("tcp_connections")


def memory_per_connection(points: list[dict]) -> dict | None:
    """Server memory per subscriber, connection or request in flight (memory_unit), as
    the slope of peak RSS across the points of one pattern (least squares over every
    trial): what each one adds, not the whole process divided by their number. None when
    the sweep does not vary them, or without two different counts."""
    samples = []
    for point in points:
        if memory_unit(point["sweep_parameter"]) is None:
            return None
        for trial in point.get("trials", []):
            if trial["status"] == "ok" and trial.get("server_peak_rss_bytes"):
                count = memory_count(point, trial)
                if count:
                    samples.append((count, trial["server_peak_rss_bytes"]))
    if len({x for x, _ in samples}) < 2:
        return None
    n = len(samples)
    mean_x = sum(x for x, _ in samples) / n
    mean_y = sum(y for _, y in samples) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in samples)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in samples) / sxx
    intercept = mean_y - slope * mean_x
    # The slope's standard error, from the scatter of the trials around the line: RSS
    # moves by more than a connection's few KiB between runs, so a small sweep may not
    # resolve it, and then says so instead of printing noise as a figure.
    residual = sum((y - intercept - slope * x) ** 2 for x, y in samples)
    error = math.sqrt(residual / (n - 2) / sxx) if n > 2 else math.inf
    return {
        "bytes_per_connection": round(slope),
        "standard_error_bytes": round(error) if error != math.inf else None,
        "resolved": abs(slope) > 2 * error,
        "intercept_bytes": round(intercept),
        "connections": sorted({x for x, _ in samples}),
        "samples": n,
    }
