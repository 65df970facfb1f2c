"""Calibration: what the harness's own generator costs per request or delivered event,
against independent tools.

Request/response: for every pattern an independent tool can drive (wrk for REST,
JSON-RPC, SOAP and GraphQL over HTTP/1.1; h2load for gRPC over HTTP/2; the Node `ws`
reference client for WebSocket), the tool and one harness generator process send the
same get_user at the same fixed rate, well below the server's ceiling, over the same
number of connections, pinned to the same CPUs. Push: for every pattern an independent
subscriber follows (mosquitto_sub for MQTT, Node's `ws` for WebSocket push, the
`eventsource` package for SSE), the same number of its subscribers and of the harness's
get the same publisher's events at the same rate, pinned alike. Each side's CPU seconds
per request (or delivered event) are compared: the harness's cost over the tool's is how
much more client CPU the harness needs for the same traffic. The sides alternate who
goes first (tool then harness, then harness then tool), and the median ratio over the
rounds is reported with its spread.

The result is stored in `results/calibration.json` with the machine and commit it was
measured on; a run takes it only if it is its own machine and commit
(`calibration_for_run`). Patterns no tool here can follow (webhooks, polling, gRPC
streaming) are listed as uncalibrated, never given a ratio.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from bench import environment
from bench.drivers.base import Target
from bench.engine import LoadPlan
from bench.generators import GeneratorFailed, GeneratorGroup, GeneratorJob
from bench.kinds import KINDS, kind_named
from bench.loadtools import (
    GET_USER_ID,
    TOOL_TIMEOUT_GRACE_S,
    ToolFailed,
    ToolProbe,
    ToolRequest,
    check_answer,
    missing_tool,
    probe,
    run_tool,
    tool_command,
    tool_requests,
    tool_version,
)
from bench.pattern import load
from bench.push import PushPlan
from bench.registry import PATTERNS, Pattern
from bench.resources import Placement, plan_placement
from bench.results import utc_now, write_json
from bench.serverproc import PatternUnavailable, ServerFailed, ServerGroup
from bench.subscriber_tools import SubscriberProbe
from bench.workload import ExpectedAnswers, Operation
from common.dataset import DatasetSpec, build_user
from common.events import PublishPlan
from common.histogram import LatencyHistogram
from common.schedule import DueTimes

PROJECT_DIR = Path(__file__).resolve().parent.parent
CALIBRATION_FILE = "calibration.json"
CALIBRATION_FORMAT = 2  # 1: wrk and the harness on REST at concurrency 32 and 1
# Below every server's ceiling, where both sides would only measure the server. Flat out on
# two cores (server on one, wrk or h2load on the other) GraphQL's get_user with every
# field peaks near 1,900 requests a second, gRPC near 3,500 to 4,200, REST near 10,000.
DEFAULT_RATE_PER_S = 1000.0
DEFAULT_DURATION_S = 3
DEFAULT_REPEATS = 2
CONNECTIONS = 8
HARNESS_WARMUP_S = 1.0
START_DELAY_NS = 100_000_000  # from "go" to the generator's first request
COLLECT_GRACE_S = 30.0
RATE_NOTE_SHARE = 0.1  # a side more than 10% off its target rate gets a note
NO_TOOL = "no independent load tool in this harness"
# The Node reference client of WebSocket (bench/reference_clients.py); it checks every
# answer itself and measures its own CPU over its window.
WS_LOAD = "ws-load"
# Push: after the window, the harness's subscribers wait this long for events on their way.
PUSH_DRAIN_S = 0.2
NO_CALIBRATION = "no calibration: run `bench calibrate`"


@dataclass
class SideFigures:
    """One side (a tool, or the harness's generator) of one measurement."""

    requests: int  # completed: the tool's whole run, the harness's measured window
    elapsed_s: float
    rate_per_s: float
    cpu_s: float  # that process's CPU time (user + system) over the same span
    cpu_us_per_request: float | None
    errors: int
    p50_us: float | None  # from the actual send; h2load prints no percentiles
    mean_us: float | None
    detail: str | None = None  # what went wrong, or what is worth knowing


@dataclass
class Round:
    order: list[str]  # who went first, e.g. ["wrk", "harness"]
    tool: SideFigures
    harness: SideFigures
    cpu_ratio: float | None  # harness CPU per request / the tool's


@dataclass
class PatternCalibration:
    pattern: str
    workload: str  # the pattern's workload kind (bench/kinds/)
    status: str  # calibrated, failed or uncalibrated
    reason: str | None = None  # why failed or uncalibrated
    tool: str | None = None
    request: str | None = None  # e.g. "POST /rpc"
    rounds: list[Round] = field(default_factory=list)
    cpu_ratio: float | None = None  # median over the rounds
    cpu_ratio_min: float | None = None
    cpu_ratio_max: float | None = None
    tool_figures: SideFigures | None = None  # medians over the rounds, errors summed
    harness_figures: SideFigures | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Settings:
    rate_per_s: float
    duration_s: int
    repeats: int
    connections: int = CONNECTIONS
    warmup_s: float = HARNESS_WARMUP_S


@dataclass
class CalibrationRecord:
    format: int
    measured_at: str
    measured_on: dict  # cpu_model, usable_cpus (a count), kernel, commit, dirty
    method: str
    rate_per_s: float
    duration_s: int
    harness_warmup_s: float
    connections: int
    repeats: int
    placement: dict
    tools: dict[str, str | None]
    patterns: dict[str, PatternCalibration]
    elapsed_s: float = 0.0
    environment: dict = field(default_factory=dict)


# Where and on what ---------------------------------------------------------------------
def measured_on(env: dict) -> dict:
    """The facts a calibration holds for: the machine (CPU model, usable CPUs, kernel)
    and the code (commit)."""
    git = env.get("git") or {}
    return {
        "cpu_model": env.get("cpu_model"),
        "usable_cpus": len(env.get("usable_cpus") or []),
        "kernel": env.get("kernel"),
        "commit": git.get("commit"),
        "dirty": git.get("dirty"),
        "diff_sha256": git.get("diff_sha256"),
    }


def _machine(facts: dict) -> tuple:
    return facts.get("cpu_model"), facts.get("usable_cpus"), facts.get("kernel")


def _machine_text(facts: dict) -> str:
    return (
        f"{facts.get('cpu_model')}, {facts.get('usable_cpus')} CPUs, kernel {facts.get('kernel')}"
    )


def _commit_text(facts: dict) -> str:
    return (facts.get("commit") or "unknown")[:12]


def read_calibration(results_dir: Path) -> dict | None:
    """The stored record as it is, or None when there is none (or it cannot be read)."""
    try:
        record = json.loads((results_dir / CALIBRATION_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def calibration_for_run(results_dir: Path, environment: dict) -> tuple[dict | None, str | None]:
    """The stored calibration for a run on `environment` (as `bench.environment.collect`
    gives it), without the bulky environment but with `measured_on`; or None and the one
    sentence that says why not (none, another machine, another commit)."""
    record = read_calibration(results_dir)
    if record is None:
        return None, NO_CALIBRATION
    stored = record.get("measured_on")
    if record.get("format") != CALIBRATION_FORMAT or not isinstance(stored, dict):
        return None, "the calibration is in an older format: run `bench calibrate`"
    here = measured_on(environment)
    if _machine(stored) != _machine(here):
        return None, (
            f"the calibration was measured on another machine ({_machine_text(stored)}; "
            f"this one: {_machine_text(here)}): run `bench calibrate`"
        )
    if stored.get("commit") != here["commit"]:
        return None, (
            f"the calibration was measured at commit {_commit_text(stored)}, this is "
            f"{_commit_text(here)}: run `bench calibrate`"
        )
    if stored.get("diff_sha256") != here.get("diff_sha256"):
        return None, (
            "the calibration was measured with other uncommitted changes to the code than "
            "this tree has: run `bench calibrate`"
        )
    record.pop("environment", None)
    return record, None


# Measuring ------------------------------------------------------------------------------
def _per_request_us(cpu_s: float, requests: int) -> float | None:
    return round(cpu_s / requests * 1e6, 2) if requests > 0 and cpu_s > 0 else None


def _pinned(cpus: tuple[int, ...] | None) -> Callable[[], None] | None:
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def measure_tool(
    request: ToolRequest, url: str, files: Path, settings: Settings, placement: Placement
) -> SideFigures:
    if request.tool == WS_LOAD:
        return measure_reference_load(request, url, settings, placement)
    command, parse = tool_command(
        request, url, files, settings.connections, settings.rate_per_s, settings.duration_s
    )
    run = run_tool(
        command,
        parse,
        settings.duration_s + TOOL_TIMEOUT_GRACE_S,
        _pinned(placement.generator_cpus),
    )
    return _tool_side(run.report, run.cpu_s, run.report.errors)


def measure_reference_load(
    request: ToolRequest, url: str, settings: Settings, placement: Placement
) -> SideFigures:
    """The Node reference client (reference/ws-load.mjs): it warms up as the harness does,
    and reports its CPU over its measured window, checking every answer itself."""
    from bench.reference_clients import run_ws_load

    user_id = GET_USER_ID
    expected = ExpectedAnswers(DatasetSpec()).user_json(user_id)
    report = run_ws_load(
        url,
        max(1, settings.connections // request.streams_per_connection),
        request.streams_per_connection,
        settings.rate_per_s,
        settings.warmup_s,
        settings.duration_s,
        user_id,
        expected,
        _pinned(placement.generator_cpus),
    )
    return _tool_side(report, report.cpu_s, report.errors + report.timeouts)


def _tool_side(report, cpu_s: float, errors: int) -> SideFigures:
    """An independent tool's figures from its own report and the CPU it was measured at."""
    return SideFigures(
        requests=report.requests,
        elapsed_s=report.elapsed_s,
        rate_per_s=report.rate_per_s,
        cpu_s=cpu_s,
        cpu_us_per_request=_per_request_us(cpu_s, report.requests),
        errors=errors,
        p50_us=report.p50_us,
        mean_us=report.mean_us,
    )


def measure_harness(
    pattern: Pattern,
    target: Target,
    dataset: DatasetSpec,
    rate_per_s: float,
    settings: Settings,
    placement: Placement,
) -> SideFigures:
    """One generator process in open loop at `rate_per_s`, the same get_user every time."""
    job = GeneratorJob(
        index=0,
        pattern=pattern.name,
        dataset=dataset,
        plan=LoadPlan(
            "open",
            settings.connections,
            settings.warmup_s,
            settings.duration_s,
            rate_per_s=rate_per_s,
        ),
        seed=1,
        options=pattern.options(),
        place=placement.generators,
        operations=(Operation("get_user", user_id=GET_USER_ID),),
    )
    with GeneratorGroup([job]) as group:
        group.start(target)
        group.go(time.monotonic_ns() + START_DELAY_NS)
        (result,) = group.collect(settings.warmup_s + settings.duration_s + COLLECT_GRACE_S)
    # Service time, from the actual send: what the tools measure too.
    service = LatencyHistogram.decode(result["service_time"]).summary()
    answered = result["ok"]
    details = [f"{count} x {kind}" for kind, count in result["error_kinds"].items()]
    if result["unsent"]:
        details.append(f"{result['unsent']} requests due but not sent in time")
    return SideFigures(
        requests=answered,
        elapsed_s=result["measured_s"],
        rate_per_s=round(answered / result["measured_s"], 1) if result["measured_s"] else 0.0,
        cpu_s=round(result["cpu_s"], 6),
        cpu_us_per_request=_per_request_us(result["cpu_s"], answered),
        errors=result["errors"] + result["timeouts"],
        p50_us=float(service.p50_us) if service.count else None,
        mean_us=service.mean_us if service.count else None,
        detail="; ".join(details) or None,
    )


def _ratio(harness: SideFigures, tool: SideFigures) -> float | None:
    if harness.cpu_us_per_request is None or tool.cpu_us_per_request is None:
        return None
    return round(harness.cpu_us_per_request / tool.cpu_us_per_request, 3)


def measure_rounds(
    pattern: Pattern,
    request: ToolRequest,
    target: Target,
    dataset: DatasetSpec,
    files: Path,
    settings: Settings,
    placement: Placement,
    log: Callable[[str], None],
) -> list[Round]:
    """`settings.repeats` rounds; even ones run the tool first, odd ones the harness. The
    harness runs at the rate the tool last achieved, so both send the same traffic."""
    url = f"{request.scheme}://{target.host}:{target.port}{request.path}"
    tool_rate_per_s = settings.rate_per_s
    rounds = []
    for index in range(settings.repeats):
        order = [request.tool, "harness"] if index % 2 == 0 else ["harness", request.tool]
        log(f"  {pattern.name:9} round {index + 1}: {' then '.join(order)}")
        sides: dict[str, SideFigures] = {}
        for side in order:
            if side == "harness":
                sides[side] = measure_harness(
                    pattern, target, dataset, tool_rate_per_s, settings, placement
                )
            else:
                sides[side] = measure_tool(request, url, files, settings, placement)
                tool_rate_per_s = sides[side].rate_per_s or settings.rate_per_s
        tool, harness = sides[request.tool], sides["harness"]
        rounds.append(Round(order, tool, harness, _ratio(harness, tool)))
    return rounds


def _median_figures(sides: list[SideFigures]) -> SideFigures:
    """Field by field, the median over the rounds; errors summed; no details."""

    def median(name: str):
        values = [getattr(side, name) for side in sides if getattr(side, name) is not None]
        return round(statistics.median(values), 6) if values else None

    figures = {f.name: median(f.name) for f in fields(SideFigures) if f.name != "detail"}
    figures["requests"] = round(figures["requests"])
    figures["errors"] = sum(side.errors for side in sides)
    return SideFigures(**figures)


def _failure(tool: str, rounds: list[Round]) -> str | None:
    """Why these rounds give no ratio, or None when they do."""
    problems = []
    for number, measured in enumerate(rounds, 1):
        for name, side in ((tool, measured.tool), ("the harness", measured.harness)):
            if side.errors:
                detail = f" ({side.detail})" if side.detail else ""
                problems.append(f"{name} counted {side.errors} errors in round {number}{detail}")
        if not problems and measured.cpu_ratio is None:
            problems.append(f"round {number} measured no CPU time or no requests")
    return "; ".join(problems) or None


def _notes(entry: PatternCalibration, target_rate_per_s: float) -> list[str]:
    """What a reader should know beside the ratio: a side off its rate, requests the
    harness could not send in time."""
    notes = []
    tool_rate = entry.tool_figures.rate_per_s
    harness_rate = entry.harness_figures.rate_per_s
    if tool_rate and abs(tool_rate - target_rate_per_s) > RATE_NOTE_SHARE * target_rate_per_s:
        notes.append(
            f"{entry.tool} held {tool_rate:,.0f}/s of the {target_rate_per_s:,.0f}/s asked"
        )
    if tool_rate and harness_rate and abs(harness_rate - tool_rate) > RATE_NOTE_SHARE * tool_rate:
        notes.append(f"the harness held {harness_rate:,.0f}/s of the {tool_rate:,.0f}/s asked")
    notes += [
        f"harness, round {number}: {measured.harness.detail}"
        for number, measured in enumerate(entry.rounds, 1)
        if measured.harness.detail and not measured.harness.errors
    ]
    return notes


def summarise(
    pattern: Pattern, tool: str, request: str, rounds: list[Round], settings: Settings
) -> PatternCalibration:
    result = PatternCalibration(
        pattern=pattern.name,
        workload=pattern.kind,
        status="calibrated",
        tool=tool,
        request=request,
        rounds=rounds,
        tool_figures=_median_figures([measured.tool for measured in rounds]),
        harness_figures=_median_figures([measured.harness for measured in rounds]),
    )
    result.notes = _notes(result, settings.rate_per_s)
    failure = _failure(tool, rounds)
    if failure:
        result.status, result.reason = "failed", failure
        return result
    ratios = [measured.cpu_ratio for measured in rounds]
    result.cpu_ratio = round(statistics.median(ratios), 3)
    result.cpu_ratio_min, result.cpu_ratio_max = min(ratios), max(ratios)
    return result


def check_tool_request(
    pattern: Pattern, request: ToolRequest, url: str, dataset: DatasetSpec, files: Path
) -> None:
    """Send the tool's request once (curl, the same bytes) and check the answer: the tools
    count statuses only, and a JSON-RPC or GraphQL error comes with status 200. A tool
    that checks every answer itself needs no such probe."""
    if request.checks_answers:
        return
    try:
        answer = probe(url, request, files)
        check_answer(pattern.name, answer, build_user(dataset, GET_USER_ID))
    except ToolFailed as exc:
        raise ToolFailed(
            f"{request.tool}'s request {request.describe()} is answered wrongly: {exc}"
        ) from None


def calibrate_pattern(
    pattern: Pattern,
    request: ToolRequest,
    dataset: DatasetSpec,
    settings: Settings,
    placement: Placement,
    scratch: Path,
    logs: Path,
    log: Callable[[str], None],
) -> PatternCalibration:
    """Start the pattern's server, check the tool's request is answered correctly, and
    measure; a server, tool or generator that fails makes this pattern failed, not the run."""
    files = scratch / pattern.name
    files.mkdir(parents=True, exist_ok=True)
    try:
        with pattern.servers(
            dataset, pattern.options(), logs, pattern.name, placement.servers
        ) as servers:
            target = Target("127.0.0.1", servers.start())
            url = f"{request.scheme}://{target.host}:{target.port}{request.path}"
            check_tool_request(pattern, request, url, dataset, files)
            rounds = measure_rounds(
                pattern, request, target, dataset, files, settings, placement, log
            )
    except (ToolFailed, GeneratorFailed, ServerFailed, PatternUnavailable) as exc:
        return PatternCalibration(
            pattern=pattern.name,
            workload=pattern.kind,
            status="failed",
            reason=str(exc).splitlines()[0],
            tool=request.tool,
            request=request.describe(),
        )
    return summarise(pattern, request.tool, request.describe(), rounds, settings)


# Push -------------------------------------------------------------------------------------
def calibrate_push_pattern(
    pattern: Pattern,
    subscriber_probe: SubscriberProbe,
    dataset: DatasetSpec,
    settings: Settings,
    placement: Placement,
    logs: Path,
    log: Callable[[str], None],
) -> PatternCalibration:
    """The independent subscribers and one harness generator process, in turn, each with
    a fresh publisher: as many subscribers on each side, at the same rate, as the probe
    says; CPU per delivered event over the same warm-up and window."""
    tool = subscriber_probe.tool
    count, rate = subscriber_probe.subscribers, subscriber_probe.rate_per_s
    request = f"{count} subscriber{'s' if count > 1 else ''} at {rate:g} events/s"
    rounds = []
    try:
        for index in range(settings.repeats):
            order = [tool, "harness"] if index % 2 == 0 else ["harness", tool]
            log(f"  {pattern.name:9} round {index + 1}: {' then '.join(order)}")
            sides: dict[str, SideFigures] = {}
            for side in order:
                with pattern.servers(
                    dataset, pattern.options(), logs, pattern.name, placement.servers
                ) as servers:
                    target = Target("127.0.0.1", servers.start())
                    if side == "harness":
                        sides[side] = measure_push_harness(
                            pattern,
                            subscriber_probe,
                            servers,
                            target,
                            dataset,
                            settings,
                            placement,
                        )
                    else:
                        sides[side] = measure_push_tool(
                            pattern, subscriber_probe, servers, target, settings, placement
                        )
            tool_side, harness = sides[tool], sides["harness"]
            rounds.append(Round(order, tool_side, harness, _ratio(harness, tool_side)))
    except (ToolFailed, GeneratorFailed, ServerFailed, PatternUnavailable) as exc:
        return PatternCalibration(
            pattern=pattern.name,
            workload=pattern.kind,
            status="failed",
            reason=str(exc).splitlines()[0],
            tool=tool,
            request=request,
        )
    push_settings = Settings(rate * count, settings.duration_s, 0)
    return summarise(pattern, tool, request, rounds, push_settings)


def _publish_plan(settings: Settings, probe: SubscriberProbe) -> PublishPlan:
    return PublishPlan(
        start_ns=time.monotonic_ns() + START_DELAY_NS,
        rate_per_s=probe.rate_per_s,
        warmup_s=settings.warmup_s,
        duration_s=settings.duration_s,
    )


def _sleep_until(deadline_ns: int) -> None:
    while (remaining := deadline_ns - time.monotonic_ns()) > 0:
        time.sleep(remaining / 1e9)


def measure_push_tool(
    pattern: Pattern,
    subscriber_probe: SubscriberProbe,
    servers: ServerGroup,
    target: Target,
    settings: Settings,
    placement: Placement,
) -> SideFigures:
    with subscriber_probe.start(
        target, subscriber_probe.subscribers, pattern.options(), _pinned(placement.generator_cpus)
    ) as subscribers:
        plan = _publish_plan(settings, subscriber_probe)
        servers.controller.send_control(plan)
        _sleep_until(plan.measure_from_ns)
        subscribers.begin()
        _sleep_until(plan.end_ns)
        report = subscribers.finish()
    due = subscriber_probe.rate_per_s * settings.duration_s * subscriber_probe.subscribers
    return SideFigures(
        requests=report.events,
        elapsed_s=settings.duration_s,
        rate_per_s=round(report.events / settings.duration_s, 1),
        cpu_s=round(report.cpu_s, 6),
        cpu_us_per_request=_per_request_us(report.cpu_s, report.events),
        errors=report.errors,
        p50_us=None,
        mean_us=None,
        detail=f"{report.events:,} of {due:,.0f} events due" if report.events < due else None,
    )


def measure_push_harness(
    pattern: Pattern,
    subscriber_probe: SubscriberProbe,
    servers: ServerGroup,
    target: Target,
    dataset: DatasetSpec,
    settings: Settings,
    placement: Placement,
) -> SideFigures:
    """One generator process with as many subscribers as the tool's side; its CPU over
    the window, per event delivered that was due in it."""
    rate = subscriber_probe.rate_per_s
    plan = PushPlan(
        subscribers=subscriber_probe.subscribers,
        first_subscriber=0,
        warmup_s=settings.warmup_s,
        duration_s=settings.duration_s,
        drain_s=PUSH_DRAIN_S,
        rate_per_s=rate,
        payload_bytes=dataset.payload_bytes,
    )
    job = GeneratorJob(
        index=0,
        pattern=pattern.name,
        dataset=dataset,
        plan=plan,
        options=pattern.options(),
        place=placement.generators,
    )
    with GeneratorGroup([job]) as group:
        group.start(target)
        publish = _publish_plan(settings, subscriber_probe)
        servers.controller.send_control(publish)
        group.go(publish.start_ns)
        (result,) = group.collect(
            settings.warmup_s + settings.duration_s + PUSH_DRAIN_S + COLLECT_GRACE_S
        )
    due = DueTimes(publish.start_ns, rate)
    in_window = [
        seq
        for seq in range(1, round(rate * (settings.warmup_s + settings.duration_s)) + 2)
        if publish.measure_from_ns <= due.due_ns(seq) < publish.end_ns
    ]
    delivered = sum(
        1 for counts in result["counts"] for seq in in_window if seq < len(counts) and counts[seq]
    )
    details = [f"{count} x {kind}" for kind, count in result["error_kinds"].items()]
    return SideFigures(
        requests=delivered,
        elapsed_s=result["measured_s"],
        rate_per_s=round(delivered / result["measured_s"], 1) if result["measured_s"] else 0.0,
        cpu_s=round(result["cpu_s"], 6),
        cpu_us_per_request=_per_request_us(result["cpu_s"], delivered),
        errors=result["errors"],
        p50_us=None,
        mean_us=None,
        detail="; ".join(details) or None,
    )


def _variant_of(pattern: Pattern) -> str | None:
    """The pattern this one is a fixed-options variant of (same server and driver)."""
    if not pattern.fixed_options:
        return None
    return next(
        (
            other.name
            for other in PATTERNS.values()
            if other.driver_path == pattern.driver_path and not other.fixed_options
        ),
        None,
    )


def uncalibrated(pattern: Pattern, requests: dict[str, ToolRequest], reason: str | None = None):
    workload = pattern.kind
    variant_of = _variant_of(pattern)
    if reason is None and variant_of in requests:
        reason = f"a variant of {variant_of} (same server and driver): not measured on its own"
    return PatternCalibration(pattern.name, workload, "uncalibrated", reason or NO_TOOL)


def calibrate(
    results_dir: Path,
    duration_s: float = DEFAULT_DURATION_S,
    rate_per_s: float = DEFAULT_RATE_PER_S,
    repeats: int = DEFAULT_REPEATS,
    log: Callable[[str], None] = print,
) -> dict:
    """Measure every pattern a tool can drive, store the record and return it (as JSON)."""
    started = time.monotonic()
    # wrk takes whole seconds only; both sides get the same span.
    settings = Settings(rate_per_s, max(1, round(duration_s)), repeats)
    placement = plan_placement(True)
    dataset = DatasetSpec()
    requests = tool_requests()
    env = environment.collect(PROJECT_DIR)
    logs = results_dir / ".calibration-logs"
    logs.mkdir(parents=True, exist_ok=True)
    log(
        f"calibration: the generator's CPU per request against wrk and h2load at "
        f"{settings.rate_per_s:,.0f} requests/s, {settings.connections} connections, "
        f"{settings.duration_s} s per measurement, {settings.repeats} rounds; {placement.note}"
    )
    patterns: dict[str, PatternCalibration] = {}
    with tempfile.TemporaryDirectory(prefix="calibration-") as scratch:
        for name, pattern in PATTERNS.items():
            found = load(pattern.tool_probe_path) if pattern.tool_probe_path else None
            if isinstance(found, SubscriberProbe):
                missing = found.missing()
                patterns[name] = (
                    uncalibrated(pattern, requests, missing)
                    if missing
                    else calibrate_push_pattern(
                        pattern, found, dataset, settings, placement, logs, log
                    )
                )
                continue
            request = requests.get(name) if isinstance(found, ToolProbe) else None
            if request is None:
                patterns[name] = uncalibrated(pattern, requests)
                continue
            missing = _tool_missing(request)
            if missing:
                patterns[name] = uncalibrated(pattern, requests, missing)
                continue
            patterns[name] = calibrate_pattern(
                pattern, request, dataset, settings, placement, Path(scratch), logs, log
            )
    record = CalibrationRecord(
        format=CALIBRATION_FORMAT,
        measured_at=utc_now(),
        measured_on=measured_on(env),
        method=(
            "request/response: per pattern, an independent tool and one harness generator "
            "process (open loop, at the rate the tool achieved) send the same get_user over "
            "the same number of connections, pinned to the same CPUs; CPU per request is "
            "each process's CPU time (user + system) over its completed requests (wrk's and "
            "h2load's over their whole run, the Node client's and the harness's over the "
            "window after a warm-up). push: per pattern, independent subscribers, then as "
            "many of the harness's in one generator process (as many as the tool holds in "
            "one process: ten Node subscribers, one mosquitto_sub), each side with a fresh "
            "publisher, 1,000 deliveries a second; CPU per event delivered in the window. "
            "cpu_ratio is the harness's over the tool's, the median of rounds in "
            "alternating order"
        ),
        rate_per_s=settings.rate_per_s,
        duration_s=settings.duration_s,
        harness_warmup_s=settings.warmup_s,
        connections=settings.connections,
        repeats=settings.repeats,
        placement=placement.to_dict(),
        tools=_tool_versions(),
        patterns=patterns,
        elapsed_s=round(time.monotonic() - started, 1),
        environment=env,
    )
    document = asdict(record)
    write_json(results_dir / CALIBRATION_FILE, document)
    for line in describe(document):
        log(line)
    return document


def _tool_missing(request: ToolRequest) -> str | None:
    """Why the tool of `request` cannot run here, or None. curl checks the answers of the
    tools that look at statuses only (wrk, h2load)."""
    if request.tool == WS_LOAD:
        from bench.reference_clients import missing_reference

        return missing_reference()
    return missing_tool(request.tool) or (None if request.checks_answers else missing_tool("curl"))


def _tool_versions() -> dict[str, str | None]:
    """Every independent tool's version, where it is installed."""
    from bench.reference_clients import missing_reference, node_version

    versions = {name: tool_version(name) for name in ("wrk", "h2load") if not missing_tool(name)}
    if missing_reference() is None:
        versions["node"] = node_version()
    for pattern in PATTERNS.values():
        found = load(pattern.tool_probe_path) if pattern.tool_probe_path else None
        if isinstance(found, SubscriberProbe) and found.missing() is None:
            versions[found.tool] = found.version()
    return versions


# Reporting ------------------------------------------------------------------------------
def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _figure(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


_COLUMNS = "{:15}{:14}{:>9}{:>9}{:>10}{:>9}{:>9}{:>12}{:>9}{:>9}"


def _table_row(name: str, entry: dict) -> str:
    tool, harness = entry["tool_figures"], entry["harness_figures"]
    ratio = entry["cpu_ratio"]
    return _COLUMNS.format(
        name,
        entry["tool"],
        _figure(tool["rate_per_s"]),
        _figure(harness["rate_per_s"]),
        _figure(tool["cpu_us_per_request"], ".1f"),
        _figure(harness["cpu_us_per_request"], ".1f"),
        "-" if ratio is None else f"{ratio:.2f}x",
        "-" if ratio is None else f"{entry['cpu_ratio_min']:.2f}-{entry['cpu_ratio_max']:.2f}",
        _figure(tool["p50_us"]),
        _figure(harness["p50_us"]),
    )


def describe(record: dict) -> list[str]:
    """Tables for people, one per workload kind measured: per pattern, both sides' rates,
    CPU per request (or delivered event), the ratio and p50 (medians over the rounds);
    then the patterns without a ratio and why."""
    lines = []
    others = []
    unmeasured: dict[str, list[str]] = {}  # why -> the patterns it applies to
    measured: dict[str, list[tuple[str, dict]]] = {}  # workload kind -> its rows
    for name, entry in record.get("patterns", {}).items():
        if entry.get("tool_figures") is None:
            unmeasured.setdefault(f"{entry['status']}: {entry['reason']}", []).append(name)
            continue
        measured.setdefault(entry["workload"], []).append((name, entry))
        if entry["status"] == "failed":
            others.append(f"{name}: failed: {entry['reason']}")
        others += [f"{name}: note: {note}" for note in entry.get("notes") or []]
    for workload, rows in measured.items():
        lines += _table_header(workload)
        lines += [_table_row(name, entry) for name, entry in rows]
    lines += others
    lines += [f"{', '.join(names)}: {why}" for why, names in unmeasured.items()]
    lines.append(describe_ratios(record))
    latency = describe_latency(record)
    if latency:
        lines.append(latency)
    if record.get("elapsed_s"):
        lines.append(f"calibration took {record['elapsed_s']:.0f} s")
    return lines


def _table_header(workload: str) -> list[str]:
    """The two header lines of one kind's table, in its words ("requests", "delivered
    events")."""
    words = kind_named(workload).words
    per = words.messages.split()[-1].removesuffix("s")  # "request", "event"
    return [
        f"{'':29}{words.rate_column:>18}{f'CPU us/{per}':>19}{'harness/tool':>21}{'p50 us':>18}",
        _COLUMNS.format(
            "pattern",
            "tool",
            "tool",
            "harness",
            "tool",
            "harness",
            "ratio",
            "spread",
            "tool",
            "harness",
        ),
    ]


def _describe_format_1(record: dict) -> str:
    """Runs stored before format 2 carry wrk against the harness on REST at the server's
    ceiling: say what that measured, not more."""
    ratios = record.get("ratios")
    if not isinstance(ratios, dict):
        return "generator calibration in an unknown format"
    return (
        f"generator vs wrk, REST only (older calibration): {ratios['rate_at_32']:.2f}x wrk's "
        f"request rate at concurrency 32, {ratios['p50_at_1']:.2f}x its p50 at concurrency 1"
    )


def describe_ratios(record: dict) -> str:
    """One line for chart footers: each pattern's ratio of the harness's CPU per request
    (or delivered event) to the tool's, kind by kind, and which patterns have none."""
    patterns = record.get("patterns")
    if not isinstance(patterns, dict):
        return _describe_format_1(record)
    parts = []
    for kind in KINDS.values():
        measured = {
            name: entry
            for name, entry in patterns.items()
            if entry["status"] != "uncalibrated" and entry["workload"] == kind.name
        }
        if not measured:
            continue
        ratios = [
            f"{name} {entry['cpu_ratio']:.1f}x"
            if entry["status"] == "calibrated"
            else f"{name} failed"
            for name, entry in measured.items()
        ]
        tools = "/".join(dict.fromkeys(entry["tool"] for entry in measured.values()))
        per = kind.words.messages.removesuffix("s")  # "request", "delivered event"
        rate = f" at {record['rate_per_s']:,.0f}/s" if not parts else ""
        parts.append(f"per {per} vs {tools}{rate}: {', '.join(ratios)}")
    uncalibrated = {n: e for n, e in patterns.items() if e["status"] == "uncalibrated"}
    unmeasured = [
        name
        for name, entry in uncalibrated.items()
        if kind_named(entry["workload"]).tool_calibrated
    ]
    # A kind no tool can drive is uncalibrated as a whole: said once, not per pattern.
    unmeasured += [
        f"{kind.label} patterns"
        for kind in KINDS.values()
        if not kind.tool_calibrated
        and any(entry["workload"] == kind.name for entry in uncalibrated.values())
    ]
    line = f"generator CPU {'; '.join(parts)}" if parts else "generator not calibrated"
    return f"{line}; {_join(unmeasured)} uncalibrated" if unmeasured else line


def added_latency_us(entry: dict) -> float | None:
    """How much later the harness's client saw its answers than the reference tool did,
    at the calibration's rate (mean latency, harness minus tool): what the harness's
    client stack adds to every latency of that pattern, on top of the pattern itself."""
    harness = (entry.get("harness_figures") or {}).get("mean_us")
    tool = (entry.get("tool_figures") or {}).get("mean_us")
    if entry.get("status") != "calibrated" or harness is None or tool is None:
        return None
    return round(harness - tool, 1)


def describe_latency(record: dict) -> str:
    """One line on the latency the harness's clients add over the reference tools."""
    patterns = record.get("patterns")
    if not isinstance(patterns, dict):
        return ""
    parts = [
        f"{name} {added:+,.0f} us"
        for name, entry in patterns.items()
        if (added := added_latency_us(entry)) is not None
    ]
    if not parts:
        return ""
    return (
        f"latency the harness's client adds over the reference tool at "
        f"{record['rate_per_s']:,.0f}/s (mean): {', '.join(parts)}"
    )
