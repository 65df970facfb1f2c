"""Dead connections: each push pattern's detector finds a half-open connection (the peer
stopped, no FIN, nothing answers) within its configured time, the subscriber comes back
when the peer does, and the outage figures are computed from those records.

A stopped server (SIGSTOP) is what a dead path looks like to a client: its kernel still
acknowledges TCP, so this is the hardest case (a dead path drops even the ACKs, and TCP's
own retransmission timers add nothing a detector here relies on). No network namespace
is needed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pydantic
import pytest

from bench.drivers.base import PushContext, Target
from bench.drivers.redial import REDIAL_ATTEMPT_S
from bench.kinds.push import dead_path_figures
from bench.outages import Watcher, outage_figures
from bench.registry import PATTERNS
from common.dataset import DatasetSpec
from common.events import PublicationTally
from patterns.mqtt.broker import mosquitto_binary

S = 1_000_000_000
RATE = 50  # events a second: the stream is busy, so only a dead peer makes it silent
PAYLOAD = 256
SLACK_S = 1.5  # a shared machine's scheduling, above the detector's own worst case
needs_mosquitto = pytest.mark.skipif(
    mosquitto_binary() is None, reason="Mosquitto is not installed (make test installs it)"
)


async def until(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.01)


@contextlib.contextmanager
def publishing_server(tmp_path: Path, name: str, options: dict, duration_s: float = 60):
    """The pattern's server(s), publishing RATE events a second from now on."""
    pattern = PATTERNS[name]
    resolved = pattern.options(options)
    servers = pattern.servers(
        DatasetSpec(users=10, payload_bytes=PAYLOAD), resolved, tmp_path, name, None
    )
    with servers:
        port = servers.start()
        servers.controller.send_control(
            {
                "start_ns": time.monotonic_ns() + 50_000_000,
                "rate_per_s": RATE,
                "warmup_s": 0,
                "duration_s": duration_s,
            }
        )
        yield servers, Target("127.0.0.1", port), resolved


def continue_in_any_case(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


async def stop_and_continue(name, target, options, pid) -> tuple[float, float, int]:
    """Subscribe, stop `pid` once events flow, continue it once the subscriber noticed;
    (seconds to notice, seconds to recover after continuing, events after recovery)."""
    driver = PATTERNS[name].driver_class()(target, PushContext(options, PAYLOAD))
    arrivals: list[int] = []

    def on_event(arrived_ns, _seq, _published_ns, _payload, _size) -> bool:
        arrivals.append(arrived_ns)
        return True

    subscription = await driver.subscribe(0, on_event)
    try:
        await until(lambda: len(arrivals) >= 10, 10, "events flowing")
        assert not subscription.noticed_dead_ns, "noticed a death while the server was alive"
        os.kill(pid, signal.SIGSTOP)
        stopped_ns = time.monotonic_ns()
        try:
            await until(lambda: subscription.noticed_dead_ns, 30, "the subscriber noticing")
        finally:
            continued_ns = time.monotonic_ns()
            continue_in_any_case(pid)
        await until(lambda: subscription.recovered_ns, 15, "the subscriber recovering")
        back = len(arrivals)
        await until(lambda: len(arrivals) >= back + 5, 10, "events after recovering")
        assert len(subscription.noticed_dead_ns) == 1, subscription.noticed_dead_ns
        return (
            (subscription.noticed_dead_ns[0] - stopped_ns) / S,
            (subscription.recovered_ns[0] - continued_ns) / S,
            len(arrivals) - back,
        )
    finally:
        continue_in_any_case(pid)
        await subscription.close()
        await driver.close()


# (pattern, detector settings, the detection time they allow: least and most, seconds)
DETECTORS = [
    pytest.param(
        "websocket-push",
        {"client_ping_interval_s": 0.5, "client_ping_timeout_s": 0.5, "close_timeout_s": 0.5},
        # The next ping within 0.5 s, unanswered 0.5 s, then 0.5 s waiting for a close.
        (1.0, 1.5),
        id="websocket-push",
    ),
    pytest.param(
        "grpc-stream",
        {"keepalive_time_s": 0.5, "keepalive_timeout_s": 0.5},
        (0.5, 1.0),
        id="grpc-stream",
    ),
    pytest.param(
        "mqtt-qos0",
        {"keepalive_s": 1},
        # A PINGREQ when nothing was sent for 1 s, given up 1 s later; checked every 0.25 s.
        (1.0, 2.25),
        id="mqtt-qos0",
        marks=needs_mosquitto,
    ),
    pytest.param(
        "sse", {"read_timeout_s": 0.6, "heartbeat_s": 0.2}, (0.6 - 1 / RATE, 0.6), id="sse"
    ),
    pytest.param(
        "long-polling",
        {"request_timeout_s": 0.5, "hold_s": 0.25},
        (0.5 - 1 / RATE, 0.5 + 1 / RATE),
        id="long-polling",
    ),
    pytest.param(
        "short-polling",
        {"request_timeout_s": 0.5, "interval_s": 0.1},
        (0.5, 0.6),
        id="short-polling",
    ),
]


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("name", "options", "allowed"), DETECTORS)
def test_a_subscriber_notices_a_silent_server_within_its_detector_and_comes_back(
    tmp_path, name, options, allowed
):
    with publishing_server(tmp_path, name, options) as (servers, target, resolved):
        pid = servers.processes[servers.target_index].pid
        try:
            detect_s, recover_s, after = asyncio.run(stop_and_continue(name, target, resolved, pid))
        finally:
            continue_in_any_case(pid)
    least, most = allowed
    print(f"{name}: noticed after {detect_s:.3f} s, back {recover_s:.3f} s after SIGCONT")
    # Not before the detector could have fired (a false alarm would), nor much after.
    assert least - 0.1 <= detect_s <= most + SLACK_S, (detect_s, allowed)
    # Back once the server is: at the latest when the attempt under way gives up and the
    # next one is answered.
    assert 0 <= recover_s <= REDIAL_ATTEMPT_S + 1.0 + SLACK_S, recover_s
    assert after >= 5


