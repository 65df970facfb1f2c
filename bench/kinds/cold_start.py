"""Cold start: what a brand-new client pays before its first answer or event (TCP, TLS,
an HTTP upgrade or HTTP/2 preface, a subscription), and what a reconnect costs; in
milliseconds and, over a network path, in round trips of the path's configured RTT.

It takes patterns of either other kind: a request/response pattern's new client connects
and asks one get_user; a push pattern's subscribes and waits for its first event, while
its server publishes at a steady rate. The engine is bench/cold_start.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.cold_start import (
    ColdStartEngine,
    ColdStartPlan,
    RequestClient,
    SubscriberClient,
    subscriber_events,
)
from bench.drivers.base import DriverContext, PushContext, PushDriver
from bench.generators import GeneratorJob
from bench.kinds.base import BuiltMeasurement, EngineOpener, Measurement, Words, WorkloadKind
from bench.kinds.push import Push
from bench.kinds.request_response import RequestResponse
from bench.metrics import TrialResult, build_cold_start_trial
from bench.workload import ExpectedAnswers, operation_cycle
from common.events import PublishPlan

if TYPE_CHECKING:
    from bench.drivers.base import Target
    from bench.options import PatternOptions
    from bench.pattern import Pattern
    from bench.resources import Placement
    from bench.scenario import Scenario, Timing
    from bench.serverproc import ServerGroup
    from bench.trials import TrialSession, Window

# Of [load], a cold-start workload uses these: what it samples is under [workload].
LOAD_FIELDS = ("generators", "pin_cpus", "timeout_s")
# Client numbers (a subscriber's id, part of an MQTT client id) per generator: each new
# client is another subscriber, never a session an earlier sample left on a broker.
CLIENTS_PER_GENERATOR = 1_000_000
OPERATIONS = 64  # get_user of this many users, in turn, seeded per generator
# The kinds whose patterns a cold start takes: their own kind says how their servers run.
OWN_KINDS = {kind.name: kind for kind in (RequestResponse(), Push())}


class ColdStart(WorkloadKind):
    name = "cold_start"
    label = "cold start"
    words = Words(
        messages="cold starts (each with its reconnect)",
        rate_column="cold starts/s",
        outcome_column="errors, timeouts",
        wire_unit="cold start",
        wire_column="bytes per cold start",
        wire_includes=", TLS and the protocol's set-up included",
        connection="new client",
        latency="time from a new client to its first answer or event",
        payload="the first answer's record or the first event",
        payload_short="payload",
    )
    counts_deliveries = False
    charts = ("cold-start", "latency-distribution", "cost", "wire-bytes")
    headline_charts = ("cold-start",)
    tool_calibrated = False
    # Its servers are the patterns' own: whether one takes control messages is its kind's.
    server_takes_control = False
    sweepable = ("workload.publish_rate_per_s", "payload.size_bytes", "load.generators")
    plan_type = ColdStartPlan

    def serves(self, pattern: Pattern) -> bool:
        return pattern.kind in OWN_KINDS

    # How its runs read -------------------------------------------------------------------
    def ranked_latency_first(self, open_loop: bool) -> bool:
        return True  # what a new client waits is the whole point

    def latency_question(self, open_loop: bool) -> str:
        return (
            "How long from a brand-new client to its first answer or event? From the call "
            "that opens its connection (TCP, TLS, upgrade, subscribe) to the answer's or "
            "event's arrival, validated"
        )

    # What a scenario of it may set ---------------------------------------------------------
    def load_problems(self, scenario: Scenario) -> list[str]:
        from bench.scenario import show_value

        load = scenario.load
        return [
            f"load.{name} = {show_value(getattr(load, name))}: a cold-start workload sets its "
            f"samples and pacing under [workload]; [load] takes only {', '.join(LOAD_FIELDS)}"
            for name in type(load).model_fields
            if name in load.model_fields_set and name not in LOAD_FIELDS
        ]

    # How one of its trials runs ------------------------------------------------------------
    def point_config(self, scenario: Scenario) -> dict:
        workload = scenario.workload
        return {
            "model": self.name,
            "samples": workload.samples,
            "generators": scenario.load.generators,
            "timeout_s": scenario.load.timeout_s,
            "rate_per_s": workload.publish_rate_per_s,
            "users": scenario.payload.users,
        }

    def generator_jobs(
        self,
        pattern: Pattern,
        scenario: Scenario,
        timing: Timing,
        placement: Placement,
        options: PatternOptions,
    ) -> list[GeneratorJob]:
        """Every generator takes `samples` cold starts of its own, numbered apart."""
        workload, load = scenario.workload, scenario.load
        publishes = OWN_KINDS[pattern.kind].server_takes_control
        return [
            GeneratorJob(
                index=index,
                pattern=pattern.name,
                dataset=scenario.dataset,
                plan=ColdStartPlan(
                    samples=workload.samples,
                    pacing_s=workload.pacing_s,
                    warmup_s=timing.warmup_s,
                    duration_s=timing.duration_s,
                    timeout_s=load.timeout_s,
                    reconnect=workload.reconnect,
                    rate_per_s=workload.publish_rate_per_s,
                    payload_bytes=scenario.payload.size_bytes,
                    first_client=index * CLIENTS_PER_GENERATOR,
                    phase_spread_s=1 / workload.publish_rate_per_s if publishes else 0.0,
                    seed=scenario.seed * 1000 + index,
                ),
                seed=scenario.seed * 1000 + index,
                options=options,
                place=placement.generators,
            )
            for index in range(load.generators)
        ]

    def check_health(
        self,
        pattern: Pattern,
        servers: ServerGroup,
        target: Target,
        scenario: Scenario,
        options: PatternOptions,
    ) -> None:
        """As the pattern's own kind checks it (request/response: a validated request)."""
        OWN_KINDS[pattern.kind].check_health(pattern, servers, target, scenario, options)

    def measurement(self, session: TrialSession) -> Measurement:
        return _Measurement(session)

    def engine_opener(self, job: GeneratorJob, driver_class: type) -> EngineOpener:
        plan: ColdStartPlan = job.plan
        if issubclass(driver_class, PushDriver):
            context = PushContext(job.options, plan.payload_bytes)
            schedules: dict[int, object] = {}

            def subscriber(target: Target):
                def new_client(number: int, start_ns: int) -> SubscriberClient:
                    if start_ns not in schedules:
                        schedules[start_ns] = subscriber_events(plan, start_ns)
                    driver = driver_class(target, context)
                    return SubscriberClient(driver, number, schedules[start_ns])

                return ColdStartEngine(new_client, plan)

            return subscriber
        # Done while the server is still starting: the requests and their answers.
        operations = operation_cycle({"get_user": 1.0}, job.dataset, 1, job.seed, OPERATIONS)
        expected = ExpectedAnswers(job.dataset)
        expected.prepare(operations)
        context = DriverContext(expected, job.options)

        def requester(target: Target):
            def new_client(number: int, start_ns: int) -> RequestClient:
                operation = operations[number % len(operations)]
                driver = driver_class(target, context)
                driver.prepare([operation])
                return RequestClient(driver, operation)

            return ColdStartEngine(new_client, plan)

        return requester


