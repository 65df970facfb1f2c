"""The `bench` command: run, validate, report, compare, publish, calibrate, patterns.

Exit codes: 0 success; 1 a run finished but some points failed or measured nothing usable;
2 bad input (a scenario or results file that cannot be used, a bad argument, a run over the
time limit without --yes); 3 a threshold the scenario sets is broken; 128 + the
signal's number when a signal stopped it (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.signals import exit_status, reason

EXIT_OK = 0
EXIT_POINTS_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_THRESHOLD_BROKEN = 3
PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_SCENARIOS = PROJECT_DIR / "scenarios"
COMMANDS_THAT_START_PROCESSES = ("run", "calibrate")
SOAK_FOLDER = "soak"  # scenarios/soak/: what `bench run --soak` runs (make bench does not)
SOAK_SETTLED_MINUTES = 4  # the soak scenarios' bounded stores are full by then (README)
DEFAULT_RESULTS = PROJECT_DIR / "results"
# A whole `make bench` (every scenario, three repeats) takes about 22 minutes. A run
# estimated at hours is nearly always a slip (milliseconds written as seconds, a zero too
# many in repeats) and would hold the machine until it ends: `bench run` wants --yes for
# it, and `bench validate` warns.
LONG_RUN_LIMIT_S = 2 * 3600
LONG_RUN_LIMIT = f"{LONG_RUN_LIMIT_S / 3600:g} h"
# The command-line flags that override a scenario's [timing], by field.
TIMING_FLAGS = {"warmup_s": "--warmup", "duration_s": "--duration", "repeats": "--repeats"}


def _scenario_files(given: list[Path], soak: bool = False) -> list[Path]:
    if given:
        return given
    return sorted((DEFAULT_SCENARIOS / SOAK_FOLDER if soak else DEFAULT_SCENARIOS).glob("*.toml"))


def _load_all(files: list[Path]):
    from bench.scenario import ScenarioError, load_scenario

    loaded, problems = [], []
    for path in files:
        try:
            loaded.append(load_scenario(path))
        except ScenarioError as exc:
            problems.extend(exc.problems)
    return loaded, problems


@dataclass(frozen=True)
class RunEstimate:
    points: int
    patterns: int
    repeats: int
    seconds: float

    def __str__(self) -> str:
        trials = self.points * self.patterns * self.repeats
        return (
            f"{self.points} point(s) x {self.patterns} pattern(s) x {self.repeats} repeat(s) "
            f"= {trials} trials, about {_duration(self.seconds)}"
        )


def _duration(seconds: float) -> str:
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:,.1f} days"


def _estimate(
    loaded, quick: bool, overrides: dict | None = None, only_patterns: list[str] | None = None
) -> RunEstimate:
    """How long a scenario takes to run: only the patterns --pattern selects, if given."""
    from bench.runner import effective_timing, estimated_seconds

    timing = effective_timing(loaded.scenario, quick, overrides)
    patterns = [p for p in loaded.scenario.patterns if not only_patterns or p in only_patterns]
    trials = len(loaded.points) * timing.repeats * len(patterns)
    seconds = estimated_seconds(trials, timing)
    return RunEstimate(len(loaded.points), len(patterns), timing.repeats, seconds)


def cmd_validate(args: argparse.Namespace) -> int:
    files = _scenario_files(args.files)
    if not files:
        print("no scenario files given and none in scenarios/", file=sys.stderr)
        return EXIT_BAD_INPUT
    loaded, problems = _load_all(files)
    for item in loaded:
        estimate = _estimate(item, quick=False)
        print(f"{item.path}: ok: {estimate}")
        if estimate.seconds > LONG_RUN_LIMIT_S:
            print(
                f"{item.path}: warning: about {_duration(estimate.seconds)} to run, over the "
                f"{LONG_RUN_LIMIT} limit: `bench run` starts it only with --yes",
                file=sys.stderr,
            )
    for line in problems:
        print(line, file=sys.stderr)
    return EXIT_BAD_INPUT if problems else EXIT_OK


def _select_patterns(
    selected: list[str] | None, loaded: list, named: bool
) -> tuple[list, list[str]]:
    """The scenarios to run under --pattern, and the problems with it. A file named on
    the command line with none of the selected patterns is an error; of all of
    scenarios/ (no files named), those without one are left out."""
    from bench.registry import PATTERNS

    if not selected:
        return loaded, []
    unknown = [name for name in selected if name not in PATTERNS]
    if unknown:
        return loaded, [
            f"--pattern {', '.join(unknown)}: unknown pattern; known: {', '.join(PATTERNS)}"
        ]
    has = [item for item in loaded if set(selected) & set(item.scenario.patterns)]
    none_of = "not a pattern" if len(selected) == 1 else "none of them is a pattern"
    problems = [
        f"{item.path}: --pattern {', '.join(selected)}: {none_of} of this scenario; "
        f"its patterns: {', '.join(item.scenario.patterns)}"
        for item in loaded
        if named and item not in has
    ]
    anywhere = {name for item in loaded for name in item.scenario.patterns}
    # One file named: the line above already says so.
    problems += [
        f"--pattern {name}: in none of the scenarios given "
        f"({', '.join(str(item.path) for item in loaded)})"
        for name in selected
        if name not in anywhere and loaded and not (named and len(loaded) == 1)
    ]
    return has, problems


def _timing_problems(overrides: dict) -> list[str]:
    """--warmup, --duration and --repeats within the limits a scenario's [timing] has."""
    from pydantic import ValidationError

    from bench.scenario import Timing

    try:
        Timing.model_validate({**Timing().model_dump(), **overrides})
    except ValidationError as exc:
        return [
            f"{TIMING_FLAGS[error['loc'][0]]} {error['input']:g}: {error['msg']}"
            for error in exc.errors()
        ]
    return []


