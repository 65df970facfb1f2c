"""Run a scenario: every point, every repeat, every pattern, each trial in fresh processes
(see trials.py), the order of patterns rotated between repeats.

What was measured is saved after every trial: a server that dies fails its own point and
the run goes on; a point over a network path this machine cannot build is skipped with
the reason, and loopback points still run; Ctrl-C, SIGTERM or SIGHUP stop the trial's
processes (and its network path) and save the run marked interrupted; the charts and
summary.csv are derived from results.json at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import charts, environment, generator_bound, generators, signals, templates
from bench.calibrate import calibration_for_run
from bench.claims import claims_hash
from bench.kinds import kind_for
from bench.metrics import TrialResult
from bench.network.spec import PathSpec
from bench.options import PatternOptions
from bench.registry import Pattern, get_pattern
from bench.resources import Placement, plan_placement
from bench.results import (
    PointRecord,
    RunRecorder,
    load_run,
    make_run_dir,
    point_latest,
    run_summary_table,
    write_summary_csv,
)
from bench.scenario import LoadedScenario, Scenario, Timing
from bench.signals import reason
from bench.soak import MIN_SOAK_S, growth_lines
from bench.trial_time import PhaseClock
from bench.trialpath import path_config, plain_loopback
from bench.trials import TrialInterrupted, run_trial
from common.tls import TlsFiles

PROJECT_DIR = Path(__file__).resolve().parent.parent
QUICK_TIMING = Timing(warmup_s=0.3, duration_s=1.0, repeats=1)
# Server start, health check, generator spawn, subscribe, drain: for time-left estimates.
# Measured over a full `make bench` here: 504 trials took 1,491 s, of which 1,085 s were
# warm-up and measured windows, so about 0.8 s each besides (push drains included; the
# start, collecting and stopping alone are 0.41 s: bench/trial_time.py's table).
TRIAL_OVERHEAD_S = 0.8


@dataclass
class RunSettings:
    quick: bool = False
    timing_overrides: dict = field(default_factory=dict)  # warmup_s, duration_s, repeats
    results_dir: Path = PROJECT_DIR / "results"
    only_patterns: list[str] | None = None
    soak: bool = False  # print every process's growth, however short the trials
    progress: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr))
    # Leave the charts to the caller (draw_charts), which draws those of several runs at
    # once after the last one: drawing them while the next scenario runs would take CPU
    # from its generators and servers.
    defer_charts: bool = False


def effective_timing(scenario: Scenario, quick: bool, overrides: dict | None = None) -> Timing:
    """The scenario's timing, or quick mode's, with command-line overrides on top."""
    timing = QUICK_TIMING if quick else scenario.timing
    return timing.model_copy(update=overrides) if overrides else timing


def point_config(scenario: Scenario, timing: Timing, options: PatternOptions) -> dict:
    """What results.json records of a point's settings: these, then the kind's own."""
    common = {
        "options": options.model_dump(),
        "workload": scenario.workload.model_dump(),
        "payload_bytes": scenario.payload.size_bytes,
        "warmup_s": timing.warmup_s,
        "duration_s": timing.duration_s,
        "repeats": timing.repeats,
    }
    spec = scenario.network.path()
    if not plain_loopback(spec):  # a loopback run's points read as they always have
        common["network"] = path_config(spec)
    return {**common, **kind_for(scenario).point_config(scenario)}


def _ms(latency: dict, name: str) -> str:
    """ "1.23 ms", ">= 2,500.00 ms" (losses counted at the time waited), or "n/a"."""
    value_us = latency[name]
    if value_us is None:
        return "n/a"
    return (">= " if name in latency["lower_bound"] else "") + f"{value_us / 1000:,.2f} ms"


def _delivery(delivery: dict) -> str:
    """A push trial's headline beside its latency: how much of what was due arrived."""
    completeness = delivery["completeness"]
    share = "n/a" if completeness is None else f"{completeness:.2%}"
    return (
        f"delivered {share} ({delivery['delivered']:,} of {delivery['expected']:,})  "
        f"lost {delivery['lost']:,}  duplicates {delivery['duplicates']:,}  "
        f"out of order {delivery['out_of_order']:,}"
    )