def publish_plan(plan: ColdStartPlan, start_ns: int, grace_s: float) -> PublishPlan:
    """What a push pattern's publisher is told: publish steadily from the start through
    the window, and on while the last sample may still wait for its first event."""
    return PublishPlan(
        start_ns=start_ns,
        rate_per_s=plan.rate_per_s,
        warmup_s=plan.warmup_s,
        duration_s=plan.duration_s + grace_s,
        arrival=plan.arrival,
    )


class _Measurement(BuiltMeasurement):
    """Starts a push pattern's publisher at the common start; builds the trial from the
    generators' samples."""

    def __init__(self, session: TrialSession) -> None:
        self.session = session
        plan: ColdStartPlan = session.group.jobs[0].plan
        self.plan = plan
        # The sample under way when the window ends: its cold start, then its reconnect,
        # each within the timeout (closing too), after the pause before it.
        self.collect_grace_s = 3 * plan.timeout_s + plan.pacing_s

    def on_start(self, start_ns: int) -> None:
        session = self.session
        if OWN_KINDS[session.pattern.kind].server_takes_control:
            session.servers.controller.send_control(
                publish_plan(self.plan, start_ns, self.collect_grace_s)
            )

    def _build(
        self,
        results: list[dict],
        window: Window | None,
        status: str = "ok",
        error: str | None = None,
    ) -> TrialResult:
        session = self.session
        return build_cold_start_trial(
            session.repeat,
            results,
            window.usage if window else None,
            status,
            error,
            **session.cpus_held(),
        )
