"""What a workload kind is: one interface, asked by the core instead of branching on a
kind's name.

A kind says how people name what it measures (its words, its charts, how its runs are
ranked), what a scenario of it may set, and how one of its trials runs: how a point
splits into generator jobs, which engine a generator drives, what is checked before the
window, what the servers are told during it, and how a trial result is built from what
the generators measured. `request_response.py` and `push.py` implement it; a new kind (a
work queue with competing consumers, say) is one more implementation listed in
`bench/kinds/__init__.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from bench.drivers.base import Target
    from bench.generators import GeneratorJob
    from bench.metrics import TrialResult
    from bench.options import PatternOptions
    from bench.pattern import Pattern
    from bench.resources import Placement
    from bench.scenario import Scenario, Timing
    from bench.serverproc import ServerGroup
    from bench.trials import TrialSession, Window


class Engine(Protocol):
    """What a generator process drives through a trial (bench/engine.py, bench/push.py)."""

    async def open(self) -> None: ...

    async def run(self, start_ns: int): ...  # its result has to_dict()

    def request_stop(self) -> None: ...

    async def close(self) -> None: ...


# Built in the generator process before the server is up; called with the server's
# address once it is, to give the engine that generator drives.
EngineOpener = Callable[["Target"], Engine]


@dataclass(frozen=True)
class Words:
    """How charts, tables and messages name what a kind measures."""

    messages: str  # what the rates and costs are per: "requests", "delivered events"
    rate_column: str  # a table's rate column: "requests/s"
    outcome_column: str  # a table's column of what went wrong: "errors, timeouts, unsent"
    wire_unit: str  # what bytes on the wire are counted per: "exchange"
    wire_column: str  # a table's column of them: "bytes per exchange"
    wire_includes: str  # what the byte counts take in besides the messages, if anything
    connection: str  # what holds one client's place on the server: "connection"
    latency: str  # what its latency is: "latency", "publish-to-receive latency"
    payload: str  # one payload as it travels: "the record as compact JSON"
    payload_short: str  # ...in a legend: "JSON"


class Measurement(ABC):
    """One trial's own part of the measured window, made by `WorkloadKind.measurement`:
    what the servers are told at the common start, what is asked of them once the
    generators are done, and how the trial result is built."""

    # How long past the window the generators may still take to hand in their results
    # (a request's timeout, the push drain); the core adds its own margin.
    collect_grace_s: float
    # Of that, how long they wait on purpose after the window for what is still on its
    # way (push: the drain); part of what the trial measures, not the harness's cost.
    drain_s: float = 0.0

    def on_start(self, start_ns: int) -> None:
        """Called just before the generators are told to start at `start_ns`."""
        return  # nothing to tell the servers, by default

    def after_collect(self, window: Window) -> None:
        """Called once every generator has handed in its result."""
        return  # nothing to ask of the servers, by default

    @abstractmethod
    def trial(self, results: list[dict], window: Window) -> TrialResult:
        """The trial's result from what the generators measured in `window`; "failed"
        when the servers did not live through it."""

    @abstractmethod
    def interrupted_trial(self, results: list[dict], why: str) -> TrialResult:
        """What was measured until a signal stopped the trial."""


class BuiltMeasurement(Measurement):
    """A measurement whose trial is one builder's work, whatever ends it: the window as
    measured, "failed" when a server died in it, "interrupted" when a signal stopped it."""

    session: TrialSession

    def trial(self, results: list[dict], window: Window) -> TrialResult:
        if not window.alive:
            return self._build(results, window, "failed", str(self.session.servers.failure()))
        return self._build(results, window)

    def interrupted_trial(self, results: list[dict], why: str) -> TrialResult:
        return self._build(results, None, "interrupted", why)

    @abstractmethod
    def _build(
        self,
        results: list[dict],
        window: Window | None,
        status: str = "ok",
        error: str | None = None,
    ) -> TrialResult:
        """The trial from the generators' results (and the window, when there was one)."""


class WorkloadKind(ABC):
    name: ClassVar[str]  # as scenario files, entries and results.json spell it
    label: ClassVar[str]  # as people say it: "request/response"
    words: ClassVar[Words]
    # Each subscriber is owed every event: completeness of delivery is measured, limited
    # (thresholds.min_completeness) and can be the headline.
    counts_deliveries: ClassVar[bool]
    charts: ClassVar[tuple[str, ...]]  # the charts of one of its runs, in order
    headline_charts: ClassVar[tuple[str, ...]]  # the ones the published report shows first
    # `bench calibrate` measures its patterns' load generator against an independent tool.
    tool_calibrated: ClassVar[bool]
    # Its servers take control messages on stdin (common/events.py: the publish plan).
    server_takes_control: ClassVar[bool]
    sweepable: ClassVar[tuple[str, ...]]  # the scenario settings a sweep may vary
    plan_type: ClassVar[type]  # what one generator job's plan is (LoadPlan, PushPlan)

    def serves(self, pattern: Pattern) -> bool:
        return pattern.kind == self.name

    # How its runs read -------------------------------------------------------------------
    @abstractmethod
    def ranked_latency_first(self, open_loop: bool) -> bool:
        """Whether its rankings go on p99 latency by default rather than on throughput."""

    @abstractmethod
    def latency_question(self, open_loop: bool) -> str:
        """The question its latency chart answers, and from when latency is measured."""

    # What a scenario of it may set ---------------------------------------------------------
    def workload_problems(self, scenario: Scenario) -> list[str]:
        """[workload] settings that only mean something beside others."""
        return []

    def payload_problems(self, scenario: Scenario) -> list[str]:
        """[payload] settings it does not use."""
        return []

    @abstractmethod
    def load_problems(self, scenario: Scenario) -> list[str]:
        """[load] settings it does not use, or that do not fit together."""

    def may_leave_unsent(self, scenario: Scenario) -> bool:
        """Whether requests due can go unsent (thresholds.max_unsent_fraction)."""
        return False

    # How one of its trials runs ------------------------------------------------------------
    @abstractmethod
    def point_config(self, scenario: Scenario) -> dict:
        """What results.json records of a point's load, beside the settings every kind
        records (`model` first: how the load is driven)."""

    @abstractmethod
    def generator_jobs(
        self,
        pattern: Pattern,
        scenario: Scenario,
        timing: Timing,
        placement: Placement,
        options: PatternOptions,
    ) -> list[GeneratorJob]:
        """The point split across its generator processes."""

    def check_health(
        self,
        pattern: Pattern,
        servers: ServerGroup,
        target: Target,
        scenario: Scenario,
        options: PatternOptions,
    ) -> None:
        """Once the servers are up, while the generators connect (they are told to as it
        begins): raise ServerFailed for a server that is up but not healthy."""
        return  # nothing to check, by default

    @abstractmethod
    def measurement(self, session: TrialSession) -> Measurement:
        """This trial's part of the measured window (see Measurement)."""

    @abstractmethod
    def engine_opener(self, job: GeneratorJob, driver_class: type) -> EngineOpener:
        """In the generator process, before the server is up: whatever can be prepared
        early, and how to build the engine once the server's address is known."""
