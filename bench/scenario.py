"""Scenario files: the typed schema, loading, validation reports, and sweep expansion.

A scenario is one UTF-8 TOML file in `scenarios/`. Unknown keys are errors, so a typo is
never silently ignored; values are taken as written (strict: "2000" is not a number, true
is not 1, nan and inf are not finite), and a setting that only means something beside
another (away_s without disconnect_every_s, say) is an error when it stands alone. Every
problem in a file is reported at once, each naming the file, the field as the file spells
it, the bad value, and what is allowed.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass
from datetime import date, datetime, time
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
    ValidationInfo,
    field_validator,
    model_validator,
)

from bench.kinds import DEFAULT_KIND, KINDS, WorkloadKind, kind_for
from bench.network.spec import NetworkSettings
from bench.options import PatternOptions
from bench.pattern import PUSH, REQUEST_RESPONSE
from bench.registry import PATTERNS, Pattern
from bench.workload import OperationName
from common.dataset import MAX_PAYLOAD_BYTES, MIN_PAYLOAD_BYTES, DatasetSpec

# The path between clients and servers is every kind's: any of these can be swept.
NETWORK_SWEEPABLE = (
    "network.rtt_ms",
    "network.loss_pct",
    "network.jitter_ms",
    "network.down_mbit",
    "network.up_mbit",
)


def sweepable(kind: WorkloadKind) -> tuple[str, ...]:
    """What a sweep may vary in a scenario of `kind`: its own settings and the path's."""
    return kind.sweepable + NETWORK_SWEEPABLE


# Every setting some kind of workload can sweep (each kind says which are its own).
SweepParameter = Literal[
    tuple(dict.fromkeys(p for kind in KINDS.values() for p in sweepable(kind)))
]
CLOSED_LOOP_ONLY = ("concurrency",)
OPEN_LOOP_ONLY = ("rate_per_s", "connections", "arrival")
# Validation context of a sweep's points: whole-file rules (report.at) were checked once.
SWEEP_POINT = "sweep_point"

DEFAULT_OPEN_LOOP_CONNECTIONS = 32


def _workload_kind(value: object) -> str | None:
    """`kind` may be left out of a request/response workload: it is the default."""
    if isinstance(value, dict):
        kind = value.get("kind", DEFAULT_KIND)
        return kind if isinstance(kind, str) else repr(kind)  # a tag must be hashable
    return getattr(value, "kind", None)


def _known_pattern(name: str) -> str:
    if name not in PATTERNS:
        raise ValueError(
            f"unknown pattern{_did_you_mean(name, PATTERNS)}; "
            f"known patterns: {', '.join(sorted(PATTERNS))}"
        )
    return name


class _Strict(BaseModel):
    # Values are taken as written: "2000" is not a number, true is not 1, and nan or inf
    # (which TOML allows) is no duration or rate. An int is still a fine float.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


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


class ColdStartWorkload(_Strict):
    """Brand-new clients one after another, each timed to its first answer or event, then
    again after a reconnect; request/response and push patterns alike."""

    kind: Literal["cold_start"]
    samples: int = Field(
        ge=1,
        le=10_000,
        description="cold starts each generator measures, at most: the window's end stops it",
    )
    pacing_s: float = Field(0.05, ge=0, le=60, description="pause after one before the next")
    reconnect: bool = Field(True, description="then close, open again, and time that too")
    publish_rate_per_s: float = Field(
        20.0,
        gt=0,
        le=10_000,
        description="push patterns: their server's steady rate; a first event waits up to "
        "one interval for the next to be published",
    )


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
    max_unsent_fraction: float | None = Field(
        None, ge=0, le=1, description="open loop: share of the requests due never sent"
    )


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
        | Annotated[PushWorkload, Tag(PUSH)]
        | Annotated[ColdStartWorkload, Tag("cold_start")],
        Discriminator(_workload_kind),
    ] = Field(default_factory=RequestResponseWorkload)
    payload: Payload = Field(default_factory=Payload)
    load: Load = Field(default_factory=Load)
    timing: Timing = Field(default_factory=Timing)
    network: NetworkSettings = Field(
        default_factory=NetworkSettings,
        description="the path between clients and servers (default: loopback)",
    )
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
    def _settings_fit_together(self, info: ValidationInfo) -> Scenario:
        """Settings that only mean something beside others, all checked at once: one
        line per problem, each naming its field as the file spells it."""
        kind = kind_for(self)  # what the workload, payload and load may set is the kind's
        rules = [
            _pattern_problems,
            kind.workload_problems,
            kind.payload_problems,
            kind.load_problems,
            _sweep_problems,
            _threshold_problems,
        ]
        # A sweep's points are checked without their [sweep]: report.at was checked once.
        if not (info.context or {}).get(SWEEP_POINT):
            rules.append(_report_problems)
        problems = [line for rule in rules for line in rule(self)]
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def dataset(self) -> DatasetSpec:
        work_us = getattr(self.workload, "server_work_us", 0)
        return DatasetSpec(
            users=self.payload.users, payload_bytes=self.payload.size_bytes, work_us=work_us
        )


