"""The typed reader of `results.json`: a run, its points, their trials and pooled summaries.

Every field is declared once, here, with what it means; docs/results-schema.md is
generated from these models (`python -m bench.results_schema`). The writer is
`bench.results.RunRecorder` with `bench.metrics` (a trial's figures, a point's pooled
summary); a test checks that everything it writes is declared here.

Reading is lenient where files differ by age and strict where they differ by shape: a
field an older file lacks reads as its default (nothing measured: zero, empty, null), and
unknown fields are kept (a read and a `dump` lose nothing), but a missing identity field,
a wrong type or a format version this reader does not know is one sentence naming the
file, the field and the version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from bench.metrics import TRIAL_STATUSES
from bench.trial_time import PHASES
from common.histogram import percentile_of, samples_needed

# JSON's number: an int stays an int and a float a float, so a document reads and dumps
# back exactly as it was written.
Number = int | float
RESULTS_FORMAT = 2
RESULTS_FILE = "results.json"
# Formats this reader refuses, with what changed, so the message says more than a number.
RETIRED_FORMATS = {
    1: "it took the median of the repeats' percentiles, and reported percentiles the "
    "samples could not support"
}
POINT_STATUSES = {
    "ok": "every trial ran to the end and measured something",
    "partial": "some trials did, others failed or were invalid: figures from the ok ones",
    "invalid": "every trial ran to the end but none measured anything usable",
    "failed": "no trial counts, and at least one broke (server or generator)",
    "skipped": "what the pattern needs is not installed",
    "interrupted": "stopped by the user",
    "pending": "not reached",
}
RUN_STATUSES = {
    "running": "still going, or the process was killed",
    "complete": "every point was reached",
    "interrupted": "stopped by Ctrl-C, SIGTERM or SIGHUP",
    "failed": "a bug in the harness stopped it; `error` says what",
}


class ResultsUnreadable(Exception):
    """A results.json that is missing, not JSON, of a format version this reader does not
    know, or not shaped as bench writes it: the message is one sentence naming the file."""


def _statuses(statuses: dict[str, str]) -> str:
    return "; ".join(f"`{name}`: {meaning}" for name, meaning in statuses.items())


def _percentile_rule(name: str) -> str:
    needed = samples_needed(percentile_of(name))
    return f"null with fewer than {needed:,} samples (ten beyond it)"


class Part(BaseModel):
    """What every part of the document shares: unknown keys are kept, so that a file a
    newer writer added fields to reads, and dumps, without losing them."""

    model_config = ConfigDict(extra="allow")

    def to_dict(self) -> dict:
        """The part as results.json holds it: only the keys that were read or set."""
        return self.model_dump(mode="json", exclude_unset=True)


PartT = TypeVar("PartT", bound=Part)


# Figures ---------------------------------------------------------------------------------
class Spread(Part):
    """A pooled figure with its spread across the trials that count."""

    value: Number = Field(
        description="pooled over every trial: a sum over a sum (requests over seconds, CPU "
        "over requests, bytes over messages)"
    )
    min: Number = Field(description="the smallest single trial")
    max: Number = Field(description="the largest single trial")


class LatencyFigures(Part):
    """A latency distribution summarised: microseconds, answered and censored values
    together. Request/response closed loop: from the actual send to the answer's last
    byte; open loop: from the intended send time (coordinated omission corrected); push:
    from when each event was due to its arrival at each subscriber."""

    count: int = Field(0, description="answers (push: first deliveries) measured")
    censored: int = Field(
        0,
        description="requests that timed out, requests never sent (open loop), events never "
        "delivered: each counted at the time it was waited for (the timeout; the window's "
        "end; from its due time to the end of the drain)",
    )
    censored_from_us: int | None = Field(None, description="the smallest censored value")
    p50_us: int | None = Field(None, description=f"the median; {_percentile_rule('p50_us')}")
    p90_us: int | None = Field(None, description=_percentile_rule("p90_us"))
    p99_us: int | None = Field(None, description=_percentile_rule("p99_us"))
    p999_us: int | None = Field(None, description=_percentile_rule("p999_us"))
    lower_bound: list[str] = Field(
        default_factory=list,
        description="the percentiles at or above `censored_from_us`: the true figure is at "
        "least this",
    )
    unsupported: list[str] = Field(
        default_factory=list, description="the percentiles left null for too few samples"
    )
    max_us: int | None = Field(None, description="of the answered values only")
    mean_us: Number | None = Field(None, description="of the answered values only")


class PooledLatency(LatencyFigures):
    """A point's latency: every `ok` trial's histograms merged, with each percentile's
    range."""

    spread: dict[str, list[int] | None] = Field(
        default_factory=dict,
        description="per percentile, `[low, high]`: the trials' own values and the pooled "
        "sample's 95% confidence interval, whichever is wider; null where unsupported",
    )
    generator_delay: dict[str, int] = Field(
        default_factory=dict,
        description="per percentile, how late the generators' event loops woke, pooled: the "
        "pattern's own latency may be that much lower (rankings widen ranges by it)",
    )


class Delivery(Part):
    """Push: what the subscribers got of the events due in one trial's measured window."""

    events_in_window: int = Field(
        0, description="events the server published with a due time in the window (its report)"
    )
    subscribers: int = Field(0, description="subscribers")
    expected: int = Field(0, description="events in the window times subscribers")
    delivered: int = Field(0, description="unique events received")
    lost: int = Field(0, description="expected minus delivered: gaps")
    duplicates: int = Field(0, description="second and later arrivals")
    out_of_order: int = Field(0, description="arrivals of an event older than one already seen")
    completeness: Number | None = Field(None, description="delivered / expected")
    worst_subscriber_completeness: Number | None = Field(
        None, description="the least complete subscriber's share"
    )


