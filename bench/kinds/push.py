"""Push: a server publishes numbered events at a rate, and every subscriber should get
every one; measured are publish-to-receive latency (from when each event was due) and
how much of what was due arrived."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.drivers.base import PushContext
from bench.drivers.redial import REDIAL_ATTEMPT_S
from bench.generators import GeneratorJob
from bench.kinds.base import EngineOpener, Measurement, Words, WorkloadKind
from bench.metrics import TrialResult, build_push_trial
from bench.outages import Watcher, outage_figures
from bench.pattern import PUSH
from bench.push import PushEngine, PushPlan
from common.events import PublicationTally, PublishPlan, TallyRequest
from common.schedule import DueTimes

if TYPE_CHECKING:
    from bench.options import PatternOptions
    from bench.pattern import Pattern
    from bench.resources import Placement
    from bench.scenario import Scenario, Timing
    from bench.serverproc import ServerGroup
    from bench.trials import TrialSession, Window

TALLY_TIMEOUT_S = 15.0
# Of [load], a push workload uses these: its rate and subscribers are under [workload].
LOAD_FIELDS = ("generators", "pin_cpus")


class Push(WorkloadKind):
    name = PUSH
    label = "push"
    words = Words(
        messages="delivered events",
        rate_column="deliveries/s",
        outcome_column="delivered, lost",
        wire_unit="delivered event",
        wire_column="bytes per event",
        wire_includes=", handshakes, keepalives and empty polls included",
        connection="subscriber",
        latency="publish-to-receive latency",
        payload="the event as JSON",
        payload_short="the event as JSON",
    )
    counts_deliveries = True
    charts = (
        "latency",
        "completeness",
        "latency-distribution",
        "cost",
        "wire-bytes",
        "dead-paths",  # drawn only over a path with outages
    )
    headline_charts = ("latency", "completeness")
    tool_calibrated = True
    server_takes_control = True
    sweepable = (
        "workload.rate_per_s",
        "workload.subscribers",
        "load.generators",
        "payload.size_bytes",
    )
    plan_type = PushPlan

    # How its runs read -------------------------------------------------------------------
    def ranked_latency_first(self, open_loop: bool) -> bool:
        # The rate is the publisher's, the same for every pattern: what differs is delay.
        return True

    def latency_question(self, open_loop: bool) -> str:
        return (
            "How long from an event's publication until each subscriber has it? "
            "Measured from when it was due"
        )

    # What a scenario of it may set ---------------------------------------------------------
    def workload_problems(self, scenario: Scenario) -> list[str]:
        from bench.scenario import show_value

        workload = scenario.workload
        if "away_s" in workload.model_fields_set and workload.disconnect_every_s is None:
            return [
                f"workload.away_s = {show_value(workload.away_s)}: only means something with "
                "workload.disconnect_every_s (how often each subscriber drops); set both, "
                "or neither"
            ]
        return []

    def payload_problems(self, scenario: Scenario) -> list[str]:
        from bench.scenario import show_value

        if "users" not in scenario.payload.model_fields_set:
            return []
        return [
            f"payload.users = {show_value(scenario.payload.users)}: a push workload publishes "
            "events, not users; [payload] takes only size_bytes here"
        ]

    def load_problems(self, scenario: Scenario) -> list[str]:
        from bench.scenario import show_value

        load = scenario.load
        return [
            f"load.{name} = {show_value(getattr(load, name))}: a push workload sets its rate "
            f"and subscribers under [workload]; [load] takes only {' and '.join(LOAD_FIELDS)}"
            for name in type(load).model_fields
            if name in load.model_fields_set and name not in LOAD_FIELDS
        ]

    # How one of its trials runs ------------------------------------------------------------
    def point_config(self, scenario: Scenario) -> dict:
        workload = scenario.workload
        return {
            "model": "push",
            "rate_per_s": workload.rate_per_s,
            "subscribers": workload.subscribers,
            "generators": min(scenario.load.generators, workload.subscribers),
        }

    def generator_jobs(
        self,
        pattern: Pattern,
        scenario: Scenario,
        timing: Timing,
        placement: Placement,
        options: PatternOptions,
    ) -> list[GeneratorJob]:
        """Split the point's subscribers across its generators."""
        workload = scenario.workload
        count = min(scenario.load.generators, workload.subscribers)
        # With no fault injected (by the scenario or the pattern's options) and no outage,
        # nothing comes after every subscriber has every event of the window: the drain
        # may end there (PushEngine._drain).
        unfaulted = (
            workload.disconnect_every_s is None
            and scenario.network.path().outages is None
            and not options.injects_faults()
        )
        jobs, first = [], 0
        for index in range(count):
            subscribers = workload.subscribers // count + (
                1 if index < workload.subscribers % count else 0
            )
            plan = PushPlan(
                subscribers=subscribers,
                first_subscriber=first,
                warmup_s=timing.warmup_s,
                duration_s=timing.duration_s,
                drain_s=drain_s(scenario, options),
                rate_per_s=workload.rate_per_s,
                arrival=workload.arrival,
                payload_bytes=scenario.payload.size_bytes,
                disconnect_every_s=workload.disconnect_every_s,
                away_s=workload.away_s,
                drain_until_complete=unfaulted,
            )
            first += subscribers
            jobs.append(
                GeneratorJob(
                    index=index,
                    pattern=pattern.name,
                    dataset=scenario.dataset,
                    plan=plan,
                    options=options,
                    place=placement.generators,
                )
            )
        return jobs

    def measurement(self, session: TrialSession) -> Measurement:
        return _Measurement(session)

    def engine_opener(self, job: GeneratorJob, driver_class: type) -> EngineOpener:
        context = PushContext(job.options, job.dataset.payload_bytes)
        return lambda target: PushEngine(driver_class(target, context), job.plan)