def test_without_a_detector_a_silent_server_goes_unnoticed(tmp_path):
    # gRPC's default: the client never pings, so a stream that falls silent stays open.
    with publishing_server(tmp_path, "grpc-stream", {}) as (servers, target, resolved):
        pid = servers.processes[servers.target_index].pid

        async def main():
            driver = PATTERNS["grpc-stream"].driver_class()(target, PushContext(resolved, 256))
            arrivals = []
            subscription = await driver.subscribe(0, lambda *event: arrivals.append(event) or 1)
            try:
                await until(lambda: len(arrivals) >= 10, 10, "events flowing")
                os.kill(pid, signal.SIGSTOP)
                try:
                    # Three times what the detector above needed: still nothing noticed.
                    with pytest.raises(AssertionError):
                        await until(lambda: subscription.noticed_dead_ns, 3.0, "a notice")
                finally:
                    continue_in_any_case(pid)
                back = len(arrivals)
                await until(lambda: len(arrivals) > back, 10, "the same stream carrying on")
                assert not subscription.noticed_dead_ns and not subscription.recovered_ns
            finally:
                continue_in_any_case(pid)
                await subscription.close()
                await driver.close()

        asyncio.run(main())


# Webhooks: the provider is the one that notices, by its attempt timeout ---------------
def _receivers(host: str, port: int, options: dict, ready) -> None:
    """A generator process's webhook receivers, until terminated; says when deliveries
    flow."""

    async def main():
        pattern = PATTERNS["webhooks"]
        driver = pattern.driver_class()(
            Target(host, port), PushContext(pattern.options(options), PAYLOAD)
        )
        received = []

        def on_event(*event) -> bool:
            received.append(event)
            if len(received) == 10:
                ready.send(True)
            return True

        await driver.subscribe(0, on_event)
        await asyncio.Event().wait()

    asyncio.run(main())


@pytest.mark.timeout(90)
def test_the_webhook_provider_notices_a_silent_receiver_by_its_attempt_timeout(tmp_path):
    options = {"attempt_timeout_s": 0.5}
    duration_s = 6.0
    with publishing_server(tmp_path, "webhooks", options, duration_s) as (servers, target, _):
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        receivers = context.Process(
            target=_receivers, args=(target.host, target.port, options, theirs), daemon=True
        )
        receivers.start()
        try:
            assert ours.poll(30), "no deliveries reached the receivers"
            os.kill(receivers.pid, signal.SIGSTOP)
            stopped_ns = time.monotonic_ns()
            # The outage: three attempt timeouts long. The provider's record is read from
            # its tally at the end, so there is no notice to wait for meanwhile.
            time.sleep(1.5)
            continued_ns = time.monotonic_ns()
            os.kill(receivers.pid, signal.SIGCONT)
            tally_file = tmp_path / "webhooks.tally"
            servers.controller.send_control({"tally_file": str(tally_file)})
            deadline = time.monotonic() + duration_s + 10
            while not tally_file.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            continue_in_any_case(receivers.pid)
            receivers.terminate()
            receivers.join(10)
    tally = PublicationTally.from_dict(json.loads(tally_file.read_text()))
    (record,) = tally.liveness.values()
    noticed, recovered = record["noticed_dead_ns"], record["recovered_ns"]
    assert len(noticed) == 1 and len(recovered) == 1, record
    detect_s = (noticed[0] - stopped_ns) / S
    recover_s = (recovered[0] - continued_ns) / S
    print(f"webhooks: provider noticed after {detect_s:.3f} s, reached again {recover_s:.3f} s")
    # The attempt in flight when the receiver stopped was sent at most one event before.
    assert 0.5 - 1 / RATE - 0.1 <= detect_s <= 0.5 + SLACK_S, detect_s
    assert 0 <= recover_s <= 2.0 + SLACK_S, recover_s  # the next event's first attempt
    figures = dead_path_figures([[stopped_ns, continued_ns]], [], tally, continued_ns + 10 * S)
    assert figures["watched_by"] == "publisher" and figures["noticed"] == 1


