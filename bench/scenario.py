"""Scenario files: the typed schema, loading, validation reports, and sweep expansion.

A scenario is one TOML file in `scenarios/`. Unknown keys are errors, so a typo is never
silently ignored. Every problem in a file is reported at once, each naming the file, the
field path, the bad value, and what is allowed.
"""

from __future__ import annotations

import copy
import re
import tomllib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from bench.options import PatternOptions
from bench.patterns import PATTERNS, PUSH, REQUEST_RESPONSE
from bench.workload import OperationName
from servers.dataset import MAX_PAYLOAD_BYTES, MIN_PAYLOAD_BYTES, DatasetSpec

SweepParameter = Literal[
    "workload.rate_per_s",
    "workload.subscribers",
    "load.concurrency",
    "load.rate_per_s",
    "load.connections",
    "load.generators",
    "payload.size_bytes",
    "payload.users",
    "workload.per_page",
]


DEFAULT_OPEN_LOOP_CONNECTIONS = 32


def _workload_kind(value: object) -> str | None:
    """`kind` may be left out of a request/response workload: it is the default."""
    if isinstance(value, dict):
        return value.get("kind", REQUEST_RESPONSE)
    return getattr(value, "kind", None)


def _known_pattern(name: str) -> str:
    if name not in PATTERNS:
        raise ValueError(f"unknown pattern; known patterns: {', '.join(sorted(PATTERNS))}")
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RequestResponseWorkload(_Strict):
    """Clients send requests and wait for answers: get a user, list users, create an order."""

    kind: Literal["request_response"] = REQUEST_RESPONSE
    mix: dict[OperationName, Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: {"get_user": 1.0},
        description="operation -> relative weight",
    )
    per_page: int = Field(20, ge=1, le=100, description="users per page for list_users")
    server_work_us: int = Field(
        0, ge=0, le=100_000, description="CPU work per request on the server, every pattern"
    )

    @field_validator("mix")
    @classmethod
    def _not_empty(cls, mix: dict) -> dict:
        if not mix:
            raise ValueError("needs at least one operation: get_user, list_users, create_order")
        return mix


class PushWorkload(_Strict):
    """A server publishes numbered events at a rate; every subscriber should get every one."""

    kind: Literal["push"]
    rate_per_s: float = Field(gt=0, le=100_000, description="events published per second")
    subscribers: int = Field(ge=1, le=10_000, description="each gets every event")
    arrival: Literal["constant", "poisson"] = "constant"
    drain_s: float = Field(
        1.0, ge=0, le=120, description="wait after the window for events still on their way"
    )
    disconnect_every_s: float | None = Field(
        None, gt=0, le=3600, description="fault injection: each subscriber drops and resumes"
    )
    away_s: float = Field(0.0, ge=0, le=600, description="how long a dropped subscriber stays away")


class Payload(_Strict):
    size_bytes: int = Field(
        1024,
        ge=MIN_PAYLOAD_BYTES,
        le=MAX_PAYLOAD_BYTES,
        description="size of one user with its orders, as compact JSON",
    )
    users: int = Field(1000, ge=1, le=100_000, description="users in the dataset")


class Load(_Strict):
    model: Literal["closed", "open"] = "closed"
    concurrency: int | None = Field(None, ge=1, le=10_000, description="closed: requests in flight")
    rate_per_s: float | None = Field(None, gt=0, le=1_000_000, description="open: arrivals per s")
    connections: int | None = Field(None, ge=1, le=10_000, description="open: connection pool")
    arrival: Literal["constant", "poisson"] = "constant"
    generators: int = Field(1, ge=1, le=64, description="generator processes sharing the load")
    timeout_s: float = Field(5.0, gt=0, le=300)
    pin_cpus: bool = Field(True, description="pin servers and generators to disjoint CPUs")

    def problems_for_request_response(self) -> list[str]:
        if self.model == "closed":
            if self.concurrency is None:
                return ["closed loop needs concurrency (requests in flight)"]
            if self.rate_per_s is not None or self.connections is not None:
                return ["rate_per_s and connections belong to model = 'open'"]
        elif self.rate_per_s is None:
            return ["open loop needs rate_per_s (arrivals per second)"]
        elif self.concurrency is not None:
            return ["open loop takes connections, not concurrency"]
        return []

    @property
    def connection_count(self) -> int:
        if self.model == "closed":
            return self.concurrency or 1
        return self.connections or DEFAULT_OPEN_LOOP_CONNECTIONS


class Timing(_Strict):
    warmup_s: float = Field(2.0, ge=0, le=3600)
    duration_s: float = Field(10.0, gt=0, le=86_400)
    repeats: int = Field(3, ge=1, le=100)


