"""Every user error on the command line is one message and exit status 2, never a traceback,
and a refused run creates nothing: no run folder, and results/latest stays where it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import LONG_RUN_LIMIT, main
from tests.conftest import PROJECT_DIR

RR = 'title = "t"\npatterns = ["rest", "grpc"]\n[load]\nconcurrency = 4\n'
PUSH = (
    'title = "p"\npatterns = ["sse"]\n[workload]\nkind = "push"\nrate_per_s = 10\nsubscribers = 2\n'
)
# 2 patterns x 3 repeats x (1 h + overhead): about 6 h, 3 h for one pattern.
LONG = RR + "[timing]\nwarmup_s = 0\nduration_s = 3600\nrepeats = 3\n"


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def bench(capsys, *args: str) -> tuple[int, str, str]:
    """`bench ARGS` in this process: (exit status, stdout, stderr). argparse's own errors
    end in SystemExit, whose code is the status."""
    try:
        status = main([str(arg) for arg in args])
    except SystemExit as exc:
        status = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, out, err


@pytest.fixture
def results(tmp_path) -> Path:
    """A results folder holding an earlier run, with `latest` pointing at it."""
    folder = tmp_path / "results"
    (folder / "20260101T000000Z-earlier").mkdir(parents=True)
    (folder / "latest").symlink_to("20260101T000000Z-earlier")
    return folder


def assert_untouched(results: Path) -> None:
    assert sorted(p.name for p in results.iterdir()) == ["20260101T000000Z-earlier", "latest"]
    assert (results / "latest").readlink() == Path("20260101T000000Z-earlier")


# Scenario files that cannot be read ------------------------------------------------------
def test_validate_refuses_a_latin_1_file_with_one_line_and_status_2(tmp_path, capsys):
    path = tmp_path / "latin.toml"
    path.write_bytes('title = "café"\npatterns = ["rest"]\n'.encode("latin-1"))
    status, _, err = bench(capsys, "validate", path)
    assert status == 2
    assert err == (
        f"{path}: not UTF-8 text: byte 0xe9 at line 1, column 13 (byte offset 12); a scenario "
        "must be a UTF-8 encoded TOML file: save it as UTF-8\n"
    )


def test_run_refuses_binary_garbage_before_creating_anything(tmp_path, capsys, results):
    path = tmp_path / "garbage.toml"
    path.write_bytes(bytes(range(256)))
    status, _, err = bench(capsys, "run", "--results-dir", results, path)
    assert status == 2
    assert err.startswith(f"{path}: not UTF-8 text: byte 0x80")
    assert_untouched(results)


@pytest.mark.parametrize("name", ["missing.toml", "a-folder"])
def test_a_missing_file_or_a_folder_is_one_line_and_status_2(tmp_path, capsys, name):
    (tmp_path / "a-folder").mkdir()
    status, _, err = bench(capsys, "validate", tmp_path / name)
    assert status == 2
    assert err.count("\n") == 1 and err.startswith(f"{tmp_path / name}: ")
    assert "no such file" in err or "is a folder, not a scenario file" in err


# --pattern -------------------------------------------------------------------------------
def test_a_pattern_the_scenario_does_not_have_is_refused_before_any_run(tmp_path, capsys, results):
    path = write(tmp_path, RR)
    status, _, err = bench(capsys, "run", "--results-dir", results, "--pattern", "soap", path)
    assert status == 2
    assert (
        err == f"{path}: --pattern soap: not a pattern of this scenario; its patterns: rest, grpc\n"
    )
    assert_untouched(results)


def test_a_refused_run_does_not_create_its_results_folder(tmp_path, capsys):
    path = write(tmp_path, RR)
    status, _, _ = bench(capsys, "run", "--results-dir", tmp_path / "new", "--pattern", "sse", path)
    assert status == 2
    assert not (tmp_path / "new").exists()


def test_each_file_named_must_have_one_of_the_patterns(tmp_path, capsys, results):
    rr, push = write(tmp_path, RR, "rr.toml"), write(tmp_path, PUSH, "push.toml")
    status, _, err = bench(
        capsys, "run", "--results-dir", results, "--pattern", "rest", "--pattern", "mqtt-qos1",
        rr, push,
    )  # fmt: skip
    assert status == 2
    assert err.splitlines() == [
        f"{push}: --pattern rest, mqtt-qos1: none of them is a pattern of this scenario; "
        "its patterns: sse",
        f"--pattern mqtt-qos1: in none of the scenarios given ({rr}, {push})",
    ]
    assert_untouched(results)


def test_an_unknown_pattern_lists_the_known_ones(tmp_path, capsys, results):
    status, _, err = bench(
        capsys, "run", "--results-dir", results, "--pattern", "grcp", write(tmp_path, RR)
    )
    assert status == 2
    assert err.startswith("--pattern grcp: unknown pattern; known: graphql, graphql-fields, grpc, ")
    assert_untouched(results)


# Runs too long to start without asking -----------------------------------------------------
def test_validate_warns_of_a_long_run_and_still_exits_0(tmp_path, capsys):
    path = write(tmp_path, LONG)
    status, out, err = bench(capsys, "validate", path)
    assert status == 0
    assert out == f"{path}: ok: 1 point(s) x 2 pattern(s) x 3 repeat(s) = 6 trials, about 6.0 h\n"
    assert err == (
        f"{path}: warning: about 6.0 h to run, over the {LONG_RUN_LIMIT} limit: `bench run` "
        "starts it only with --yes\n"
    )


def test_run_refuses_a_long_run_with_its_estimate_and_the_limit(tmp_path, capsys, results):
    path = write(tmp_path, LONG)
    status, _, err = bench(capsys, "run", "--results-dir", results, path)
    assert status == 2
    assert err == (
        f"this run would take about 6.0 h ({path}: 1 point(s) x 2 pattern(s) x 3 repeat(s) = "
        "6 trials, about 6.0 h), over the 2 h limit: pass --yes to start it anyway, or shorten "
        "it (--quick, --duration, --repeats, --pattern)\n"
    )
    assert_untouched(results)


def test_the_estimate_counts_only_the_patterns_selected(tmp_path, capsys, results):
    path = write(tmp_path, LONG)
    status, _, err = bench(capsys, "run", "--results-dir", results, "--pattern", "grpc", path)
    assert status == 2
    assert "1 point(s) x 1 pattern(s) x 3 repeat(s) = 3 trials, about 3.0 h" in err


def test_yes_lifts_the_long_run_refusal(tmp_path, capsys, results):
    # Stopped by the --pattern check, which comes first: no long-run line beside it.
    path = write(tmp_path, LONG)
    status, _, err = bench(
        capsys, "run", "--yes", "--results-dir", results, "--pattern", "soap", path
    )
    assert status == 2
    assert "limit" not in err and "--pattern soap" in err


def test_without_files_pattern_picks_the_scenarios_that_have_it(capsys, results):
    status, _, err = bench(
        capsys, "run", "--results-dir", results, "--pattern", "rest", "--duration", "86400"
    )
    assert status == 2
    assert "over the 2 h limit" in err
    shipped = sorted((PROJECT_DIR / "scenarios").glob("*.toml"))
    with_rest = [p for p in shipped if '"rest"' in p.read_text()]
    assert with_rest and all(str(p) in err for p in with_rest)
    assert not any(str(p) in err for p in shipped if p not in with_rest)  # push: left out
    assert_untouched(results)


def test_timing_flags_have_the_limits_a_scenario_has(tmp_path, capsys, results):
    path = write(tmp_path, RR)
    status, _, err = bench(capsys, "run", "--results-dir", results, "--duration", "1e9", path)
    assert status == 2
    assert err == "--duration 1e+09: Input should be less than or equal to 86400\n"
    assert_untouched(results)


# Bad arguments ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--duration", "abc"], "argument --duration: must be a number, got 'abc'"),
        (["run", "--duration", "nan"], "argument --duration: must be a finite number, got 'nan'"),
        (["run", "--warmup", "-1"], "argument --warmup: must be 0 or more, got -1"),
        (["run", "--repeats", "2.5"], "argument --repeats: must be a whole number, got '2.5'"),
        (["calibrate", "--rate", "0"], "argument --rate: must be more than 0, got 0"),
        (["calibrate", "--duration", "inf"], "argument --duration: must be a finite number"),
        (["compare", "--alpha", "2", "a", "b"], "argument --alpha: must be between 0 and 1"),
    ],
)
def test_a_bad_number_on_the_command_line_is_one_message(capsys, args, message):
    status, _, err = bench(capsys, *args)
    assert status == 2
    assert message in err


@pytest.mark.parametrize("command", ["run", "calibrate"])
def test_a_results_dir_that_is_a_file_is_refused(tmp_path, capsys, command):
    not_a_folder = write(tmp_path, "", "file")
    status, _, err = bench(capsys, command, "--results-dir", not_a_folder / "below")
    assert status == 2
    assert f"argument --results-dir: {not_a_folder} is a file, not a folder" in err


def test_report_on_a_folder_that_does_not_exist(tmp_path, capsys):
    status, _, err = bench(capsys, "report", tmp_path / "nope")
    assert status == 2
    assert (
        err == f"{tmp_path / 'nope' / 'results.json'}: cannot read it: No such file or directory\n"
    )


def test_report_on_corrupt_json(tmp_path, capsys):
    (tmp_path / "results.json").write_text('{"schema_version": 2, "points": [')
    status, _, err = bench(capsys, "report", tmp_path)
    assert status == 2
    assert err.startswith(f"{tmp_path / 'results.json'}: not valid JSON: ")


def test_compare_with_missing_folders(tmp_path, capsys):
    status, _, err = bench(capsys, "compare", tmp_path / "a", tmp_path / "b")
    assert status == 2
    assert err.startswith(f"{tmp_path / 'a' / 'results.json'}: cannot read it")


def test_publish_a_bogus_run_folder(tmp_path, capsys):
    status, _, err = bench(capsys, "publish", "--out", tmp_path / "out", tmp_path / "bogus")
    assert status == 2
    assert "results.json" in err and str(tmp_path / "bogus") in err


def test_publish_out_that_is_a_file_is_refused(tmp_path, capsys):
    status, _, err = bench(capsys, "publish", "--out", write(tmp_path, "", "file"))
    assert status == 2
    assert "argument --out: " in err and "is a file, not a folder" in err


def test_every_shipped_scenario_validates_without_a_warning(capsys):
    status, out, err = bench(capsys, "validate")
    assert status == 0 and err == ""
    assert out.count(": ok: ") == len(list((PROJECT_DIR / "scenarios").glob("*.toml")))
    soaks = sorted(str(path) for path in (PROJECT_DIR / "scenarios" / "soak").glob("*.toml"))
    assert len(soaks) == 2
    status, out, err = bench(capsys, "validate", *soaks)
    assert status == 0 and err == "" and out.count(": ok: ") == 2


def test_stored_fixture_runs_are_still_readable():
    from bench.results import load_run
    from bench.thresholds import breaches

    for results_file in (PROJECT_DIR / "tests" / "data" / "runs").glob("*/*/results.json"):
        document = load_run(results_file.parent)
        assert document["points"]
        breaches(document)  # stored thresholds still validate under the strict schema
        assert json.loads(results_file.read_text())["schema_version"] == document["schema_version"]
