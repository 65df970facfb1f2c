"""The claims check: published claims about API patterns beside what this machine measured.

Each claim in claims.toml names a check below. A check reads the published runs (by
scenario name), computes the figures the claim is about, all from the same machine and,
for ratios, the same run, and returns a verdict: "holds here", "does not hold here", or
"not measured" (with the reason). The measured text carries the numbers; the rule that
turned them into a verdict is in the check's docstring and in `rule`.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from bench.environment import describe as describe_environment

HOLDS, FAILS, NOT_MEASURED = "holds here", "does not hold here", "not measured"


@dataclass(frozen=True)
class Verdict:
    verdict: str
    measured: str
    rule: str = ""


@dataclass(frozen=True)
class ClaimResult:
    id: str
    claim: str
    sources: list[str]
    verdict: str
    measured: str
    rule: str
    measured_on: str  # machine and stack


def load_claims() -> dict:
    return tomllib.loads(resources.files("bench").joinpath("claims.toml").read_text())


class Runs:
    """The published runs, by scenario name, and the figures checks need from them."""

    def __init__(self, documents: dict[str, dict]) -> None:
        self.documents = documents

    def point(self, scenario: str, pattern: str, label: str | None = None) -> dict | None:
        """A pattern's point; with `label`, the sweep point of that label ("subscribers=10")."""
        document = self.documents.get(scenario)
        if document is None:
            return None
        for point in document["points"]:
            if point["pattern"] == pattern and (label is None or point["label"] == label):
                return point if (point.get("summary") or {}).get("trials_ok") else None
        return None

    def points(self, scenario: str, label: str | None = None) -> dict[str, dict]:
        document = self.documents.get(scenario) or {"points": []}
        return {
            p["pattern"]: p
            for p in document["points"]
            if (label is None or p["label"] == label) and (p.get("summary") or {}).get("trials_ok")
        }

    def label_of(self, scenario: str, index: int) -> str | None:
        """The label of a sweep point by position (-1: the last)."""
        document = self.documents.get(scenario)
        if not document or not document["points"]:
            return None
        labels = sorted({(p["point"], p["label"]) for p in document["points"]})
        return labels[index][1]

    def environment(self, scenario: str) -> str:
        document = self.documents.get(scenario)
        return describe_environment(document["environment"]) if document else ""


def median(point: dict, name: str) -> float | None:
    spread = (point.get("summary") or {}).get(name)
    return spread["median"] if spread else None


def latency_ms(point: dict, name: str = "p50_us") -> float | None:
    spread = ((point.get("summary") or {}).get("latency_us") or {}).get(name)
    return spread["median"] / 1000 if spread else None


def latency_range_ms(point: dict, name: str = "p50_us") -> tuple[float, float] | None:
    spread = ((point.get("summary") or {}).get("latency_us") or {}).get(name)
    return (spread["min"] / 1000, spread["max"] / 1000) if spread else None


def missing(*things: object) -> bool:
    return any(thing is None for thing in things)


def _not_measured(what: str) -> Verdict:
    return Verdict(NOT_MEASURED, f"no results for {what} in the published runs")


# The checks --------------------------------------------------------------------------
CLAIMED_LATENCY_MS = {
    "websocket": 1,
    "grpc": 5,
    "rest": 50,
    "long-polling": 100,
    "sse": 150,
    "short-polling": 5000,
}
NAMES = {
    "websocket": "WebSocket",
    "grpc": "gRPC",
    "rest": "REST",
    "long-polling": "long polling",
    "sse": "SSE",
    "short-polling": "polling",
    "graphql": "GraphQL",
    "soap": "SOAP",
    "mqtt-qos0": "MQTT",
    "jsonrpc": "JSON-RPC",
}


def _latency_points(runs: Runs) -> dict[str, dict] | None:
    request = runs.points("rr-concurrency", "concurrency=1")
    push = runs.points("push-fanout", "subscribers=10")
    found = {
        name: (request if name in ("websocket", "grpc", "rest") else push).get(name)
        for name in CLAIMED_LATENCY_MS
    }
    return None if any(point is None for point in found.values()) else found