def _long_run_problem(estimates: list[tuple[Path, RunEstimate]]) -> str | None:
    total_s = sum(estimate.seconds for _, estimate in estimates)
    if total_s <= LONG_RUN_LIMIT_S:
        return None
    each = "; ".join(f"{path}: {estimate}" for path, estimate in estimates)
    return (
        f"this run would take about {_duration(total_s)} ({each}), over the "
        f"{LONG_RUN_LIMIT} limit: pass --yes to start it anyway, or shorten it (--quick, "
        "--duration, --repeats, --pattern)"
    )


def cmd_run(args: argparse.Namespace) -> int:
    from bench.runner import RunSettings, run_scenario

    files = _scenario_files(args.files, soak=args.soak is not None)
    loaded, problems = _load_all(files)
    if not files:
        problems.append("no scenario files given and none in scenarios/")
    loaded, selection_problems = _select_patterns(args.pattern, loaded, bool(args.files))
    problems += selection_problems
    overrides = {
        name: getattr(args, flag.removeprefix("--"))
        for name, flag in TIMING_FLAGS.items()
        if getattr(args, flag.removeprefix("--")) is not None
    }
    if args.soak is not None:
        if args.quick or args.duration is not None or args.repeats is not None:
            problems.append(
                f"--soak {args.soak:g}: sets the window (one trial of {args.soak:g} minutes per "
                "pattern and point); leave out --quick, --duration and --repeats"
            )
        overrides |= {"duration_s": round(args.soak * 60, 3), "repeats": 1}
        if args.soak < SOAK_SETTLED_MINUTES * 2:
            print(
                f"note: --soak {args.soak:g}: servers' bounded stores (replay buffers, created "
                f"orders) fill in the first {SOAK_SETTLED_MINUTES} minutes or so; growth in the "
                f"second half is a leak's only from --soak {SOAK_SETTLED_MINUTES * 2} on",
                file=sys.stderr,
            )
    timing_problems = _timing_problems(overrides)
    problems += timing_problems
    estimates = [
        (item.path, _estimate(item, args.quick, overrides, args.pattern)) for item in loaded
    ]
    too_long = None if args.yes or timing_problems else _long_run_problem(estimates)
    if too_long:
        problems.append(too_long)
    # Every check is made before anything is created: a refused run leaves no folder, and
    # results/latest still points where it did.
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        return EXIT_BAD_INPUT
    options = RunSettings(
        quick=args.quick,
        timing_overrides=overrides,
        results_dir=args.results_dir,
        only_patterns=args.pattern or None,
        soak=args.soak is not None,
        # Several scenarios: their charts are drawn together after the last one.
        defer_charts=len(loaded) > 1,
    )
    failed = broken = False
    run_dirs: list[Path] = []
    for item, (_, estimate) in zip(loaded, estimates, strict=True):
        print(f"{item.path}: {estimate}", file=sys.stderr)
        try:
            run_dirs.append(run_scenario(item, options))
        except KeyboardInterrupt as interrupt:  # Ctrl-C, SIGTERM or SIGHUP
            print(
                f"{reason(interrupt)}: servers stopped, what was measured is saved "
                f"(see {args.results_dir / 'latest'})",
                file=sys.stderr,
            )
            if options.defer_charts:  # the runs finished before it, and the one it cut short
                _charts_after_runs([*run_dirs, options.results_dir / "latest"])
            return exit_status(interrupt)
        failed |= _report_failures(run_dirs[-1])
        broken |= _report_breaches(run_dirs[-1])
    charts_s = _charts_after_runs(run_dirs) if options.defer_charts else None
    _print_time_table(run_dirs, charts_s)
    if failed:
        return EXIT_POINTS_FAILED
    return EXIT_THRESHOLD_BROKEN if broken else EXIT_OK