class Limits(_Strict):
    """What a point must achieve; medians across repeats are checked, every point."""

    max_p50_ms: float | None = Field(None, gt=0)
    max_p99_ms: float | None = Field(None, gt=0)
    max_p999_ms: float | None = Field(None, gt=0)
    min_throughput_per_s: float | None = Field(None, ge=0)
    max_errors: int | None = Field(None, ge=0, description="errors + timeouts, all trials")
    min_completeness: float | None = Field(None, ge=0, le=1, description="push")


class Thresholds(Limits):
    """Limits for every pattern, with per-pattern overrides under [thresholds.patterns.X]."""

    patterns: dict[str, Limits] = Field(default_factory=dict)

    def for_pattern(self, pattern: str) -> Limits:
        common = self.model_dump(exclude={"patterns"}, exclude_none=True)
        own = self.patterns.get(pattern)
        return Limits(**{**common, **(own.model_dump(exclude_none=True) if own else {})})


class Report(_Strict):
    """How the published overview ranks the patterns of this scenario."""

    headline: (
        Literal[
            "throughput_per_s",
            "p50_us",
            "p99_us",
            "p999_us",
            "wire_bytes_per_message",
            "server_cpu_s_per_1000",
            "completeness",
        ]
        | None
    ) = Field(None, description="default: throughput (request/response), p99 (push)")
    at: int | float | None = Field(None, description="the sweep value to rank at (default: last)")


class Sweep(_Strict):
    parameter: SweepParameter
    values: list[int | float] = Field(min_length=1, max_length=50)

    @field_validator("values")
    @classmethod
    def _distinct(cls, values: list) -> list:
        if len(set(values)) != len(values):
            raise ValueError("values must be distinct")
        return values


class Scenario(_Strict):
    title: str = Field(min_length=1, max_length=120)
    description: str = ""
    patterns: list[Annotated[str, AfterValidator(_known_pattern)]] = Field(min_length=1)
    workload: Annotated[
        Annotated[RequestResponseWorkload, Tag(REQUEST_RESPONSE)]
        | Annotated[PushWorkload, Tag(PUSH)],
        Discriminator(_workload_kind),
    ] = Field(default_factory=RequestResponseWorkload)
    payload: Payload = Field(default_factory=Payload)
    load: Load = Field(default_factory=Load)
    timing: Timing = Field(default_factory=Timing)
    sweep: Sweep | None = None
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-pattern settings: [options.<pattern>]"
    )
    thresholds: Thresholds | None = None
    report: Report = Field(default_factory=Report)
    seed: int = 1

    @field_validator("patterns")
    @classmethod
    def _distinct_patterns(cls, patterns: list[str]) -> list[str]:
        if len(set(patterns)) != len(patterns):
            raise ValueError("patterns must be distinct")
        return patterns

    @model_validator(mode="after")
    def _load_fits_workload(self) -> Scenario:
        if self.workload.kind == REQUEST_RESPONSE:
            for problem in self.load.problems_for_request_response():
                raise ValueError(f"load: {problem}")
        elif self.load.concurrency or self.load.rate_per_s or self.load.connections:
            raise ValueError(
                "load: a push workload sets its rate and subscribers under [workload]; "
                "[load] takes only generators, timeout_s and pin_cpus"
            )
        return self

    @model_validator(mode="after")
    def _thresholds_name_patterns_of_the_scenario(self) -> Scenario:
        stray = set(self.thresholds.patterns) - set(self.patterns) if self.thresholds else set()
        if stray:
            raise ValueError(
                f"thresholds.patterns names {', '.join(sorted(stray))}, not patterns of this "
                f"scenario ({', '.join(self.patterns)})"
            )
        return self

    @model_validator(mode="after")
    def _patterns_support_workload(self) -> Scenario:
        unable = [p for p in self.patterns if self.workload.kind not in PATTERNS[p].workloads]
        if unable:
            raise ValueError(
                f"patterns {', '.join(unable)} cannot run a {self.workload.kind} workload"
            )
        return self

    @property
    def dataset(self) -> DatasetSpec:
        work_us = getattr(self.workload, "server_work_us", 0)
        return DatasetSpec(
            users=self.payload.users, payload_bytes=self.payload.size_bytes, work_us=work_us
        )


WORKLOAD_MODELS: dict[str, type[BaseModel]] = {
    "request_response": RequestResponseWorkload,
    "push": PushWorkload,
}