class PooledDelivery(Part):
    """Push: delivery over a point's `ok` trials."""

    completeness: Spread | None = Field(None, description="delivered / expected")
    worst_subscriber_completeness: Number | None = Field(
        None, description="the least complete subscriber of any trial"
    )
    subscribers: int = Field(0, description="subscribers (the most in any trial)")
    expected: int = Field(0, description="summed over the trials")
    delivered: int = Field(0, description="summed over the trials")
    lost: int = Field(0, description="summed over the trials")
    duplicates: int = Field(0, description="summed over the trials")
    out_of_order: int = Field(0, description="summed over the trials")


class GeneratorFigures(Part):
    """What a trial's generator processes used and showed."""

    processes: int = Field(0, description="generator processes")
    cpus_held: int = Field(0, description="CPUs they were pinned to")
    cpu_share_per_process: list[Number] = Field(
        default_factory=list, description="each process's CPU over the window"
    )
    total_cpu_share: Number | None = Field(
        None,
        description="their CPU over what they could use: at most one CPU each and no more "
        "than they were pinned to",
    )
    cpus_busy: Number | None = Field(
        None, description="their CPUs' busy share by anyone, from `/proc/stat`, when pinned"
    )
    loop_lag_us: LatencyFigures | None = Field(
        None, description="how late their event loops woke a probe every 2 ms"
    )
    loop_lag_histogram: str = Field("", description="the same, HDR-encoded")
    send_lag_us: LatencyFigures | None = Field(
        None, description="open loop: how late requests went out after a connection was free"
    )
    cpu_us_per_message: Number | None = Field(None, description="their CPU per message")
    check_us_per_message: Number | None = Field(
        None, description="checking answers, outside the latency, per message"
    )


class Totals(Part):
    """A trial's raw sums, which the point's summary pools into rates and costs.

    Bytes on the wire are TCP payload bytes from the kernel's `TCP_INFO` counters of the
    client sockets: protocol framing and headers included, TCP/IP headers not. Push counts
    every connection of the trial (handshakes, keepalives, empty polls) per delivery of
    the trial. The payload is the application's data in the pattern's own encoding
    (request parameters and bodies, the answered records, each delivered event once);
    envelopes, wrappers, query documents, frame prefixes and repeated or failed deliveries
    are overhead."""

    messages: int = Field(0, description="requests (push: deliveries) the CPU figures are per")
    byte_messages: int = Field(
        0,
        description="what the byte figures are per: push counts every delivery of the trial, "
        "warm-up and drain included, as the bytes are",
    )
    server_cpu_s: Number | None = Field(None, description="server CPU in the window")
    generator_cpu_s: Number = Field(0.0, description="generators' CPU in the window")
    check_s: Number = Field(0.0, description="time spent checking answers")
    wire_sent: int = Field(0, description="TCP payload bytes the clients sent")
    wire_received: int = Field(0, description="TCP payload bytes the clients received")
    payload: int = Field(0, description="the application's data, both ways")
    connections_opened: int = Field(0, description="TCP connections opened in the window")
    connections_used: int | None = Field(
        None,
        description="request/response: connections that carried the window's requests (open "
        "at its end, or opened during it)",
    )
    tls_handshakes: dict[str, int] = Field(
        default_factory=dict,
        description="TLS handshakes the clients completed over the whole trial (set-up and "
        "reconnects included), by negotiated version (TLSv1.3, TLSv1.2); empty in the clear",
    )