def _format_trial(trial: TrialResult) -> str:
    if trial.status != "ok":
        return f"  {trial.status.upper()}: {trial.error}"
    latency = trial.latency_us
    line = (
        f"  {trial.throughput_per_s:,.0f}/s  p50 {_ms(latency, 'p50_us')}  "
        f"p99 {_ms(latency, 'p99_us')}  errors {trial.errors}  timeouts {trial.timeouts}"
    )
    if trial.unsent:
        line += f"  unsent {trial.unsent}"
    if trial.delivery:
        line += f"  {_delivery(trial.delivery)}"
    if trial.client_bound:
        line += f"  [generator-bound: {'; '.join(trial.client_bound_reasons)}]"
    return line


def _soak_lines(point: dict, soak: bool) -> list[str]:
    """Memory and descriptor growth per process: in a soak, and for any trial long enough
    to show one."""
    lines = []
    for trial in point["trials"]:
        if soak or trial["measured_s"] >= MIN_SOAK_S:
            where = f"{point['label']} " if point["label"] else ""
            lines.append(f"  {where}{point['pattern']} repeat {trial['repeat'] + 1}:")
            lines += [f"    {line}" for line in growth_lines(trial)]
    return lines


def estimated_seconds(trials: int, timing: Timing) -> float:
    """How long `trials` trials take: their windows and the overhead around each."""
    return trials * (timing.warmup_s + timing.duration_s + TRIAL_OVERHEAD_S)


def _remaining(trials_left: int, timing: Timing) -> str:
    seconds = estimated_seconds(trials_left, timing)
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def run_scenario(loaded: LoadedScenario, options: RunSettings) -> Path:
    """Run every trial of a scenario and write its run folder; returns the folder.

    `options` are the run's (quick mode, results folder); each pattern's own options come
    from the scenario (`loaded.options`)."""
    began = time.monotonic()
    scenario = loaded.scenario
    timing = effective_timing(scenario, options.quick, options.timing_overrides)
    patterns = [
        get_pattern(name)
        for name in scenario.patterns
        if options.only_patterns is None or name in options.only_patterns
    ]
    placement = plan_placement(scenario.load.pin_cpus)
    measured_on = environment.collect(PROJECT_DIR)
    # A calibration from another machine or another version of the code says nothing
    # about this run's generator: it is refused, and the run says so.
    calibration, stale = calibration_for_run(options.results_dir, measured_on)
    total = len(loaded.points) * timing.repeats * len(patterns)
    done = 0
    status, error = "complete", None
    recorder = None
    try:
        # Not cut short by a signal: `latest` never points at a folder without results.json.
        with signals.deferred():
            run_dir, recorder, records = _create_run(
                loaded, options, patterns, timing, placement, measured_on, calibration, stale
            )
            tls = _tls_files(loaded, run_dir)
        options.progress(f"{loaded.name}: {scenario.title} ({total} trials) -> {run_dir}")
        options.progress(f"  placement: {placement.note}")
        for line in _network_lines(loaded):
            options.progress(f"  network: {line}")
        if stale:
            options.progress(f"  generator calibration: none used: {stale}")
        prepare_processes(patterns, loaded)
        recorder.document["run"]["timings"] = {"setup_s": round(time.monotonic() - began, 3)}
        for point in loaded.points:
            for repeat in range(timing.repeats):
                # Rotate the order each repeat, so no pattern always runs first (or last).
                rotation = repeat % len(patterns)
                for pattern in patterns[rotation:] + patterns[:rotation]:
                    done += 1
                    where = f"{point.label} " if point.label else ""
                    options.progress(
                        f"[{done}/{total}] {loaded.name} {where}{pattern.name} "
                        f"repeat {repeat + 1}/{timing.repeats}"
                        f" (about {_remaining(total - done + 1, timing)} left)"
                    )
                    clock = PhaseClock()
                    trial = run_trial(
                        pattern,
                        point,
                        repeat,
                        timing,
                        run_dir,
                        placement,
                        loaded.options[pattern.name],
                        tls if point.scenario.network.tls else None,
                        clock,
                    )
                    records[(point.index, pattern.name)].add_trial(trial)
                    recorder.save()
                    clock.lap("write")
                    options.progress(_format_trial(trial))
                    # Kept with the next save (or the run's last).
                    trial.timings = clock.finish()
    except TrialInterrupted as interrupted:
        records[(point.index, pattern.name)].add_trial(interrupted.trial)
        stopped, status, error = interrupted.cause, "interrupted", reason(interrupted.cause)
    except KeyboardInterrupt as interrupt:  # Ctrl-C, SIGTERM or SIGHUP between trials
        if recorder is None:  # before the run folder existed: nothing to save
            raise
        stopped, status, error = interrupt, "interrupted", reason(interrupt)
    except BaseException as exc:
        if recorder is not None:
            recorder.finish("failed", f"{type(exc).__name__}: {exc}")
        raise
    else:
        stopped = None
    # Written whole even if a signal arrives now (it is raised afterwards).
    with signals.deferred():
        timings = recorder.document["run"].setdefault("timings", {})
        timings["trials_s"] = round(time.monotonic() - began - timings.get("setup_s", 0.0), 3)
        recorder.finish(status, error)
        charts_began = time.monotonic()
        if options.defer_charts:
            write_summary_csv(run_dir, load_run(run_dir))
        else:
            finish_outputs(run_dir)
            timings["charts_s"] = round(time.monotonic() - charts_began, 3)
        timings["wall_s"] = round(time.monotonic() - began, 3)
        recorder.save()
    document = load_run(run_dir)
    options.progress(run_summary_table(document))
    for point in document["points"]:
        for line in _soak_lines(point, options.soak):
            options.progress(line)
    options.progress(
        f"{loaded.name}: {status}{f' ({error})' if error else ''}; results in {run_dir}"
    )
    if stopped is not None:
        raise stopped
    return run_dir