def typical_latency(runs: Runs) -> Verdict:
    """Median latency of each pattern within a factor of 3 of the claimed figure. Request/
    response at concurrency 1 (rr-concurrency); push at 10 subscribers (push-fanout)."""
    points = _latency_points(runs)
    if points is None:
        return _not_measured("rr-concurrency at concurrency 1 and push-fanout at 10 subscribers")
    measured = {name: latency_ms(point) for name, point in points.items()}
    within = all(1 / 3 <= measured[n] / CLAIMED_LATENCY_MS[n] <= 3 for n in measured)
    text = ", ".join(
        f"{NAMES[n]} {measured[n]:.2f} ms (claimed ~{CLAIMED_LATENCY_MS[n]:,})" for n in measured
    )
    interval = points["short-polling"]["config"]["options"].get("interval_s")
    text += f"; polling every {interval:g} s" if interval else ""
    return Verdict(
        HOLDS if within else FAILS, f"p50: {text}", "each p50 within 3x of the claimed figure"
    )


def latency_ranking(runs: Runs) -> Verdict:
    """The claimed order holds if each pattern's p50 is below the next one's, or their
    ranges across repeats overlap (a tie)."""
    points = _latency_points(runs)
    if points is None:
        return _not_measured("rr-concurrency at concurrency 1 and push-fanout at 10 subscribers")
    order = list(CLAIMED_LATENCY_MS)
    broken = []
    for first, second in itertools.pairwise(order):
        low, high = latency_range_ms(points[first]), latency_range_ms(points[second])
        if latency_ms(points[first]) > latency_ms(points[second]) and low[0] > high[1]:
            broken.append(f"{NAMES[first]} is slower than {NAMES[second]}")
    ranked = sorted(points, key=lambda name: latency_ms(points[name]))
    text = "measured order by p50: " + " < ".join(NAMES[n] for n in ranked)
    if broken:
        text += "; " + "; ".join(broken)
    return Verdict(
        FAILS if broken else HOLDS,
        text,
        "each neighbour in the claimed order is faster, or within noise",
    )


CLAIMED_THROUGHPUT = {
    "grpc": 100_000,
    "websocket": 50_000,
    "rest": 10_000,
    "graphql": 8_000,
    "soap": 1_000,
}


def throughput_ranking(runs: Runs) -> Verdict:
    """The claimed order gRPC > WebSocket > REST > GraphQL > SOAP, at concurrency 32 in one
    run (rr-concurrency); MQTT reported from push-rate, where the offered rate caps it."""
    label = "concurrency=32"
    points = {name: runs.point("rr-concurrency", name, label) for name in CLAIMED_THROUGHPUT}
    if any(point is None for point in points.values()):
        return _not_measured(f"rr-concurrency at {label}")
    rates = {name: median(point, "throughput_per_s") for name, point in points.items()}
    order = list(CLAIMED_THROUGHPUT)
    broken = [
        f"{NAMES[a]} {rates[a]:,.0f}/s < {NAMES[b]} {rates[b]:,.0f}/s"
        for a, b in itertools.pairwise(order)
        if (
            points[a]["summary"]["throughput_per_s"]["max"]
            < points[b]["summary"]["throughput_per_s"]["min"]
        )
    ]
    text = ", ".join(
        f"{NAMES[n]} {rates[n]:,.0f}/s (claimed {CLAIMED_THROUGHPUT[n]:,})" for n in order
    )
    mqtt = runs.point("push-rate", "mqtt-qos0", runs.label_of("push-rate", -1))
    if mqtt is not None:
        text += (
            f"; MQTT QoS 0 delivered {median(mqtt, 'throughput_per_s'):,.0f} events/s "
            f"(claimed 30,000) at the highest rate offered, {mqtt['label']}"
        )
    bound = [NAMES[n] for n, p in points.items() if p["summary"].get("client_bound")]
    if bound:
        text += f"; client-bound (lower bounds): {', '.join(bound)}"
    return Verdict(
        FAILS if broken else HOLDS,
        text + ("; out of order: " + "; ".join(broken) if broken else ""),
        "the claimed order, differences beyond the repeats' spread",
    )