class ProcessSeries(Part):
    """One process sampled through a trial."""

    pid: int = Field(description="its process id")
    t_s: list[Number] = Field(default_factory=list, description="seconds since the trial began")
    rss_bytes: list[int] = Field(default_factory=list, description="resident memory")
    open_fds: list[int] = Field(default_factory=list, description="open file descriptors")


class ProcessResources(Part):
    """Memory and descriptors of every process of a trial over time (soaks read it)."""

    interval_s: Number = Field(description="seconds between samples")
    processes: dict[str, ProcessSeries] = Field(
        default_factory=dict, description="by name: the server, a broker, each generator"
    )


class ColdStartFigures(Part):
    """A cold-start trial's figures beside its latency (a new client to its first answer
    or event): the moment it was ready, and the reconnects. Histograms HDR-encoded."""

    ready_histogram: str = Field(
        "", description="new client to connected (request/response) or subscribed (push)"
    )
    reconnect_histogram: str = Field(
        "", description="opening again on the same driver to the first answer or new event"
    )
    reconnect_ready_histogram: str = Field(
        "", description="opening again to connected or subscribed"
    )
    reconnect_censored_histogram: str = Field(
        "", description="reconnects that timed out, at the time waited"
    )
    reconnect_errors: int = Field(0, description="reconnects that failed (also in `errors`)")
    reconnect_timeouts: int = Field(0, description="reconnects timed out (also in `timeouts`)")
    warmup_samples: int = Field(0, description="cold starts begun in the warm-up, not counted")
    not_taken: int = Field(
        0, description="samples asked for that the measured window had no room for"
    )
    reconnect_wire_sent: int = Field(0, description="bytes sent by the counted reconnects")
    reconnect_wire_received: int = Field(0, description="bytes they received")
    reconnect_wire_samples: int = Field(0, description="reconnects whose bytes were counted")


class DirectionCounters(Part):
    """What the network emulator did with the packets of one direction."""

    packets: int = Field(0, description="IP packets the sending side put on the path")
    bytes: int = Field(0, description="their bytes, IP headers included")
    delivered: int = Field(0, description="packets it passed on")
    delivered_bytes: int = Field(0, description="their bytes")
    dropped_loss: int = Field(0, description="dropped at random, as `loss_pct` asks")
    dropped_queue: int = Field(
        0, description="dropped because its queue was full (the bandwidth limit's tail drop)"
    )
    dropped_outage: int = Field(0, description="dropped during an outage")
    dropped_write: int = Field(
        0, description="refused by the receiving device (the emulator or its kernel behind)"
    )
    late: int = Field(0, description="written more than 0.5 ms after their release time")
    late_max_us: int = Field(0, description="the latest of those, since the path started, µs")
    in_flight: int = Field(0, description="still on their way when counted")
    loss_pct: Number = Field(0.0, description="`dropped_loss` over `packets`, %")
    dropped_pct: Number = Field(0.0, description="every drop over `packets`, %")


class PathCounters(Part):
    """The network emulator's counters (`bench.network.link.PathStats`)."""

    up: DirectionCounters = Field(default_factory=DirectionCounters, description="client to server")
    down: DirectionCounters = Field(
        default_factory=DirectionCounters, description="server to client"
    )
    outages: list[list[int]] = Field(
        default_factory=list,
        description="each outage actually applied, `[start, end]` in monotonic ns",
    )
    emulator_cpu_s: Number = Field(0.0, description="the emulator process's CPU seconds")
    at_ns: int = Field(0, description="when the emulator counted (monotonic ns)")


class TrialPath(Part):
    """Over an emulated network path: what the path did in a trial, and whether it, not
    the pattern, was the limit (then the trial is also `client_bound`, with the reasons:
    a lower bound, never a loss)."""

    stats: PathCounters = Field(
        default_factory=PathCounters,
        description="from the path's start (health check and warm-up included) to the end "
        "of the measured window",
    )
    window: PathCounters | None = Field(
        None,
        description="the measured window alone (outages: those that opened in it); null "
        "when the trial stopped before its window opened",
    )
    window_s: Number = Field(0.0, description="the window's length the figures below are over")
    tcp_congestion_control: str | None = Field(
        None, description="the kernel's TCP congestion control in the path's namespaces"
    )
    emulator_scheduling: str | None = Field(
        None, description="the emulator's scheduling: SCHED_FIFO, or why it runs without"
    )
    emulator_cpu_share: Number | None = Field(
        None, description="the emulator's CPU over the window, share of one CPU"
    )
    loss_pct: dict[str, Number] = Field(
        default_factory=dict,
        description="`up` and `down`: packets dropped at random over packets sent in the "
        "window, % (a direction that carried nothing is absent)",
    )
    carried_mbit_per_s: dict[str, Number] = Field(
        default_factory=dict,
        description="`up` and `down`: what the path delivered in the window, on average",
    )
    path_bound: bool = Field(False, description="the emulator was the limit")
    path_bound_reasons: list[str] = Field(default_factory=list, description="and why")