# Settings that only mean something together ----------------------------------------------
def _pattern_problems(scenario: Scenario) -> list[str]:
    kind = kind_for(scenario)
    return [
        f"patterns[{index}] = {show_value(name)}: cannot run a {kind.name} workload; patterns "
        f"that can: {', '.join(p for p in PATTERNS if kind.serves(PATTERNS[p]))}"
        for index, name in enumerate(scenario.patterns)
        if not kind.serves(PATTERNS[name])
    ]


def _sweep_problems(scenario: Scenario) -> list[str]:
    if scenario.sweep is None:
        return []
    parameter, kind = scenario.sweep.parameter, kind_for(scenario)
    if parameter not in sweepable(kind):
        return [
            f"sweep.parameter = {show_value(parameter)}: not a setting of a {kind.name} "
            f"workload; sweepable here: {', '.join(sweepable(kind))}"
        ]
    section, name = parameter.split(".")
    model = scenario.load.model
    elsewhere = OPEN_LOOP_ONLY if model == "closed" else CLOSED_LOOP_ONLY
    if section == "load" and name in elsewhere:
        allowed = [p for p in sweepable(kind) if p.removeprefix("load.") not in elsewhere]
        return [
            f"sweep.parameter = {show_value(parameter)}: not a setting of load.model = "
            f"{show_value(model)}; sweepable here: {', '.join(allowed)}"
        ]
    return []


def _threshold_problems(scenario: Scenario) -> list[str]:
    thresholds = scenario.thresholds
    if thresholds is None:
        return []
    problems = [
        f"thresholds.patterns.{name}: not a pattern of this scenario; its patterns: "
        f"{', '.join(scenario.patterns)}"
        for name in thresholds.patterns
        if name not in scenario.patterns
    ]
    where = [("thresholds", thresholds)] + [
        (f"thresholds.patterns.{name}", limits) for name, limits in thresholds.patterns.items()
    ]
    kind = kind_for(scenario)
    if not kind.counts_deliveries:
        problems += [
            f"{place}.min_completeness = {show_value(limits.min_completeness)}: "
            f"{_only_deliveries_counted(kind)}"
            for place, limits in where
            if limits.min_completeness is not None
        ]
    if not kind.may_leave_unsent(scenario):
        problems += [
            f"{place}.max_unsent_fraction = {show_value(limits.max_unsent_fraction)}: only an "
            'open loop (load.model = "open") has requests due that may go unsent'
            for place, limits in where
            if limits.max_unsent_fraction is not None
        ]
    return problems


def _report_problems(scenario: Scenario) -> list[str]:
    report, sweep = scenario.report, scenario.sweep
    problems = []
    kind = kind_for(scenario)
    if report.headline == "completeness" and not kind.counts_deliveries:
        problems.append(f'report.headline = "completeness": {_only_deliveries_counted(kind)}')
    if report.at is not None and sweep is None:
        problems.append(
            f"report.at = {show_value(report.at)}: picks a sweep value to rank at, and this file "
            "has no [sweep]; remove it"
        )
    elif report.at is not None and report.at not in sweep.values:
        problems.append(
            f"report.at = {show_value(report.at)}: not one of sweep.values "
            f"({', '.join(show_value(v) for v in sweep.values)})"
        )
    return problems


def _only_deliveries_counted(kind) -> str:
    counting = " or ".join(k.name for k in KINDS.values() if k.counts_deliveries)
    return f"only a {counting} workload counts delivered events; this one is {kind.name}"