def grpc_faster_than_rest(runs: Runs) -> Verdict:
    """gRPC's throughput at least 7x REST's, at concurrency 32 in one run."""
    grpc = runs.point("rr-concurrency", "grpc", "concurrency=32")
    rest = runs.point("rr-concurrency", "rest", "concurrency=32")
    grpc1 = runs.point("rr-concurrency", "grpc", "concurrency=1")
    rest1 = runs.point("rr-concurrency", "rest", "concurrency=1")
    if missing(grpc, rest, grpc1, rest1):
        return _not_measured("rr-concurrency at concurrency 1 and 32")
    rate = median(grpc, "throughput_per_s") / median(rest, "throughput_per_s")
    speed = latency_ms(rest1) / latency_ms(grpc1)
    bytes_ratio = median(grpc, "wire_bytes_per_message") / median(rest, "wire_bytes_per_message")
    text = (
        f"gRPC/REST throughput {rate:.2f}x at concurrency 32; REST p50 / gRPC p50 "
        f"{speed:.2f}x at concurrency 1; gRPC/REST bytes per exchange {bytes_ratio:.2f}x"
    )
    if grpc["summary"].get("client_bound"):
        text += "; gRPC was client-bound (its figure is a lower bound)"
    return Verdict(HOLDS if rate >= 7 else FAILS, text, "throughput ratio of at least 7")


def protobuf_smaller_than_json(runs: Runs) -> Verdict:
    """The same user record as Protobuf (gRPC's messages) and as JSON (REST's bodies),
    payload bytes per exchange from rr-concurrency; holds at a ratio of 4 or more."""
    grpc = runs.point("rr-concurrency", "grpc", "concurrency=1")
    rest = runs.point("rr-concurrency", "rest", "concurrency=1")
    if missing(grpc, rest) or missing(
        median(grpc, "payload_bytes_per_message"), median(rest, "payload_bytes_per_message")
    ):
        return _not_measured("payload bytes of rr-concurrency")
    protobuf = median(grpc, "payload_bytes_per_message")
    json = median(rest, "payload_bytes_per_message")
    ratio = json / protobuf
    return Verdict(
        HOLDS if ratio >= 4 else FAILS,
        f"JSON {json:,.0f} B, Protobuf {protobuf:,.0f} B per exchange: {ratio:.2f}x "
        "(user records are mostly strings, which Protobuf does not shrink)",
        "JSON at least 4x the Protobuf size",
    )


def mqtt_overhead(runs: Runs) -> Verdict:
    """Protocol bytes per delivered event (wire minus payload, both directions) at 10
    subscribers: MQTT at most 10 B and HTTP at least 100 B."""
    label = "subscribers=10"
    mqtt = runs.point("push-fanout", "mqtt-qos0", label)
    http = {name: runs.point("push-fanout", name, label) for name in ("long-polling", "webhooks")}
    if mqtt is None or any(point is None for point in http.values()):
        return _not_measured(f"push-fanout at {label}")
    mqtt_bytes = median(mqtt, "overhead_bytes_per_message")
    http_bytes = {name: median(point, "overhead_bytes_per_message") for name, point in http.items()}
    if missing(mqtt_bytes, *http_bytes.values()):
        return _not_measured(f"protocol overhead (wire minus payload) of push-fanout at {label}")
    holds = mqtt_bytes <= 10 and min(http_bytes.values()) >= 100
    text = (
        f"MQTT QoS 0 {mqtt_bytes:,.1f} B per event (fixed header, topic name, length); "
        + ", ".join(f"{n} {b:,.0f} B over HTTP" for n, b in http_bytes.items())
    )
    return Verdict(HOLDS if holds else FAILS, text, "MQTT at most 10 B, HTTP at least 100 B")