def prepare_processes(patterns: list[Pattern], loaded: LoadedScenario) -> None:
    """Start what every trial forks its processes from, all at once before the first
    trial, so that no trial waits for it: each server's template (and the network
    emulator's, for a run over a path: bench/templates.py), and the generators' fork
    server (bench/generators.py). Nothing of a trial runs in them."""
    generators.prepare()
    pool = templates.shared_pool()
    if pool is not None:
        modules = [pattern.server_module for pattern in patterns]
        if any(spec.emulated for spec in _paths(loaded)):
            from bench.network.link import EMULATOR_MODULE  # only runs over a path need it

            modules.append(EMULATOR_MODULE)
        pool.prepare(modules)


def _paths(loaded: LoadedScenario) -> list[PathSpec]:
    return [point.scenario.network.path() for point in loaded.points]


def _tls_files(loaded: LoadedScenario, run_dir: Path) -> TlsFiles | None:
    """The run's throwaway CA and certificates, made once when any point asks for TLS."""
    if not any(spec.tls for spec in _paths(loaded)):
        return None
    from bench.network.tls import make_tls_files  # cryptography: only runs with TLS need it

    return make_tls_files(run_dir / "tls")


def _network_lines(loaded: LoadedScenario) -> list[str]:
    """The paths a run's points take, one line each, for the console; none on loopback."""
    lines = []
    for point, spec in zip(loaded.points, _paths(loaded), strict=True):
        if not plain_loopback(spec):
            lines.append(f"{point.label + ': ' if point.label else ''}{spec.describe()}")
    return lines


def network_record(loaded: LoadedScenario, results_dir: Path) -> dict:
    """What results.json records of a run's network, as `{"network": ...}`: each point's
    path as configured, the limits that judged it path-bound, and the latest `bench
    calibrate --network` measurement of its profile on this machine; nothing for a run on
    plain loopback."""
    paths = _paths(loaded)
    if all(plain_loopback(spec) for spec in paths):
        return {}
    profile = paths[0].profile  # not sweepable: every point has the same
    network = {
        "profile": profile,
        "paths": [
            {"point": point.index, "label": point.label, **path_config(spec)}
            for point, spec in zip(loaded.points, paths, strict=True)
        ],
        "path_bound_thresholds": generator_bound.path_thresholds(),
        "calibration": network_calibration(results_dir, profile)
        if any(spec.emulated for spec in paths)
        else None,
    }
    return {"network": network}