def publish_plan(plan: PushPlan, start_ns: int) -> PublishPlan:
    """What the publisher is told: the schedule the subscribers check events against."""
    return PublishPlan(
        start_ns=start_ns,
        rate_per_s=plan.rate_per_s,
        warmup_s=plan.warmup_s,
        duration_s=plan.duration_s,
        arrival=plan.arrival,
    )


def drain_s(scenario: Scenario, options: PatternOptions) -> float:
    """How long after the window subscribers wait for events still on their way: the
    scenario's, or longer where the pattern needs it (a polling interval)."""
    return max(scenario.workload.drain_s, options.min_drain_s())


class _Measurement(Measurement):
    """Tells the publisher its plan at the common start; once the subscribers are done
    (after the drain: counters such as webhook retries keep growing until then), asks
    for its tally of what it published."""

    def __init__(self, session: TrialSession) -> None:
        self.session = session
        self.drain_s = drain_s(session.scenario, session.options)
        self.collect_grace_s = self.drain_s
        self.tally_file = session.logs / f".{session.name}.tally"
        self.tally_file.unlink(missing_ok=True)
        self.tally: PublicationTally | None = None
        self.started_ns: int | None = None

    def on_start(self, start_ns: int) -> None:
        self.started_ns = start_ns
        self.session.servers.controller.send_control(
            publish_plan(self.session.group.jobs[0].plan, start_ns)
        )

    def after_collect(self, window: Window) -> None:
        if window.alive:
            self.tally = request_tally(self.tally_file, self.session.servers)

    def trial(self, results: list[dict], window: Window) -> TrialResult:
        session = self.session
        workload = session.scenario.workload
        # Lost events waited from when they were due to the end of the drain.
        censoring = {
            "due": DueTimes(self.started_ns, workload.rate_per_s, workload.arrival),
            "horizon_ns": window.end_ns + round(self.drain_s * 1e9),
        }
        cpus = session.cpus_held()
        if not window.alive or self.tally is None:
            error = (
                session.servers.failure()
                or f"{session.pattern.name}: the server wrote no publication tally"
            )
            trial = build_push_trial(
                session.repeat,
                results,
                self.tally,
                window.usage,
                "failed",
                str(error),
                **censoring,
                **cpus,
            )
        else:
            trial = build_push_trial(
                session.repeat, results, self.tally, window.usage, **censoring, **cpus
            )
        outages = (window.path or {}).get("outages")
        if outages:
            trial.extra["outages"] = dead_path_figures(
                outages, results, self.tally, censoring["horizon_ns"]
            )
        return trial

    def interrupted_trial(self, results: list[dict], why: str) -> TrialResult:
        session = self.session
        return build_push_trial(
            session.repeat, results, None, None, "interrupted", why, **session.cpus_held()
        )


def dead_path_figures(
    outages: list, results: list[dict], tally: PublicationTally | None, horizon_ns: int
) -> dict:
    """How the subscribers lived the path's outages (bench/outages.py), kept in the trial's
    extra as "outages". The watchers are the subscribers, or, where the publisher reports
    watching its subscribers itself (a webhook provider), the publisher's records."""
    if tally is not None and tally.liveness:
        watched_by = "publisher"
        watchers = [
            Watcher(record["noticed_dead_ns"], record["recovered_ns"])
            for record in tally.liveness.values()
        ]
    else:
        watched_by = "subscribers"
        watchers = [
            Watcher(noticed, recovered)
            for result in results
            for noticed, recovered in zip(
                result["noticed_dead_ns"], result["recovered_ns"], strict=True
            )
        ]
    figures = outage_figures(outages, watchers, horizon_ns, watched_by)
    figures["redial_attempt_s"] = REDIAL_ATTEMPT_S
    return figures


def request_tally(tally_file: Path, servers: ServerGroup) -> PublicationTally | None:
    """The publisher's tally, once it has written it; None if it does not in time."""
    servers.controller.send_control(TallyRequest(str(tally_file)))
    deadline = time.monotonic() + TALLY_TIMEOUT_S
    while time.monotonic() < deadline and servers.failure() is None:
        if tally_file.exists():
            return PublicationTally.from_dict(json.loads(tally_file.read_text()))
        time.sleep(0.02)
    return None