def graphql_fewer_fields(runs: Runs) -> Verdict:
    """Three fields cost fewer bytes per exchange than all of them, beyond the spread."""
    few = runs.point("rr-field-selection", "graphql-fields")
    full = runs.point("rr-field-selection", "graphql")
    rest = runs.point("rr-field-selection", "rest")
    if missing(few, full, rest):
        return _not_measured("rr-field-selection")
    few_bytes = few["summary"]["wire_bytes_per_message"]
    full_bytes = full["summary"]["wire_bytes_per_message"]
    holds = few_bytes["max"] < full_bytes["min"]
    text = (
        f"3 fields {few_bytes['median']:,.0f} B, all fields {full_bytes['median']:,.0f} B, "
        f"REST {median(rest, 'wire_bytes_per_message'):,.0f} B per exchange; throughput "
        f"{median(few, 'throughput_per_s'):,.0f} vs {median(full, 'throughput_per_s'):,.0f}/s"
    )
    return Verdict(HOLDS if holds else FAILS, text, "fewer bytes, beyond the repeats' spread")


def polling_latency(runs: Runs) -> Verdict:
    """Long polling p50 under 10 ms; polling p50 at least a quarter of its interval and p99
    within 1.5 intervals (it waits for the next poll)."""
    label = "subscribers=10"
    long, short = (
        runs.point("push-fanout", name, label) for name in ("long-polling", "short-polling")
    )
    if missing(long, short):
        return _not_measured(f"push-fanout at {label}")
    interval_ms = short["config"]["options"]["interval_s"] * 1000
    long_p50, short_p50, short_p99 = (
        latency_ms(long),
        latency_ms(short),
        latency_ms(short, "p99_us"),
    )
    holds = long_p50 < 10 and short_p50 >= interval_ms / 4 and short_p99 <= 1.5 * interval_ms
    return Verdict(
        HOLDS if holds else FAILS,
        f"long polling p50 {long_p50:.2f} ms; polling every {interval_ms:g} ms: "
        f"p50 {short_p50:.1f} ms, p99 {short_p99:.1f} ms",
        "long polling p50 < 10 ms; polling p50 >= interval/4, p99 <= 1.5 intervals",
    )


def _rates(runs: Runs) -> tuple[str | None, str | None]:
    return runs.label_of("push-rate", 0), runs.label_of("push-rate", -1)


def polling_waste(runs: Runs) -> Verdict:
    """At the lowest event rate: polling answers some polls empty and spends more bytes
    and more server CPU per delivered event than long polling."""
    low, high = _rates(runs)
    points = {
        name: runs.point("push-rate", name, low) for name in ("long-polling", "short-polling")
    }
    if low is None or any(point is None for point in points.values()):
        return _not_measured("push-rate")
    short, long = points["short-polling"], points["long-polling"]
    counters = short["trials"][-1]["extra"]["subscriber_counters"]
    empty = counters.get("empty_polls", 0) / max(1, counters.get("polls", 0))
    short_bytes, long_bytes = (median(p, "wire_bytes_per_message") for p in (short, long))
    short_cpu, long_cpu = (median(p, "server_cpu_s_per_1000") for p in (short, long))
    holds = empty > 0 and short_bytes > long_bytes and short_cpu > long_cpu
    text = (
        f"at {low}: {empty:.0%} of polls empty; {short_bytes:,.0f} B and "
        f"{short_cpu * 1000:.0f} ms of server CPU per 1,000 events, against {long_bytes:,.0f}"
        f" B and {long_cpu * 1000:.0f} ms for long polling"
    )
    short_high, long_high = (
        runs.point("push-rate", n, high) for n in ("short-polling", "long-polling")
    )
    if not missing(short_high, long_high):
        text += (
            f"; at {high}: {median(short_high, 'wire_bytes_per_message'):,.0f} B against "
            f"{median(long_high, 'wire_bytes_per_message'):,.0f} B (polls carry batches)"
        )
    return Verdict(
        HOLDS if holds else FAILS,
        text,
        "at the lowest rate: empty polls, and more bytes and CPU per event",
    )