class SecondsSpread(Part):
    """Seconds over the subscribers (and outages) that had a value."""

    median: Number | None = Field(None, description="seconds")
    min: Number | None = Field(None, description="seconds")
    max: Number | None = Field(None, description="seconds")


class OutageFigures(Part):
    """One outage of the path, as the watchers lived it (bench/outages.py)."""

    start_ns: int = Field(description="when the path went dark, monotonic ns")
    end_ns: int = Field(description="when it came back, monotonic ns")
    for_s: Number = Field(description="how long it lasted")
    watched_s: Number = Field(description="how long after its start a notice still counted")
    noticed: int = Field(0, description="watchers that noticed it themselves")
    not_noticed: int = Field(0, description="watchers that never did (a figure, not a drop)")
    recovered: int = Field(0, description="watchers receiving again after it")
    not_recovered: int = Field(0, description="watchers that were not, by the end")
    detect_s: SecondsSpread | None = Field(
        None, description="outage start to notice; null when nobody noticed"
    )
    recover_s: SecondsSpread | None = Field(
        None, description="path back to receiving; null when nobody recovered"
    )


class TrialOutages(Part):
    """Push over a path with outages: who noticed the dead path, how fast, and how fast
    they were receiving again."""

    watched_by: str = Field(
        description="`subscribers`, or `publisher` where only the sender can notice (webhooks)"
    )
    watchers: int = Field(0, description="subscribers (or receivers the publisher watched)")
    outages: list[OutageFigures] = Field(default_factory=list, description="each outage")
    noticed: int = Field(0, description="notices, over every outage")
    not_noticed: int = Field(0, description="outages a watcher never noticed")
    recovered: int = Field(0, description="recoveries, over every outage")
    not_recovered: int = Field(0, description="outages a watcher did not recover from")
    detect_s: SecondsSpread | None = Field(
        None, description="outage start to notice; null when nobody noticed"
    )
    recover_s: SecondsSpread | None = Field(
        None, description="path back to receiving; null when nobody recovered"
    )
    detect_values_s: list[Number] = Field(default_factory=list, description="every notice")
    recover_values_s: list[Number] = Field(default_factory=list, description="every recovery")
    redial_attempt_s: Number | None = Field(
        None, description="the bound on each reconnect attempt, the same for every pattern"
    )


class TrialExtra(Part):
    """What a trial adds beyond the common figures (push, cold start, process timelines,
    the network path)."""

    subscriber_counters: dict[str, int] = Field(
        default_factory=dict,
        description="push, the driver's counters: polls, empty polls, automatic reconnects, "
        "signatures and forgeries rejected or accepted, duplicates suppressed...",
    )
    server_counters: dict[str, int] = Field(
        default_factory=dict,
        description="push, the server's counters: slow consumers cut off, events dropped, "
        "webhook attempts, retries, failed deliveries...",
    )
    publish_lag_us: dict[str, Any] | None = Field(
        None, description="push: how late the event source was against its own schedule"
    )
    events_published: int | None = Field(None, description="push: events the server published")
    faults_skipped: int = Field(0, description="push: planned disconnects that did not happen")
    polls_per_delivered_event: Number | None = Field(
        None, description="polling patterns: polls over deliveries"
    )
    connection_setup: ColdStartFigures | None = Field(
        None, description="cold start: ready, and the reconnects"
    )
    process_resources: ProcessResources | None = Field(
        None, description="every process's memory and descriptors over time"
    )
    path: TrialPath | None = Field(None, description="over an emulated network path only")
    outages: TrialOutages | None = Field(
        None, description="push over a path with outages: dead-path detection and recovery"
    )


# Where one trial's wall-clock time went, in seconds, phase by phase: one field per phase
# of bench/trial_time.PHASES, described there. Warm-up, window and drain are what a trial
# is for; the rest is the harness's own cost.
TrialTimings = create_model(
    "TrialTimings",
    __base__=Part,
    __doc__="Where one trial's wall-clock time went, in seconds (bench/trial_time.py).",
    **{phase: (Number, Field(0.0, description=meaning)) for phase, meaning in PHASES.items()},
)