def _charts_after_runs(run_dirs: list[Path]) -> float | None:
    """Draw these runs' charts together (bench.runner.draw_charts); the seconds it took."""
    from bench.runner import draw_charts
    from bench.signals import deferred

    existing = list(dict.fromkeys(path.resolve() for path in run_dirs if path.exists()))
    if not existing:
        return None
    print(f"drawing the charts of {len(existing)} runs ...", file=sys.stderr)
    with deferred():  # a second Ctrl-C waits: the charts are the runs' own outputs
        return draw_charts(existing)


def _print_time_table(run_dirs: list[Path], charts_s: float | None = None) -> None:
    """Where the time of every scenario run went: its trials' phases, setup and charts."""
    from bench.results import read_run
    from bench.trial_time import scenario_time_of, time_table

    documents = [scenario_time_of(read_run(run_dir)) for run_dir in run_dirs]
    for line in time_table(documents, charts_s):
        print(line, file=sys.stderr)


def _report_breaches(run_dir: Path) -> bool:
    from bench.results import load_run
    from bench.thresholds import breaches

    found = breaches(load_run(run_dir))
    for line in found:
        print(f"{run_dir.name}: threshold broken: {line}", file=sys.stderr)
    return bool(found)


def _report_failures(run_dir: Path) -> bool:
    from bench.results import load_run

    document = load_run(run_dir)
    bad = [p for p in document["points"] if p["status"] not in ("ok",)]
    for point in bad:
        where = f" at {point['label']}" if point["label"] else ""
        print(
            f"{run_dir.name}: {point['pattern']}{where}: {point['status']}: {point['error']}",
            file=sys.stderr,
        )
    return bool(bad)


def cmd_report(args: argparse.Namespace) -> int:
    from bench.results import ResultsUnreadable
    from bench.runner import finish_outputs

    try:
        finish_outputs(args.run_dir)
    except ResultsUnreadable as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"re-rendered {args.run_dir / 'summary.csv'} and {args.run_dir / 'charts'}/")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.compare import compare, differences, format_changes, ranking_disagreement
    from bench.results import ResultsUnreadable, load_run
    from bench.thresholds import breaches

    try:
        before, after = load_run(args.run_a), load_run(args.run_b)
    except ResultsUnreadable as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    if before["run"]["scenario"] != after["run"]["scenario"]:
        print(
            f"note: comparing different scenarios ({before['run']['scenario']} and "
            f"{after['run']['scenario']}): only points with the same label are matched",
            file=sys.stderr,
        )
    for line in differences(before, after):
        print(f"warning: {line}", file=sys.stderr)
    changes = compare(before, after, args.alpha)
    if not changes:
        print("the two runs share no pattern and point: nothing to compare", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"{args.run_a.name} -> {args.run_b.name} (Welch's t-test over the repeats, "
        f"Holm-corrected for {len(changes)} comparisons, significant below p = {args.alpha:g})"
    )
    print(format_changes(changes))
    disagreement = ranking_disagreement(before, after)
    if disagreement:
        print(f"\nthe two runs rank the patterns differently:\n{disagreement}")
    else:
        print("\nthe two runs rank the patterns alike")
    found = breaches(after)
    for line in found:
        print(f"{args.run_b.name}: threshold broken: {line}", file=sys.stderr)
    return EXIT_THRESHOLD_BROKEN if found else EXIT_OK


def cmd_publish(args: argparse.Namespace) -> int:
    from bench.publish import adopt, latest_runs, publish
    from bench.results import ResultsUnreadable

    try:
        chosen = list(args.runs)
        if args.latest:
            chosen += latest_runs(args.results_dir)
            if not chosen:
                print(f"no complete, full runs in {args.results_dir} to adopt", file=sys.stderr)
                return EXIT_BAD_INPUT
        if chosen:
            adopt(chosen, args.out)
        published = publish(args.out)
    except ResultsUnreadable as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"published {published.markdown} and {published.html} ({len(published.charts)} chart files)"
    )
    for claim in published.claims:
        print(f"  {claim.id:3} {claim.verdict:19} {claim.measured[:110]}")
    return EXIT_OK