def polling_requests(runs: Runs) -> Verdict:
    """Polling makes requests at 1/interval per subscriber whatever happens (within 20%);
    a WebSocket subscriber makes one request, its upgrade, and none per event.

    WebSocket's bytes sent per event are shown, not judged: over a short trial at a low
    rate they are mostly the one handshake spread over few events."""
    low, _ = _rates(runs)
    short = runs.point("push-rate", "short-polling", low)
    websocket = runs.point("push-rate", "websocket-push", low)
    if missing(short, websocket):
        return _not_measured("push-rate")
    trial = short["trials"][-1]
    subscribers = short["config"]["subscribers"]
    seconds = trial["extra"]["subscriber_counters"]["polls"] / subscribers
    interval = short["config"]["options"]["interval_s"]
    # Polls span the whole trial: warm-up, window and drain.
    span = (
        short["config"]["warmup_s"]
        + short["config"]["duration_s"]
        + short["config"]["workload"]["drain_s"]
    )
    rate = seconds / span
    # One upgrade per subscriber: no reconnect, planned or not, in any repeat.
    reconnects = sum(
        t["extra"].get("reconnects", 0)
        + t["extra"].get("subscriber_counters", {}).get("unplanned_reconnects", 0)
        for t in websocket["trials"]
    )
    sent = median(websocket, "wire_bytes_sent_per_message")
    holds = abs(rate * interval - 1) <= 0.2 and reconnects == 0
    return Verdict(
        HOLDS if holds else FAILS,
        f"polling: {rate:.1f} polls/s per subscriber with a {interval:g} s interval "
        f"(a 3 s interval over a 50-minute ride: {50 * 60 / 3:,.0f}); WebSocket: one "
        f"upgrade request per subscriber and {reconnects} reconnects, then frames only "
        f"({sent or 0:.1f} B sent per event, the handshake and pongs included)",
        "polls at 1/interval (within 20%); WebSocket: one request per subscriber",
    )


def advice(runs: Runs) -> Verdict:
    return Verdict(
        NOT_MEASURED,
        "a recommendation, not a measurable claim; the polling "
        "results show what an interval costs in latency and requests",
    )


def webhook_call_volume(runs: Runs) -> Verdict:
    """At the lowest event rate, HTTP requests per delivered event: webhook attempts
    against polls. Holds if webhooks need fewer."""
    low, _ = _rates(runs)
    hooks, short = (runs.point("push-rate", n, low) for n in ("webhooks", "short-polling"))
    if missing(hooks, short):
        return _not_measured("push-rate")
    server = hooks["trials"][-1]["extra"]["server_counters"]
    delivered = max(1, server.get("deliveries", 0))
    hook_calls = server.get("attempts", 0) / delivered
    polls = short["trials"][-1]["extra"].get("polls_per_delivered_event") or 0
    interval = short["config"]["options"]["interval_s"]
    events = hooks["config"]["rate_per_s"]
    text = (
        f"at {events:g} events/s: webhooks {hook_calls:.2f} requests per delivered event, "
        f"polling every {interval:g} s {polls:.2f}; polling wins once events outnumber "
        f"polls ({1 / interval:g} per second)"
    )
    return Verdict(
        HOLDS if hook_calls < polls else FAILS,
        text,
        "fewer requests per delivered event at the lowest rate",
    )


def webhook_reliability(runs: Runs) -> Verdict:
    """With receivers failing and losing acknowledgements (push-faults), the claim is that
    retries, deduplication and signatures are all needed. Holds if first attempts failed and
    retries delivered, redeliveries arrived and were suppressed (none processed twice), and
    every genuine signature verified. Completeness is reported beside it: retries are
    bounded, so a long enough outage still loses events, and the figure says how many."""
    hooks = runs.point("push-faults", "webhooks")
    if hooks is None:
        return _not_measured("push-faults")
    trials = hooks["trials"]
    delivery = hooks["summary"]["delivery"]

    def total(counters: str, name: str) -> int:
        return sum(t["extra"].get(counters, {}).get(name, 0) for t in trials)

    retries = total("server_counters", "retries")
    gave_up = total("server_counters", "deliveries_failed")
    failed_first = total("subscriber_counters", "failures_injected")
    suppressed = total("subscriber_counters", "duplicates_suppressed")
    rejected = total("subscriber_counters", "signatures_rejected")
    holds = (
        failed_first > 0
        and retries > 0
        and suppressed > 0
        and delivery["duplicates"] == 0
        and rejected == 0
    )
    return Verdict(
        HOLDS if holds else FAILS,
        f"receivers failed {failed_first:,} first attempts; {retries:,} retries delivered "
        f"{delivery['delivered']:,} of {delivery['expected']:,} events "
        f"({delivery['lost']} lost: the provider gave up {gave_up} deliveries after "
        f"{hooks['config']['options'].get('max_attempts', '?')} attempts); "
        f"{suppressed:,} redeliveries suppressed, {delivery['duplicates']} processed twice; "
        f"{rejected} genuine signatures rejected",
        "retries needed and delivering, redeliveries deduplicated, signatures verified",
    )