# A run's parts ---------------------------------------------------------------------------
class Trial(Part):
    """One repeat of one pattern at one point."""

    repeat: int = Field(description="0-based")
    status: str = Field(description=_statuses(TRIAL_STATUSES))
    error: str | None = Field(
        None,
        description="why it is not `ok`: an `invalid` trial says what it lacked, with the "
        "counts; a `failed` one names what broke and ends with the tail of its log",
    )
    measured_s: Number = Field(0.0, description="length of the measured window (warm-up excluded)")
    requests: int = Field(
        0, description="answers received and validated inside the window (push: events delivered)"
    )
    errors: int = Field(
        0, description="wrong answers or events, protocol and connection errors in the window"
    )
    timeouts: int = Field(0, description="requests with no answer within `timeout_s`")
    unsent: int = Field(0, description="open loop: requests due in the window never sent")
    warmup_errors: int = Field(0, description="errors during warm-up (not in `errors`)")
    reconnects: int = Field(
        0,
        description="connections replaced after a failure (push: planned reconnects by fault "
        "injection)",
    )
    error_kinds: dict[str, int] = Field(
        default_factory=dict, description="error message to count, at most 20 kinds"
    )
    throughput_per_s: Number = Field(0.0, description="`requests / measured_s`")
    offered_rate_per_s: Number | None = Field(None, description="open loop: the scenario's rate")
    latency_us: LatencyFigures = Field(
        default_factory=LatencyFigures, description="this trial's latency alone"
    )
    latency_histogram: str = Field("", description="the answered (delivered) values, HDR-encoded")
    censored_histogram: str = Field("", description="the censored values, HDR-encoded")
    latency_out_of_range: int = Field(0, description="samples beyond the histogram's 1 h")
    service_time_histogram: str = Field("", description="open loop: latency from the actual send")
    send_lag_histogram: str = Field(
        "",
        description="open loop: how late a request went out after its connection was free "
        "(the generator's own lateness)",
    )
    connection_wait_histogram: str = Field(
        "", description="open loop: how long a due request waited for a free connection"
    )
    generator: GeneratorFigures = Field(
        default_factory=GeneratorFigures, description="the generators' own figures"
    )
    client_bound: bool = Field(
        False, description="whether the generator, not the pattern, was the limit"
    )
    client_bound_reasons: list[str] = Field(default_factory=list, description="and why")
    totals: Totals = Field(default_factory=Totals, description="raw sums the summary pools")
    server_cpu_share: Number | None = Field(
        None, description="server CPU over the window and the CPUs the server was given"
    )
    server_peak_rss_bytes: int | None = Field(
        None, description="largest resident set of the server process(es) in the window"
    )
    tcp_connections: int | None = Field(
        None,
        description="TCP connections the generators held at the window's end (push: subscribers)",
    )
    delivery: Delivery | None = Field(None, description="push only")
    extra: TrialExtra = Field(default_factory=TrialExtra, description="push counters, timelines")
    timings: TrialTimings | None = Field(
        None, description="where its wall-clock time went; null in runs made before they were kept"
    )


_SPREAD = "with its spread across the trials"


class Summary(Part):
    """A point's figures pooled over its `ok` trials only: a failed or invalid trial adds
    no requests, seconds, histogram, delivery count, CPU or bytes.

    Server memory per connection is not a per-point figure: it is the slope of peak RSS
    against connections across a sweep over connection counts
    (`bench.metrics.memory_per_connection`), drawn on the cost chart."""

    trials: int | None = Field(
        None, description="the same as `trials_total`, under the name older readers use"
    )
    trials_total: int | None = Field(None, description="trials run")
    trials_ok: int = Field(0, description="trials that count")
    partial_note: str | None = Field(
        None,
        description='which trials did not count and why ("2 of 3 trials; 1 failed: <first '
        'line of its error>"); null when every trial did (absent in older files: worked out '
        "from the trials)",
    )
    requests: int = Field(0, description="summed")
    measured_s: Number = Field(0.0, description="summed")
    errors: int = Field(0, description="summed")
    timeouts: int = Field(0, description="summed")
    unsent: int = Field(0, description="summed")
    client_bound: bool = Field(False, description="any `ok` trial was generator-bound")
    client_bound_reasons: list[str] = Field(
        default_factory=list, description="their reasons, one line per symptom"
    )
    lossy: bool = Field(False, description="errors, timeouts, unsent requests or lost events")
    throughput_per_s: Spread | None = Field(None, description=f"requests per second, {_SPREAD}")
    latency_us: PooledLatency = Field(
        default_factory=PooledLatency, description="every trial's histograms merged"
    )
    latency_histogram: str = Field("", description="the merged answered values, HDR-encoded")
    censored_histogram: str = Field("", description="the merged censored values, HDR-encoded")
    server_cpu_s_per_1000: Spread | None = Field(
        None, description=f"server CPU seconds per 1,000 messages, {_SPREAD}"
    )
    generator_cpu_s_per_1000: Spread | None = Field(
        None, description=f"generator CPU seconds per 1,000 messages, {_SPREAD}"
    )
    check_us_per_message: Spread | None = Field(
        None, description=f"answer checking per message, {_SPREAD}"
    )
    wire_bytes_per_message: Spread | None = Field(
        None, description=f"TCP payload bytes both ways per message, {_SPREAD}"
    )
    wire_bytes_sent_per_message: Spread | None = Field(None, description="the clients' part")
    wire_bytes_received_per_message: Spread | None = Field(None, description="the servers' part")
    payload_bytes_per_message: Spread | None = Field(
        None, description="the application's data per message"
    )
    overhead_bytes_per_message: Spread | None = Field(
        None, description="wire minus payload: the protocol's overhead"
    )
    requests_per_connection: Spread | None = Field(
        None, description="request/response: requests over the connections that carried them"
    )
    server_cpu_share: Spread | None = Field(None, description="the largest trial's, with spread")
    server_peak_rss_bytes: Spread | None = Field(
        None, description="the largest trial's, with spread"
    )
    tcp_connections: Spread | None = Field(None, description="the largest trial's, with spread")
    service_time_us: LatencyFigures | None = Field(
        None, description="open loop: latency from the actual send"
    )
    send_lag_us: LatencyFigures | None = Field(
        None, description="open loop: the generator's lateness"
    )
    connection_wait_us: LatencyFigures | None = Field(
        None, description="open loop: waiting for a free connection"
    )
    service_time_histogram: str = Field(
        "", description="open loop: the merged service times, HDR-encoded"
    )
    delivery: PooledDelivery | None = Field(None, description="push only")


