"""The `bench` command: run, validate, report, calibrate.

Exit codes: 0 success; 1 a run finished but some points failed; 2 bad input (a scenario or
results file that cannot be used); 3 a threshold the scenario sets is broken; 130
interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_POINTS_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_THRESHOLD_BROKEN = 3
EXIT_INTERRUPTED = 130
PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_SCENARIOS = PROJECT_DIR / "scenarios"
DEFAULT_RESULTS = PROJECT_DIR / "results"


def _scenario_files(given: list[Path]) -> list[Path]:
    return given or sorted(DEFAULT_SCENARIOS.glob("*.toml"))


def _load_all(files: list[Path]):
    from bench.scenario import ScenarioError, load_scenario

    loaded, problems = [], []
    for path in files:
        try:
            loaded.append(load_scenario(path))
        except ScenarioError as exc:
            problems.extend(exc.problems)
    return loaded, problems


def _estimate(loaded, quick: bool, overrides: dict | None = None) -> str:
    from bench.runner import TRIAL_OVERHEAD_S, effective_timing

    timing = effective_timing(loaded.scenario, quick, overrides)
    trials = len(loaded.points) * timing.repeats * len(loaded.scenario.patterns)
    seconds = trials * (timing.warmup_s + timing.duration_s + TRIAL_OVERHEAD_S)
    return (
        f"{len(loaded.points)} point(s) x {len(loaded.scenario.patterns)} pattern(s) x "
        f"{timing.repeats} repeat(s) = {trials} trials, about {seconds / 60:.1f} min"
    )


def cmd_validate(args: argparse.Namespace) -> int:
    files = _scenario_files(args.files)
    if not files:
        print("no scenario files given and none in scenarios/", file=sys.stderr)
        return EXIT_BAD_INPUT
    loaded, problems = _load_all(files)
    for item in loaded:
        print(f"{item.path}: ok: {_estimate(item, quick=False)}")
    for line in problems:
        print(line, file=sys.stderr)
    return EXIT_BAD_INPUT if problems else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from bench.patterns import PATTERNS
    from bench.runner import RunOptions, run_scenario

    files = _scenario_files(args.files)
    loaded, problems = _load_all(files)
    unknown = [name for name in args.pattern or [] if name not in PATTERNS]
    if unknown:
        problems.append(f"--pattern {', '.join(unknown)}: unknown; known: {', '.join(PATTERNS)}")
    if problems or not files:
        for line in problems or ["no scenario files given and none in scenarios/"]:
            print(line, file=sys.stderr)
        return EXIT_BAD_INPUT
    overrides = {
        name: value
        for name, value in (
            ("warmup_s", args.warmup),
            ("duration_s", args.duration),
            ("repeats", args.repeats),
        )
        if value is not None
    }
    options = RunOptions(
        quick=args.quick,
        timing_overrides=overrides,
        results_dir=args.results_dir,
        only_patterns=args.pattern or None,
    )
    failed = broken = False
    for item in loaded:
        print(f"{item.path}: {_estimate(item, args.quick, overrides)}", file=sys.stderr)
        try:
            run_dir = run_scenario(item, options)
        except KeyboardInterrupt:
            print(
                "interrupted: servers stopped, what was measured is saved "
                f"(see {args.results_dir / 'latest'})",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
        failed |= _report_failures(run_dir)
        broken |= _report_breaches(run_dir)
    if failed:
        return EXIT_POINTS_FAILED
    return EXIT_THRESHOLD_BROKEN if broken else EXIT_OK


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


def cmd_calibrate(args: argparse.Namespace) -> int:
    from bench.calibrate import calibrate

    try:
        record = calibrate(args.results_dir, args.duration, args.rate, args.repeats)
    except KeyboardInterrupt:
        print("calibration interrupted; nothing stored", file=sys.stderr)
        return EXIT_INTERRUPTED
    failed = [name for name, entry in record["patterns"].items() if entry["status"] == "failed"]
    if failed:
        print(f"calibration failed for {', '.join(failed)} (reasons above)", file=sys.stderr)
        return EXIT_POINTS_FAILED
    return EXIT_OK


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _not_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


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
    run.add_argument("--pattern", action="append", help="run only this pattern (repeatable)")
    run.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS)
    run.set_defaults(handler=cmd_run)

    validate = commands.add_parser("validate", help="check scenario files without running them")
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
    compare.add_argument("--alpha", type=float, default=0.05, help="significance level")
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
    publish.add_argument("--out", type=Path, default=DEFAULT_RESULTS / "published")
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
    calibrate.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS)
    calibrate.set_defaults(handler=cmd_calibrate)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.handler(args)