def sse_resume(runs: Runs) -> Verdict:
    """Subscribers dropped and resumed during push-faults: SSE loses nothing (Last-Event-ID),
    where WebSocket without replay loses what was sent while it was away."""
    sse = runs.point("push-faults", "sse")
    websocket = runs.point("push-faults", "websocket-push")
    if missing(sse, websocket):
        return _not_measured("push-faults")
    sse_delivery, ws_delivery = sse["summary"]["delivery"], websocket["summary"]["delivery"]
    reconnects = sse["trials"][-1]["extra"]["reconnects"]
    holds = sse_delivery["lost"] == 0 and reconnects > 0
    return Verdict(
        HOLDS if holds else FAILS,
        f"SSE lost {sse_delivery['lost']} of {sse_delivery['expected']:,} events over "
        f"{reconnects} reconnects per trial; WebSocket (no replay) lost "
        f"{ws_delivery['lost']:,} of {ws_delivery['expected']:,}",
        "SSE loses nothing across reconnects",
    )


def connections_per_request(runs: Runs) -> Verdict:
    """REST's requests per TCP connection at concurrency 32, and gRPC's calls in flight per
    connection. The first half holds only if HTTP/1.1 used about one connection per request."""
    rest = runs.point("rr-concurrency", "rest", "concurrency=32")
    grpc = runs.point("rr-concurrency", "grpc", "concurrency=32")
    if missing(rest, grpc) or missing(median(rest, "tcp_connections")):
        return _not_measured("connection counts of rr-concurrency")
    trial = rest["trials"][-1]
    per_connection = trial["requests"] / max(1, trial["tcp_connections"] or 1)
    grpc_connections = median(grpc, "tcp_connections")
    concurrency = grpc["config"]["concurrency"]
    text = (
        f"HTTP/1.1 keep-alive: {per_connection:,.0f} requests per connection "
        f"({trial['tcp_connections']} connections); gRPC: {concurrency} calls in flight on "
        f"{grpc_connections:g} HTTP/2 connections"
    )
    return Verdict(
        HOLDS if per_connection < 2 else FAILS,
        text,
        "HTTP/1.1 about one request per connection (keep-alive says otherwise)",
    )


CHECKS: dict[str, Callable[[Runs], Verdict]] = {
    check.__name__: check
    for check in (
        typical_latency,
        latency_ranking,
        throughput_ranking,
        grpc_faster_than_rest,
        protobuf_smaller_than_json,
        mqtt_overhead,
        graphql_fewer_fields,
        polling_latency,
        polling_waste,
        polling_requests,
        advice,
        webhook_call_volume,
        webhook_reliability,
        sse_resume,
        connections_per_request,
    )
}


def check_claims(documents: dict[str, dict]) -> list[ClaimResult]:
    """Every claim with its verdict on these runs (scenario name -> results.json)."""
    runs = Runs(documents)
    table = load_claims()
    results = []
    for claim in table["claims"]:
        try:
            verdict = CHECKS[claim["check"]](runs)
        except (KeyError, TypeError, ZeroDivisionError) as exc:
            verdict = Verdict(NOT_MEASURED, f"the results lack what this check needs ({exc!r})")
        machines = {runs.environment(name) for name in claim["needs"] if name in documents}
        results.append(
            ClaimResult(
                id=claim["id"],
                claim=claim["claim"],
                sources=[_source(table, s) for s in claim["sources"]],
                verdict=verdict.verdict,
                measured=verdict.measured,
                rule=verdict.rule,
                measured_on="; ".join(sorted(m for m in machines if m)),
            )
        )
    return results


def _source(table: dict, reference: str) -> str:
    key, _, section = reference.partition(": ")
    title = table["sources"].get(key, key)
    return f"{title}, section '{section}'" if section else title