def network_calibration(results_dir: Path, profile: str) -> dict | None:
    """The latest `bench calibrate --network PROFILE` record, or None when there is none."""
    try:
        from bench.network.calibration import latest_network_calibration
    except ImportError:  # a checkout without network calibration
        return None
    return latest_network_calibration(results_dir, profile)


def _create_run(
    loaded: LoadedScenario,
    options: RunSettings,
    patterns: list[Pattern],
    timing: Timing,
    placement: Placement,
    measured_on: dict,
    calibration: dict | None,
    stale: str | None,
) -> tuple[Path, RunRecorder, dict[tuple[int, str], PointRecord]]:
    """The run folder, its results.json (every point pending) and `latest` pointing at it."""
    scenario = loaded.scenario
    run_dir = make_run_dir(options.results_dir, loaded.name)
    (run_dir / "scenario.toml").write_text(loaded.text)
    point_latest(options.results_dir, run_dir)
    recorder = RunRecorder(
        run_dir,
        {
            "id": run_dir.name,
            "scenario": loaded.name,
            "scenario_file": str(loaded.path),
            "title": scenario.title,
            "description": scenario.description,
            "workload": kind_for(scenario).name,
            "sweep_parameter": scenario.sweep.parameter if scenario.sweep else None,
            "quick": options.quick,
            "placement": placement.to_dict(),
            "patterns": [p.name for p in patterns],
            "thresholds": scenario.thresholds.model_dump() if scenario.thresholds else None,
            "report": scenario.report.model_dump(),
            "calibration_problem": stale,
            # The rules in force when the run was made: a report that judges it later
            # says so if they have changed since.
            "generator_bound_thresholds": generator_bound.thresholds(),
            "claims_sha256": claims_hash(),
            # Only over a path or TLS: a loopback run's document reads as it always has.
            **network_record(loaded, options.results_dir),
        },
        measured_on,
        calibration,
    )
    records = {
        (point.index, pattern.name): recorder.point(
            PointRecord(
                point=point.index,
                label=point.label,
                sweep_parameter=scenario.sweep.parameter if scenario.sweep else None,
                sweep_value=point.sweep_value,
                pattern=pattern.name,
                pattern_label=pattern.label,
                config=point_config(point.scenario, timing, loaded.options[pattern.name]),
                ablation=pattern.ablation,
                latency_set_by=pattern.latency_set_by,
            )
        )
        for point in loaded.points
        for pattern in patterns
    }
    recorder.save()
    return run_dir, recorder, records


def finish_outputs(run_dir: Path) -> None:
    """summary.csv and the charts, both derived from results.json alone."""
    document = load_run(run_dir)
    write_summary_csv(run_dir, document)
    charts.render_run(document, run_dir)


def _draw(run_dir: Path) -> None:
    charts.render_run(load_run(run_dir), run_dir)


def draw_charts(run_dirs: list[Path]) -> float:
    """Draw the charts of these runs, several at once, one process per CPU this process
    may use (each run's charts are its own matplotlib work, from its results.json alone);
    returns the seconds it took. The workers are forks of this process (matplotlib is
    imported already) that leave stopping signals to it."""
    import concurrent.futures
    import multiprocessing

    from bench.resources import usable_cpus

    began = time.monotonic()
    workers = max(1, min(len(run_dirs), len(usable_cpus())))
    if workers == 1:
        for run_dir in run_dirs:
            _draw(run_dir)
    else:
        with concurrent.futures.ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=signals.ignore_in_child,
        ) as pool:
            for done in pool.map(_draw, run_dirs):
                assert done is None
    return round(time.monotonic() - began, 3)