class PathOutages(Part):
    """Every `every_s` seconds the path drops every packet, both ways, for `for_s`."""

    every_s: Number = Field(description="seconds from the start of one outage to the next")
    for_s: Number = Field(description="how long each outage lasts")
    first_at_s: Number = Field(0.5, description="seconds into the measured window")


class PathConfig(Part):
    """The network path a point asked for: its `[network]` profile with the table's
    overrides (and the sweep value, when a `network.` setting is swept) applied."""

    profile: str = Field("loopback", description='the preset (README, "Network paths")')
    rtt_ms: Number = Field(0, description="round-trip time, half of it each way")
    jitter_ms: Number = Field(0, description="spread of the one-way delay")
    down_mbit: Number | None = Field(None, description="server to client; null: not limited")
    up_mbit: Number | None = Field(None, description="client to server; null: not limited")
    loss_pct: Number = Field(0, description="random loss, each way")
    outages: PathOutages | None = Field(None, description="planned outages, if any")
    tls: bool = Field(False, description="every pattern over TLS, certificates verified")
    emulated: bool = Field(
        False, description="clients and servers in two namespaces with the emulator between"
    )
    description: str = Field("", description="the path in one line, as charts print it")


class PointPath(PathConfig):
    """One point's path, in the run's list of them."""

    point: int = Field(0, description="index of the sweep point")
    label: str = Field("", description="its label")


class RunNetwork(Part):
    """The network a run's points crossed (absent on plain loopback without TLS)."""

    profile: str = Field("loopback", description="the `[network]` profile")
    paths: list[PointPath] = Field(default_factory=list, description="one per sweep point")
    path_bound_thresholds: dict[str, Number] = Field(
        default_factory=dict, description="the path-bound limits in force when it ran"
    )
    calibration: dict[str, Any] | None = Field(
        None,
        description="the latest `bench calibrate --network PROFILE` record on this machine "
        "(its own format: the path's measured RTT, goodput and loss against the configured "
        "values), or null when there is none",
    )


class PointConfig(Part):
    """The load a point ran with, as the runner resolved it."""

    model: str | None = Field(None, description="`closed`, `open`, `push` or `cold_start`")
    concurrency: int | None = Field(None, description="requests in flight (closed loop)")
    connections: int | None = Field(None, description="TCP connections")
    rate_per_s: Number | None = Field(None, description="open loop: requests; push: events")
    arrival: str | None = Field(None, description="open loop: the arrival process")
    generators: int | None = Field(None, description="generator processes")
    timeout_s: Number | None = Field(None, description="request timeout")
    payload_bytes: int | None = Field(None, description="the payload size")
    users: int | None = Field(None, description="users in the dataset")
    subscribers: int | None = Field(None, description="push: subscribers")
    samples: int | None = Field(None, description="cold start: samples per generator")
    workload: dict[str, Any] = Field(default_factory=dict, description="all its settings")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="the pattern's, defaults and a variant's fixed options filled in",
    )
    warmup_s: Number = Field(0.0, description="warm-up per trial")
    duration_s: Number = Field(0.0, description="measured window per trial")
    repeats: int = Field(1, description="trials per point")
    network: PathConfig | None = Field(
        None, description="the network path; null (absent) on plain loopback without TLS"
    )


