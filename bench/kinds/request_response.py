"""Request/response: clients send requests and wait for the answers (get a user, list
users, create an order), in a closed loop (a fixed number in flight) or an open one (a
rate of arrivals, measured from when each was due)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from bench.drivers.base import DriverContext, Target
from bench.engine import LoadEngine, LoadPlan
from bench.generators import GeneratorJob
from bench.kinds.base import BuiltMeasurement, EngineOpener, Measurement, Words, WorkloadKind
from bench.metrics import TrialResult, build_trial
from bench.pattern import REQUEST_RESPONSE
from bench.serverproc import ServerFailed
from bench.workload import HEALTH_CHECK, ExpectedAnswers, operation_cycle

if TYPE_CHECKING:
    from bench.options import PatternOptions
    from bench.pattern import Pattern
    from bench.resources import Placement
    from bench.scenario import Scenario, Timing
    from bench.serverproc import ServerGroup
    from bench.trials import TrialSession, Window

HEALTH_TIMEOUT_S = 15.0
HEALTH_CALL_TIMEOUT_S = 5.0


class RequestResponse(WorkloadKind):
    name = REQUEST_RESPONSE
    label = "request/response"
    words = Words(
        messages="requests",
        rate_column="requests/s",
        outcome_column="errors, timeouts, unsent",
        wire_unit="exchange",
        wire_column="bytes per exchange",
        wire_includes="",
        connection="connection",
        latency="latency",
        payload="the record as compact JSON",
        payload_short="JSON",
    )
    counts_deliveries = False
    charts = (
        "throughput",
        "latency",
        "coordinated-omission",
        "latency-distribution",
        "cost",
        "wire-bytes",
    )
    headline_charts = ("throughput", "latency")
    tool_calibrated = True
    server_takes_control = False
    sweepable = (
        "load.concurrency",
        "load.rate_per_s",
        "load.connections",
        "load.generators",
        "payload.size_bytes",
        "payload.users",
        "workload.per_page",
    )
    plan_type = LoadPlan

    # How its runs read -------------------------------------------------------------------
    def ranked_latency_first(self, open_loop: bool) -> bool:
        # Under an open loop the rate is given: what differs is how long answers take.
        return open_loop

    def latency_question(self, open_loop: bool) -> str:
        if open_loop:
            return (
                "How long does each pattern take to answer? Measured from the intended "
                "send time (open loop, coordinated omission corrected)"
            )
        return "How long does each pattern take to answer? Measured from the actual send"

    # What a scenario of it may set ---------------------------------------------------------
    def workload_problems(self, scenario: Scenario) -> list[str]:
        from bench.scenario import show_value

        workload = scenario.workload
        given = workload.model_fields_set
        swept = scenario.sweep.parameter if scenario.sweep else None
        if "list_users" in workload.mix or not (
            "per_page" in given or swept == "workload.per_page"
        ):
            return []
        field = "sweep.parameter" if swept == "workload.per_page" else "workload.per_page"
        value = show_value(swept if field == "sweep.parameter" else workload.per_page)
        return [
            f"{field} = {value}: per_page is only used by list_users, which workload.mix "
            f"does not have ({', '.join(workload.mix)}); add list_users to the mix, or "
            "remove it"
        ]

    def load_problems(self, scenario: Scenario) -> list[str]:
        from bench.scenario import CLOSED_LOOP_ONLY, OPEN_LOOP_ONLY, show_value

        load = scenario.load
        given = load.model_fields_set
        other = "open" if load.model == "closed" else "closed"
        elsewhere = OPEN_LOOP_ONLY if load.model == "closed" else CLOSED_LOOP_ONLY
        problems = [
            f"load.{name} = {show_value(getattr(load, name))}: only for load.model = "
            f"{show_value(other)}, and load.model is {show_value(load.model)}; remove it, "
            f"or set model = {show_value(other)}"
            for name in elsewhere
            if name in given
        ]
        needed, loop, meaning = (
            ("concurrency", "a closed loop", "requests in flight, e.g. concurrency = 8")
            if load.model == "closed"
            else ("rate_per_s", "an open loop", "arrivals per second, e.g. rate_per_s = 1000")
        )
        swept = scenario.sweep is not None and scenario.sweep.parameter == f"load.{needed}"
        if getattr(load, needed) is None and not swept:
            problems.append(
                f"load.{needed}: required field is missing; {loop} (load.model = "
                f"{show_value(load.model)}) needs {needed} ({meaning})"
            )
        return problems

    def may_leave_unsent(self, scenario: Scenario) -> bool:
        # Only an open loop has requests due whether or not a connection is free.
        return scenario.load.model == "open"

    # How one of its trials runs ------------------------------------------------------------
    def point_config(self, scenario: Scenario) -> dict:
        load = scenario.load
        return {
            "model": load.model,
            "concurrency": load.concurrency,
            "connections": load.connection_count,
            "rate_per_s": load.rate_per_s,
            "arrival": load.arrival if load.model == "open" else None,
            "generators": min(load.generators, load.connection_count),
            "timeout_s": load.timeout_s,
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
        """Split the point's slots (its concurrency, or its open-loop connections) and its
        open-loop rate across its generators."""
        load = scenario.load
        slots = load.connection_count
        count = min(load.generators, slots)
        jobs = []
        for index in range(count):
            plan = LoadPlan(
                mode=load.model,
                slots=slots // count + (1 if index < slots % count else 0),
                warmup_s=timing.warmup_s,
                duration_s=timing.duration_s,
                timeout_s=load.timeout_s,
                rate_per_s=load.rate_per_s / count if load.rate_per_s else None,
                arrival=load.arrival,
                phase=index / count,
                seed=scenario.seed * 1000 + index,
            )
            jobs.append(
                GeneratorJob(
                    index=index,
                    pattern=pattern.name,
                    dataset=scenario.dataset,
                    plan=plan,
                    mix=dict(scenario.workload.mix),
                    per_page=scenario.workload.per_page,
                    seed=scenario.seed * 1000 + index,
                    options=options,
                    place=placement.generators,
                )
            )
        return jobs

    def check_health(
        self,
        pattern: Pattern,
        servers: ServerGroup,
        target: Target,
        scenario: Scenario,
        options: PatternOptions,
    ) -> None:
        """A real request, validated like any other: a server that answers wrongly is
        not healthy."""
        context = DriverContext(ExpectedAnswers(scenario.dataset), options)
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while True:
            try:
                asyncio.run(
                    asyncio.wait_for(_health_call(pattern, target, context), HEALTH_CALL_TIMEOUT_S)
                )
                return
            except Exception as exc:
                if servers.failure() is not None or time.monotonic() > deadline:
                    raise ServerFailed(
                        pattern.name,
                        f"failed its health check: {type(exc).__name__}: {exc}",
                        servers.processes[0].log_tail(),
                    ) from None
                time.sleep(0.05)

    def measurement(self, session: TrialSession) -> Measurement:
        return _Measurement(session)

    def engine_opener(self, job: GeneratorJob, driver_class: type) -> EngineOpener:
        # Done while the server is still starting: the operations and their answers.
        operations = list(
            job.operations or operation_cycle(job.mix, job.dataset, job.per_page, job.seed)
        )
        expected = ExpectedAnswers(job.dataset)
        expected.prepare(operations)

        def open_engine(target: Target) -> LoadEngine:
            driver = driver_class(target, DriverContext(expected, job.options))
            driver.prepare(operations)
            return LoadEngine(driver, job.plan, operations)

        return open_engine


async def _health_call(pattern: Pattern, target: Target, context: DriverContext) -> None:
    driver = pattern.driver_class()(target, context)
    try:
        connection = await driver.connect()
        try:
            await connection.call(HEALTH_CHECK)
        finally:
            await connection.close()
    finally:
        await driver.close()


class _Measurement(BuiltMeasurement):
    def __init__(self, session: TrialSession) -> None:
        self.session = session
        self.collect_grace_s = session.scenario.load.timeout_s

    def _build(
        self,
        results: list[dict],
        window: Window | None,
        status: str = "ok",
        error: str | None = None,
    ) -> TrialResult:
        session = self.session
        return build_trial(
            session.repeat,
            results,
            window.usage if window else None,
            session.scenario.load.rate_per_s,
            status,
            error,
            **session.cpus_held(),
        )