@dataclass(frozen=True)
class Point:
    """One setting of the swept parameter, with the scenario as it applies there."""

    index: int
    label: str  # "concurrency=16", or "" when nothing is swept
    sweep_value: int | float | None
    scenario: Scenario


@dataclass(frozen=True)
class LoadedScenario:
    name: str
    path: Path
    text: str
    scenario: Scenario
    points: list[Point]
    options: dict[str, PatternOptions]  # every pattern of the scenario, defaults filled in


class ScenarioError(Exception):
    """A scenario file that cannot be run; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def scenario_name(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem)


def load_scenario(path: Path) -> LoadedScenario:
    """Read and validate a scenario file, or raise ScenarioError listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([f"{path}: cannot read the file: {exc.strerror}"]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError([f"{path}: not valid TOML: {exc}"]) from None
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError([f"{path}: {line}" for line in describe_errors(exc)]) from None
    options, problems = _resolve_options(path, scenario)
    try:
        points = _expand_points(path, raw, scenario)
    except ScenarioError as exc:
        problems += exc.problems
    if problems:
        raise ScenarioError(problems)
    return LoadedScenario(scenario_name(path), path, text, scenario, points, options)


def _resolve_options(path: Path, scenario: Scenario) -> tuple[dict[str, PatternOptions], list]:
    problems = [
        f"{path}: options.{name}: not a pattern of this scenario; "
        f"its patterns: {', '.join(scenario.patterns)}"
        for name in scenario.options
        if name not in scenario.patterns
    ]
    resolved = {}
    for name in scenario.patterns:
        pattern = PATTERNS[name]
        try:
            resolved[name] = pattern.options(scenario.options.get(name))
        except ValidationError as exc:
            for line in describe_errors(exc, pattern.options_class(), ("options", name)):
                problems.append(f"{path}: {line}")
    return resolved, problems


def _expand_points(path: Path, raw: dict, scenario: Scenario) -> list[Point]:
    if scenario.sweep is None:
        return [Point(0, "", None, scenario)]
    section, key = scenario.sweep.parameter.split(".")
    points, problems = [], []
    for index, value in enumerate(scenario.sweep.values):
        settings = copy.deepcopy(raw)
        settings.pop("sweep")
        settings.setdefault(section, {})[key] = value
        try:
            points.append(Point(index, f"{key}={value}", value, Scenario.model_validate(settings)))
        except ValidationError as exc:
            for line in describe_errors(exc):
                problems.append(f"{path}: sweep.values[{index}] gives {line}")
    if problems:
        raise ScenarioError(problems)
    return points


# Turning pydantic's errors into lines a person can act on --------------------------------
def describe_errors(
    error: ValidationError, model: type[BaseModel] | None = None, prefix: tuple = ()
) -> list[str]:
    """One line per error: field path, bad value, what is allowed. `model` is the model
    that was validated (default Scenario) and `prefix` its place in the file."""
    return [_describe(item, model or Scenario, prefix) for item in error.errors()]


def _describe(item: dict, model: type[BaseModel], prefix: tuple) -> str:
    loc = tuple(item["loc"])
    if loc[:1] == ("workload",) and len(loc) > 1 and loc[1] in WORKLOAD_MODELS:
        loc = loc[:1] + loc[2:]  # pydantic names the union member; the file does not
        item = {**item, "loc": loc, "workload_kind": item["loc"][1]}
    location = _path(prefix + loc)
    message = re.sub(r"^(Value|Assertion) error, ", "", item["msg"])
    kind = item["type"]
    if kind == "missing":
        return f"{location}: required field is missing"
    value = _show(item["input"])
    if kind == "extra_forbidden":
        allowed = ", ".join(_fields_at(model, item["loc"][:-1], item.get("workload_kind"))) or (
            "none"
        )
        return f"{location} = {value}: unknown field; allowed here: {allowed}"
    if location:
        return f"{location} = {value}: {message}"
    return message


def _path(loc: tuple) -> str:
    path = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _show(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _fields_at(
    model: type[BaseModel] | None, loc: tuple, workload_kind: str | None = None
) -> list[str]:
    """The field names the schema allows at `loc`, for 'unknown field' messages."""
    if loc[:1] == ("workload",) and workload_kind in WORKLOAD_MODELS and model is Scenario:
        model, loc = WORKLOAD_MODELS[workload_kind], loc[1:]
    for part in loc:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return []
        model = _model_in(model.model_fields[part].annotation)
    return list(model.model_fields) if model is not None else []


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, Annotated):
        for argument in typing.get_args(annotation):
            found = _model_in(argument)
            if found is not None:
                return found
    return None