def cmd_patterns(args: argparse.Namespace) -> int:
    from bench.registry import PATTERNS

    rows = [("pattern", "kind", "promises", "needs beyond make's Python packages")]
    for pattern in PATTERNS.values():
        needs = "; ".join(need.status() for need in pattern.needs) or "nothing"
        kind = pattern.kind
        if pattern.ablation:
            kind += " (ablation)"
        rows.append((pattern.name, kind, pattern.promises, needs))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + f"  {row[3]}"
        )
    print()
    for pattern in PATTERNS.values():  # the names charts use
        print(f"{pattern.name}: {pattern.label}")
    missing = [p.name for p in PATTERNS.values() if any(n.find() is None for n in p.needs)]
    if missing:
        print(f"\nnot runnable on this machine (skipped with the reason): {', '.join(missing)}")
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    if args.network:
        return _calibrate_network(args)
    from bench.calibrate import calibrate

    try:
        record = calibrate(args.results_dir, args.duration, args.rate, args.repeats)
    except KeyboardInterrupt as interrupt:
        print(f"calibration {reason(interrupt)}; nothing stored", file=sys.stderr)
        return exit_status(interrupt)
    failed = [name for name, entry in record["patterns"].items() if entry["status"] == "failed"]
    if failed:
        print(f"calibration failed for {', '.join(failed)} (reasons above)", file=sys.stderr)
        return EXIT_POINTS_FAILED
    return EXIT_OK


def cmd_selfcheck(args: argparse.Namespace) -> int:
    from bench.selfcheck import report

    try:
        for line in report(args.results_dir, args.trials):
            print(line)
    except KeyboardInterrupt as interrupt:
        print(f"selfcheck {reason(interrupt)}", file=sys.stderr)
        return exit_status(interrupt)
    return EXIT_OK