class Point(Part):
    """One pattern at one sweep point, with all its trials."""

    point: int = Field(description="index of the sweep point")
    label: str = Field(description="its label (`concurrency=16`; empty without a sweep)")
    sweep_parameter: str | None = Field(description="the swept field")
    sweep_value: Number | None = Field(description="its value here")
    pattern: str = Field(description="registry name")
    pattern_label: str = Field(description="the label charts use")
    config: PointConfig = Field(description="the load as run")
    ablation: str = Field(
        "", description="a variant with a mechanism switched off: which (compared, not ranked)"
    )
    latency_set_by: str = Field("", description="the option that decides its latency, if one does")
    status: str = Field(
        description=_statuses(POINT_STATUSES) + ". Anything but `ok` makes `bench run` exit 1; "
        "charts, rankings and claims treat `invalid` points as `failed` ones"
    )
    error: str | None = Field(None, description="the last trial error")
    trials: list[Trial] = Field(description="one per repeat")
    summary: Summary = Field(default_factory=Summary, description="the `ok` trials, pooled")


class Placement(Part):
    """Where the server and the generators ran."""

    server_cpus: list[int] | None = Field(None, description="null when not pinned")
    generator_cpus: list[int] | None = Field(None, description="null when not pinned")
    note: str = Field("", description="the placement in words")


class Headline(Part):
    """What the published overview ranks a scenario's patterns on."""

    headline: str | None = Field(None, description="the figure (default by workload)")
    at: Number | None = Field(None, description="the sweep value (default: the last)")


class RunTimings(Part):
    """Where a run's wall-clock time went besides its trials' own phases."""

    setup_s: Number | None = Field(
        None, description="before the first trial: environment, calibration, run folder"
    )
    trials_s: Number | None = Field(None, description="from the first trial to the last")
    charts_s: Number | None = Field(None, description="summary.csv and the charts")
    wall_s: Number | None = Field(None, description="the whole run")


class RunInfo(Part):
    """What was run, when, and how it ended."""

    id: str = Field(description="the run folder's name")
    scenario: str = Field(description="the scenario's name (file stem)")
    scenario_file: str = Field("", description="its path; a copy is in `scenario.toml`")
    title: str = Field(description="from the scenario")
    description: str = Field("", description="from the scenario")
    workload: str = Field(
        "request_response", description="`request_response`, `push` or `cold_start`"
    )
    sweep_parameter: str | None = Field(None, description="the swept field, or null")
    quick: bool = Field(
        False, description="`bench run --quick`: about a second per point, one repeat"
    )
    placement: Placement = Field(default_factory=Placement, description="CPU pinning")
    patterns: list[str] = Field(default_factory=list, description="the patterns run")
    thresholds: dict[str, Any] | None = Field(
        None, description="the scenario's `[thresholds]`, checked by `bench run` and `compare`"
    )
    report: Headline = Field(default_factory=Headline, description="the scenario's `[report]`")
    calibration_problem: str | None = Field(
        None, description="why no calibration was used (none, or another machine or commit)"
    )
    generator_bound_thresholds: dict[str, Number] | None = Field(
        None, description="the generator-bound limits in force when it ran"
    )
    claims_sha256: str | None = Field(
        None, description="the claims rules in force when it ran (`bench/claims.toml`)"
    )
    network: RunNetwork | None = Field(
        None, description="the network paths and their calibration; absent on plain loopback"
    )
    status: str = Field(description=_statuses(RUN_STATUSES))
    started_at: str = Field("", description="UTC, ISO 8601")
    finished_at: str | None = Field(None, description="UTC, ISO 8601")
    error: str | None = Field(None, description="why it did not complete")
    timings: RunTimings | None = Field(
        None, description="where its time went; null in runs made before it was kept"
    )


class GitState(Part):
    """The code's version."""

    commit: str | None = Field(None, description="the commit")
    dirty: bool = Field(False, description="uncommitted changes")
    diff_sha256: str | None = Field(None, description="the uncommitted changes' hash")


class Environment(Part):
    """What the run was measured on."""

    cpu_model: str | None = Field(None, description="the CPU")
    logical_cpus: int | None = Field(None, description="the machine's")
    usable_cpus: list[int] = Field(default_factory=list, description="those bench may use")
    memory_bytes: int | None = Field(None, description="physical memory")
    os: str | None = Field(None, description="operating system")
    kernel: str | None = Field(None, description="kernel release")
    machine: str | None = Field(None, description="architecture")
    python: str | None = Field(None, description="Python version")
    python_implementation: str | None = Field(None, description="CPython, PyPy...")
    packages: dict[str, str] = Field(
        default_factory=dict, description="versions of the packages that change results"
    )
    tools: dict[str, str] = Field(
        default_factory=dict, description="versions of the external tools installed"
    )
    git: GitState = Field(default_factory=GitState, description="the code's version")
    load_average_at_start: list[Number] = Field(default_factory=list, description="1, 5, 15 min")