# The workload schemas by the `kind` that picks them.
WORKLOAD_MODELS: dict[str, type[BaseModel]] = {
    typing.get_args(model.model_fields["kind"].annotation)[0]: model
    for model in (RequestResponseWorkload, PushWorkload, ColdStartWorkload)
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
    text = read_scenario_text(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError([f"{path}: not valid TOML: {exc}"]) from None
    try:
        # strict: the [network] table (bench/network/spec.py) is taken as written too.
        scenario = Scenario.model_validate(raw, strict=True)
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


def read_scenario_text(path: Path) -> str:
    """The file as text, or ScenarioError saying why it cannot be: TOML is UTF-8 (TOML
    1.0, "Spec"), so anything else is refused with where its first bad byte is."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise ScenarioError(
            [f"{path}: is a folder, not a scenario file; give its .toml files ({path}/*.toml)"]
        ) from None
    except FileNotFoundError:
        raise ScenarioError([f"{path}: no such file"]) from None
    except OSError as exc:
        raise ScenarioError([f"{path}: cannot read the file: {exc.strerror}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        raise ScenarioError(
            [
                f"{path}: not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line}, "
                f"column {exc.start - line_start + 1} (byte offset {exc.start}); a scenario "
                "must be a UTF-8 encoded TOML file: save it as UTF-8"
            ]
        ) from None
    # Some editors start a UTF-8 file with a byte-order mark; it is not part of the TOML.
    return text.removeprefix("\ufeff")


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
        settings = scenario.options.get(name)
        overridden = pattern.fixed_options_overridden(settings)
        problems += [
            f"{path}: {_fixed_option_problem(pattern, option, value)}"
            for option, value in overridden.items()
        ]
        try:
            resolved[name] = pattern.options(settings)
        except ValidationError as exc:
            for line in describe_errors(exc, pattern.options_class(), ("options", name)):
                problems.append(f"{path}: {line}")
    return resolved, problems


def _fixed_option_problem(variant: Pattern, option: str, value: object) -> str:
    """A variant's fixed option set otherwise: say where the asked value can be had."""
    elsewhere = [
        p.name
        for p in PATTERNS.values()
        if p is not variant
        and p.options_path == variant.options_path
        and (not p.fixed_options or _same(p.fixed_options.get(option), value))
    ]
    instead = f", or use {' or '.join(elsewhere)}" if elsewhere else ""
    return (
        f"options.{variant.name}.{option} = {show_value(value)}: {variant.name} fixes {option} = "
        f"{show_value(variant.fixed_options[option])} (that is what makes it a variant); "
        f"remove the line{instead}"
    )


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b


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
            point = Scenario.model_validate(settings, strict=True, context={SWEEP_POINT: True})
        except ValidationError as exc:
            for line in describe_errors(exc):
                problems.append(f"{path}: sweep.values[{index}] gives {line}")
        else:
            points.append(Point(index, f"{key}={value}", value, point))
    if problems:
        raise ScenarioError(problems)
    return points


# Turning pydantic's errors into lines a person can act on --------------------------------
# What a value of each type looks like in TOML, for "must be ..." messages.
_TYPE_NEEDED = {
    "int_type": "a whole number (an integer)",
    "float_type": "a number",
    "number_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string in quotes",
    "list_type": "a list: [ ... ]",
    "dict_type": "a table: a [section] or { key = value }",
    "model_type": "a table: a [section] or { key = value }",
    "model_attributes_type": "a table: a [section] or { key = value }",
    "union_tag_not_found": "a table: a [section] or { key = value }",
}
# pydantic names each member of `int | float` in an error's location; the file does not.
_UNION_MEMBERS = ("int", "float")


def describe_errors(
    error: ValidationError, model: type[BaseModel] | None = None, prefix: tuple = ()
) -> list[str]:
    """One line per error: field path, bad value, what is allowed. `model` is the model
    that was validated (default Scenario) and `prefix` its place in the file."""
    lines = []
    for item in _merge_union_members(error.errors()):
        lines += _describe(item, model or Scenario, prefix).split("\n")
    return lines


def _merge_union_members(items: list) -> list[dict]:
    """`at = "x"` fails as an int and as a float: one problem, said once."""
    merged: dict[object, dict] = {}
    for number, item in enumerate(items):
        loc = tuple(item["loc"])
        if not loc or loc[-1] not in _UNION_MEMBERS:
            merged[number] = item
            continue
        finite = item["type"] == "finite_number"
        item = {**item, "loc": loc[:-1], "type": "finite_number" if finite else "number_type"}
        if loc[:-1] not in merged or finite:
            merged[loc[:-1]] = item
    return list(merged.values())


def _describe(item: dict, model: type[BaseModel], prefix: tuple) -> str:
    loc = tuple(item["loc"])
    workload_kind = None
    if loc[:1] == ("workload",) and len(loc) > 1 and loc[1] in WORKLOAD_MODELS:
        workload_kind, loc = loc[1], loc[:1] + loc[2:]  # pydantic names the union member
    kind, value = item["type"], item.get("input")
    if kind == "union_tag_invalid":  # `kind` picks the workload's schema
        loc, value = (*loc, "kind"), value.get("kind") if isinstance(value, dict) else value
    if loc and loc[-1] == "[key]":
        return f"{_path(prefix + loc[:-1])}: unknown name; {_message(item)}"
    location = _path(prefix + loc)
    message = _message(item)
    if not loc:  # a rule over several fields: its message names them, relative to `prefix`
        return "\n".join(
            f"{_path(prefix)}.{line}" if prefix else line for line in message.split("\n")
        )
    if kind == "missing":
        return f"{location}: required field is missing"
    if kind == "extra_forbidden":
        allowed = _fields_at(model, tuple(item["loc"][:-1]), workload_kind)
        guess = _did_you_mean(str(loc[-1]), allowed)
        return (
            f"{location} = {show_value(value)}: unknown field; allowed here: "
            f"{', '.join(allowed) or 'none'}{guess}"
        )
    return f"{location} = {show_value(value)}: {message}"


def _message(item: dict) -> str:
    """What is wrong and what is allowed, in the file's terms."""
    kind, value, context = item["type"], item.get("input"), item.get("ctx") or {}
    if kind in _TYPE_NEEDED:
        return f"must be {_TYPE_NEEDED[kind]}{_type_hint(kind, value)}"
    if kind == "finite_number":
        return "must be a finite number (nan and inf are not allowed)"
    if kind in ("literal_error", "union_tag_invalid"):
        expected = context.get("expected") or context.get("expected_tags", "")
        return f"must be one of: {_double_quoted(expected)}"
    if kind == "too_short":
        return f"must have at least {context.get('min_length')} item(s)"
    if kind == "too_long":
        return f"must have at most {context.get('max_length')} items"
    return re.sub(r"^(Value|Assertion) error, ", "", item["msg"])


def _type_hint(kind: str, value: object) -> str:
    """Why a value that looks right is not: quotes around a number, true for 1."""
    if kind not in ("int_type", "float_type", "number_type", "bool_type"):
        return ""
    if isinstance(value, str):
        written = "true or false" if kind == "bool_type" else "the number"
        return f", not a string: write {written} without quotes"
    if isinstance(value, bool):
        return ", not true or false"
    if kind == "int_type" and isinstance(value, float) and value.is_integer():
        return f", not a decimal: write {int(value)}"
    return ""


def _double_quoted(expected: str) -> str:
    """pydantic quotes choices as Python does ('closed'); TOML strings use "closed"."""
    return re.sub(r"'([^']*)'", r'"\1"', expected)


def _did_you_mean(name: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


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


def show_value(value: object) -> str:
    shown = _toml(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _toml(value: object) -> str:
    """A value as it is written in TOML: "text", true, nan, [1, 2], { a = 1 }."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(key)} = {_toml(item)}" for key, item in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return repr(value)


def _toml_key(key: object) -> str:
    return str(key) if re.fullmatch(r"[A-Za-z0-9_-]+", str(key)) else json.dumps(str(key))


def _fields_at(
    model: type[BaseModel] | None, loc: tuple, workload_kind: str | None = None
) -> list[str]:
    """The field names the schema allows at `loc`, for 'unknown field' messages."""
    if loc[:1] == ("workload",) and workload_kind in WORKLOAD_MODELS and model is Scenario:
        model, loc = WORKLOAD_MODELS[workload_kind], loc[2:]
    annotation: object = model
    for part in loc:
        found = _model_in(annotation)
        if found is not None:
            if part not in found.model_fields:
                return []
            annotation = found.model_fields[part].annotation
        elif typing.get_origin(annotation) in (dict, list):
            annotation = typing.get_args(annotation)[-1]  # `part` is a key or an index
        else:
            return []
    found = _model_in(annotation)
    return list(found.model_fields) if found is not None else []


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, Annotated):
        for argument in typing.get_args(annotation):
            found = _model_in(argument)
            if found is not None:
                return found
    return None