def _calibrate_network(args: argparse.Namespace) -> int:
    from bench.network.calibration import calibratable_profiles, calibrate_network
    from bench.network.link import PathUnavailable

    known = calibratable_profiles()
    if args.network not in ("all", "used") and args.network not in known:
        print(
            f"--network: no path to calibrate for {args.network!r}; "
            f"choose one of {', '.join(known)}, all, or used",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if args.network == "used":
        profiles = _profiles_used(known)
        if not profiles:
            print("no scenario in scenarios/ crosses a network path: nothing to calibrate")
            return EXIT_OK
    else:
        profiles = known if args.network == "all" else [args.network]
    try:
        calibrate_network(args.results_dir, profiles)
    except PathUnavailable as unavailable:
        print(f"network calibration skipped: {unavailable}", file=sys.stderr)
        return EXIT_POINTS_FAILED
    except KeyboardInterrupt as interrupt:
        print(f"network calibration {reason(interrupt)}; nothing stored", file=sys.stderr)
        return exit_status(interrupt)
    return EXIT_OK


def _profiles_used(known: list[str]) -> list[str]:
    """The presets the scenarios of scenarios/ take a path from (a preset with overrides
    too: its footer gives the preset's calibration), in the order presets are listed."""
    loaded, _ = _load_all(_scenario_files([]))
    used = {
        point.scenario.network.path().profile
        for item in loaded
        for point in item.points
        if point.scenario.network.path().emulated
    }
    return [name for name in known if name in used]


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _not_negative(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def _share(text: str) -> float:
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def _folder_to_write(text: str) -> Path:
    """A folder bench may create or write in, checked before anything is written."""
    path = Path(text)
    existing = next(p for p in (path, *path.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write in {existing}: permission denied")
    return path


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="bench", description="Compare API communication patterns on one workload."
    )
    commands = root.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run scenarios and write results and charts")
    run.add_argument("files", nargs="*", type=Path, help="scenario files (default: scenarios/)")
    run.add_argument("--quick", action="store_true", help="about a second per point, one repeat")
    run.add_argument("--duration", type=_positive, help="seconds measured per trial (overrides)")
    run.add_argument("--warmup", type=_not_negative, help="seconds of warm-up per trial")
    run.add_argument("--repeats", type=_count, help="trials per pattern and point")
    run.add_argument(
        "--pattern",
        action="append",
        help="run only this pattern (repeatable); each file named must have one of them",
    )
    run.add_argument(
        "--yes",
        action="store_true",
        help=f"start a run estimated at over {LONG_RUN_LIMIT}, which is refused without it",
    )
    run.add_argument(
        "--soak",
        type=_positive,
        metavar="MINUTES",
        help="one trial this long per pattern and point, recording every process's memory and "
        f"open descriptors (default files: scenarios/{SOAK_FOLDER}/)",
    )
    run.add_argument("--results-dir", type=_folder_to_write, default=DEFAULT_RESULTS)
    run.set_defaults(handler=cmd_run)

    patterns = commands.add_parser(
        "patterns", help="the patterns: kind, what each promises, what it needs and has here"
    )
    patterns.set_defaults(handler=cmd_patterns)

    validate = commands.add_parser(
        "validate",
        help="check scenario files without running them",
        description="Check scenario files without running them: every problem, one line "
        "each, exit 2 if any. A valid file gets its run-time estimate, and a warning when "
        f"that is over {LONG_RUN_LIMIT}, the longest `bench run` starts without --yes.",
    )
    validate.add_argument("files", nargs="*", type=Path)
    validate.set_defaults(handler=cmd_validate)

    report = commands.add_parser("report", help="re-render charts from a run's results.json")
    report.add_argument("run_dir", type=Path)
    report.set_defaults(handler=cmd_report)

    compare = commands.add_parser(
        "compare", help="what changed between two runs, and did the second break a threshold"
    )
    compare.add_argument("run_a", type=Path, help="the earlier run folder")
    compare.add_argument("run_b", type=Path, help="the later run folder (thresholds checked)")
    compare.add_argument(
        "--alpha", type=_share, default=0.05, help="significance level, between 0 and 1"
    )
    compare.set_defaults(handler=cmd_compare)

    publish = commands.add_parser(
        "publish", help="build the committed report (HTML and Markdown) from stored results"
    )
    publish.add_argument("runs", nargs="*", type=Path, help="run folders to adopt first")
    publish.add_argument(
        "--latest",
        action="store_true",
        help="adopt the newest complete run of each scenario in --results-dir",
    )
    publish.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS)
    publish.add_argument("--out", type=_folder_to_write, default=DEFAULT_RESULTS / "published")
    publish.set_defaults(handler=cmd_publish)

    calibrate = commands.add_parser(
        "calibrate",
        help="the generator's CPU per request against wrk and h2load, per pattern, at a fixed rate",
    )
    calibrate.add_argument(
        "--rate",
        type=_positive,
        default=1000.0,
        help="requests per second, below every server's ceiling",
    )
    calibrate.add_argument(
        "--duration", type=_positive, default=3.0, help="seconds per measurement (whole seconds)"
    )
    calibrate.add_argument(
        "--repeats", type=_count, default=2, help="rounds per pattern, alternating who goes first"
    )
    calibrate.add_argument(
        "--network",
        metavar="PROFILE|all|used",
        help="instead: build this network preset's path (all: every one but loopback; used: "
        "those the scenarios in scenarios/ use) and measure its round trip, bandwidth and "
        "loss against what it is configured to do",
    )
    calibrate.add_argument("--results-dir", type=_folder_to_write, default=DEFAULT_RESULTS)
    calibrate.set_defaults(handler=cmd_calibrate)

    selfcheck = commands.add_parser(
        "selfcheck",
        help="what the harness itself costs: engine overhead per message, time per trial "
        "outside its window, and the generator's ratios to independent tools",
    )
    selfcheck.add_argument(
        "--trials", type=_count, default=5, help="trials per way of starting processes"
    )
    selfcheck.add_argument("--results-dir", type=_folder_to_write, default=DEFAULT_RESULTS)
    selfcheck.set_defaults(handler=cmd_selfcheck)
    return root


def main(argv: list[str] | None = None) -> int:
    from bench.signals import stop_on_signals

    args = parser().parse_args(argv)
    # SIGTERM and SIGHUP stop a command as Ctrl-C does: what it started is stopped, what it
    # measured is saved.
    if args.command not in COMMANDS_THAT_START_PROCESSES:
        return args.handler(args)
    with stop_on_signals():
        try:
            return args.handler(args)
        except KeyboardInterrupt as interrupt:
            print(reason(interrupt), file=sys.stderr)
            return exit_status(interrupt)