class RunDocument(Part):
    """The whole of `results.json`."""

    schema_version: int = Field(
        description=f"`{RESULTS_FORMAT}`, the format version; a reader refuses others"
    )
    run: RunInfo = Field(description="what was run, when, and how it ended")
    environment: Environment = Field(description="what it was measured on")
    calibration: dict[str, Any] | None = Field(
        None,
        description="the `bench calibrate` record the run used (its own format: per pattern "
        "the generator's CPU per request against wrk or h2load), or null when none was "
        "measured on this machine at this commit (`run.calibration_problem` says why)",
    )
    points: list[Point] = Field(description="one per pattern and sweep point, in run order")


# Reading and writing ---------------------------------------------------------------------
def results_path(path: Path) -> Path:
    """A run folder's results.json; a path to a .json file stays as it is."""
    return path if path.suffix == ".json" else path / RESULTS_FILE


def read_json(path: Path) -> dict:
    """The raw document, with one sentence if it cannot be read or is not JSON."""
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise ResultsUnreadable(f"{path}: cannot read it: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ResultsUnreadable(f"{path}: not valid JSON: {exc}") from None


def check_version(raw: object, source: object) -> None:
    """Refuse, in one sentence, a document of a format this reader does not know."""
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version == RESULTS_FORMAT:
        return
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultsUnreadable(
            f"{source}: no schema_version: not a results file bench wrote, or damaged"
        )
    if version > RESULTS_FORMAT:
        raise ResultsUnreadable(
            f"{source}: results format {version} is newer than this bench reads "
            f"({RESULTS_FORMAT}): update bench to read it"
        )
    why = RETIRED_FORMATS.get(version, "an older format")
    raise ResultsUnreadable(
        f"{source}: results format {version} is no longer read ({why}); this bench reads "
        f"format {RESULTS_FORMAT}: run the scenario again, or read the file with the bench "
        "of the commit it names (environment.git)"
    )


def parse(raw: object, source: object = "results document") -> RunDocument:
    """A raw document (as json.load gives it) checked and typed; `source` names it in the
    one sentence that explains why it is refused."""
    check_version(raw, source)
    try:
        return RunDocument.model_validate(raw)
    except ValidationError as exc:
        raise ResultsUnreadable(
            f"{source}: {_first_problem(exc)}: not a results file bench wrote, or damaged"
        ) from None


def _first_problem(exc: ValidationError) -> str:
    """The first field pydantic refused, as a path into the document, and why."""
    error = exc.errors(include_url=False)[0]
    loc, message = list(error["loc"]), error["msg"]
    if loc and loc[-1] in ("int", "float"):  # a Number: pydantic names the union's member
        loc, message = loc[:-1], "input should be a number"
    where = ""
    for part in loc:
        where += f"[{part}]" if isinstance(part, int) else f".{part}" if where else str(part)
    if error["type"] == "missing":
        return f"{where} is missing"
    return f"{where}: {message[0].lower()}{message[1:]}"


def load(path: Path) -> RunDocument:
    """A run's results.json (`path`: the run folder, or the file), read and typed.

    Raises ResultsUnreadable, with one sentence naming the file, when it is missing, not
    JSON, of a format version this reader does not know, or not shaped as bench writes it.
    """
    path = results_path(path)
    return parse(read_json(path), path)


def dump(document: RunDocument, path: Path) -> None:
    """Write `document` to `path` (a run folder, or the file) atomically, as it was read
    plus whatever was set since."""
    path = results_path(path)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(document.to_dict(), indent=1))
    partial.replace(path)


def as_run(document: RunDocument | dict) -> RunDocument:
    """The typed document, from a typed one or a raw dict (`bench.results.load_run`'s)."""
    return document if isinstance(document, RunDocument) else parse(document)


def as_point(point: Point | dict) -> Point:
    """The typed point, from a typed one or a raw dict (as claims read them)."""
    return point if isinstance(point, Point) else _typed(Point, point, "a point")


def as_trial(trial: Trial | dict) -> Trial:
    """The typed trial, from a typed one or a raw dict (as the runner reads them)."""
    return trial if isinstance(trial, Trial) else _typed(Trial, trial, "a trial")


def _typed(model: type[PartT], raw: object, what: str) -> PartT:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ResultsUnreadable(f"{what}: {_first_problem(exc)}") from None