# The figures, from synthetic records ---------------------------------------------------
def test_detection_and_recovery_are_measured_per_outage_from_the_records():
    outages = [[10 * S, 15 * S], [40 * S, 45 * S]]
    watchers = [
        # Noticed 2 s into each outage; back 0.5 s after the first ended, never after
        # the second (still redialing when the trial ended).
        Watcher([12 * S, 42 * S], [int(15.5 * S)]),
        # Noticed the first outage only after it had ended (a late timeout); back 1 s
        # after it ended. Never noticed the second: a detector slower than the outage.
        Watcher([16 * S], [16 * S]),
        # Noticed before the first outage (a reset of its own): not this outage's doing.
        Watcher([9 * S], [int(9.5 * S)]),
    ]
    figures = outage_figures(outages, watchers, horizon_ns=60 * S, watched_by="subscribers")
    first, second = figures["outages"]
    assert (first["noticed"], first["not_noticed"]) == (2, 1)
    assert (first["recovered"], first["not_recovered"]) == (2, 0)
    assert first["detect_s"] == {"median": 4.0, "min": 2.0, "max": 6.0}
    assert first["recover_s"] == {"median": 0.75, "min": 0.5, "max": 1.0}
    assert first["watched_s"] == 30.0 and first["for_s"] == 5.0
    assert (second["noticed"], second["not_noticed"], second["not_recovered"]) == (1, 2, 1)
    assert second["recover_s"] is None and second["watched_s"] == 20.0
    assert figures["detect_values_s"] == [2.0, 6.0, 2.0]
    assert figures["recover_values_s"] == [0.5, 1.0]
    assert (figures["noticed"], figures["not_noticed"]) == (3, 3)
    assert figures["detect_s"]["max"] == 6.0


def test_a_notice_after_the_next_outage_began_belongs_to_the_next_one():
    outages = [[10 * S, 11 * S], [20 * S, 21 * S]]
    # Noticed 25 s after the first began: that is the second outage's, 5 s in.
    figures = outage_figures(outages, [Watcher([25 * S], [])], 30 * S, "subscribers")
    first, second = figures["outages"]
    assert first["noticed"] == 0 and second["detect_s"]["max"] == 5.0
    # An outage beginning after the watchers stopped is not one they lived.
    assert len(outage_figures([[40 * S, 41 * S]], [Watcher([], [])], 30 * S, "x")["outages"]) == 0


def test_the_trial_figures_come_from_the_subscribers_unless_the_publisher_watches():
    results = [
        {"noticed_dead_ns": [[3 * S], []], "recovered_ns": [[4 * S], []]},
        {"noticed_dead_ns": [[2 * S]], "recovered_ns": [[]]},
    ]
    figures = dead_path_figures([[1 * S, 2 * S]], results, PublicationTally(), 10 * S)
    assert figures["watched_by"] == "subscribers" and figures["watchers"] == 3
    assert figures["detect_values_s"] == [2.0, 1.0] and figures["recover_values_s"] == [2.0]
    assert figures["redial_attempt_s"] == REDIAL_ATTEMPT_S
    tally = PublicationTally(liveness={"1": {"noticed_dead_ns": [S + S // 2], "recovered_ns": []}})
    figures = dead_path_figures([[1 * S, 2 * S]], results, tally, 10 * S)
    assert figures["watched_by"] == "publisher" and figures["watchers"] == 1
    assert figures["detect_values_s"] == [0.5]


# Options: library defaults as explicit values, and settings that cannot work refused --
def test_detector_defaults_are_the_libraries_own_and_recorded_as_values():
    websocket = PATTERNS["websocket-push"].options()
    assert (websocket.client_ping_interval_s, websocket.client_ping_timeout_s) == (20.0, 20.0)
    assert websocket.close_timeout_s == 10.0
    grpc = PATTERNS["grpc-stream"].options()
    assert grpc.keepalive_time_s is None and grpc.keepalive_timeout_s == 20.0
    assert grpc.channel_options() == [] and "--min-ping-interval-s" not in grpc.server_args()
    assert PATTERNS["mqtt-qos0"].options().keepalive_s == 60
    assert PATTERNS["long-polling"].options().request_timeout_s == 300.0
    assert PATTERNS["short-polling"].options().request_timeout_s == 300.0
    assert PATTERNS["sse"].options().read_timeout_s is None
    assert PATTERNS["sse"].options().heartbeat_s == 15.0
    assert PATTERNS["webhooks"].options().attempt_timeout_s == 2.0


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("long-polling", {"request_timeout_s": 20.0}),  # the server may hold a poll 20 s
        ("sse", {"read_timeout_s": 10.0}),  # the heartbeat comes every 15 s
    ],
)
def test_a_detector_shorter_than_a_healthy_silence_is_refused(name, options):
    with pytest.raises(pydantic.ValidationError, match="taken for dead"):
        PATTERNS[name].options(options)


# The chart -------------------------------------------------------------------------------
PUSH_RUN = next((Path(__file__).parent / "data" / "runs" / "before").glob("*-push-fanout"))


def test_the_dead_path_chart_pools_each_points_trials_and_is_drawn_only_with_outages(tmp_path):
    from bench.charts.outages import dead_path_chart, row_of
    from bench.results_model import as_run

    document = json.loads((PUSH_RUN / "results.json").read_text())
    assert dead_path_chart(as_run(document), tmp_path / "none") == []
    outages = [[10 * S, 15 * S]]
    noticing, deaf = document["points"][0], document["points"][1]
    for trial in noticing["trials"]:
        watchers = [Watcher([12 * S], [16 * S]), Watcher([], [])]
        trial["extra"]["outages"] = outage_figures(outages, watchers, 60 * S, "subscribers")
    for trial in deaf["trials"]:
        trial["extra"]["outages"] = outage_figures(outages, [Watcher([], [])], 60 * S, "x")
    run = as_run(document)
    row = row_of(run.points[0])
    trials = len(noticing["trials"])
    assert (row.noticed, row.not_noticed) == (trials, trials)
    assert row.detect_s == [2.0] * trials and row.recover_s == [1.0] * trials
    assert row_of(run.points[1]).detect_s == []
    assert row_of(run.points[2]) is None  # a point without outage figures has no row
    written = dead_path_chart(run, tmp_path / "charts")
    assert {path.name for path in written} == {"dead-paths.png", "dead-paths.svg"}


@pytest.mark.timeout(90)
def test_the_push_engine_returns_every_subscribers_notices_for_the_outage_figures(tmp_path):
    from bench.push import PushEngine, PushPlan

    options = {"keepalive_time_s": 0.3, "keepalive_timeout_s": 0.3}
    pattern = PATTERNS["grpc-stream"]
    resolved = pattern.options(options)
    servers = pattern.servers(
        DatasetSpec(users=10, payload_bytes=PAYLOAD), resolved, tmp_path, "engine", None
    )
    with servers:
        target = Target("127.0.0.1", servers.start())
        pid = servers.processes[servers.target_index].pid

        async def main():
            driver = pattern.driver_class()(target, PushContext(resolved, PAYLOAD))
            engine = PushEngine(driver, PushPlan(3, 0, 0.2, 4.0, 1.0, RATE, payload_bytes=PAYLOAD))
            await engine.open()
            start_ns = time.monotonic_ns() + 50_000_000
            servers.controller.send_control(
                {"start_ns": start_ns, "rate_per_s": RATE, "warmup_s": 0.2, "duration_s": 4.0}
            )
            running = asyncio.create_task(engine.run(start_ns))
            try:
                await until(lambda: all(sum(log.counts) >= 10 for log in engine.logs), 10, "events")
                os.kill(pid, signal.SIGSTOP)
                stopped_ns = time.monotonic_ns()
                try:
                    await until(
                        lambda: all(s.noticed_dead_ns for s in engine.subscriptions),
                        10,
                        "every subscriber noticing",
                    )
                finally:
                    continued_ns = time.monotonic_ns()
                    continue_in_any_case(pid)
                result = await running
            finally:
                continue_in_any_case(pid)
                await engine.close()
            return result, stopped_ns, continued_ns

        result, stopped_ns, continued_ns = asyncio.run(main())
    figures = dead_path_figures(
        [[stopped_ns, continued_ns]], [result.to_dict()], None, time.monotonic_ns()
    )
    assert figures["watched_by"] == "subscribers" and figures["watchers"] == 3
    assert (figures["noticed"], figures["recovered"]) == (3, 3), figures
    assert all(0.3 - 0.1 <= s <= 0.6 + SLACK_S for s in figures["detect_values_s"]), figures
