"""Scenario files: valid ones load, every kind of bad one is rejected with a usable message."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.scenario import ScenarioError, load_scenario
from tests.conftest import PROJECT_DIR, run_bench

VALID = """
title = "t"
patterns = ["rest"]
[load]
model = "closed"
concurrency = 4
"""


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    for line in caught.value.problems:
        assert line.startswith(f"{path}: "), "every problem names the file"
    return caught.value.problems


def test_every_shipped_scenario_is_valid():
    files = sorted((PROJECT_DIR / "scenarios").glob("*.toml"))
    assert files
    for path in files:
        assert load_scenario(path).points


def test_minimal_scenario_gets_defaults(tmp_path):
    loaded = load_scenario(write(tmp_path, VALID))
    assert loaded.name == "s"
    assert loaded.scenario.timing.repeats == 3
    assert loaded.scenario.workload.mix == {"get_user": 1.0}
    assert [point.label for point in loaded.points] == [""]


def test_sweep_expands_into_one_point_per_value(tmp_path):
    loaded = load_scenario(
        write(tmp_path, VALID + '[sweep]\nparameter = "load.concurrency"\nvalues = [1, 16, 64]\n')
    )
    assert [p.scenario.load.concurrency for p in loaded.points] == [1, 16, 64]
    assert [p.label for p in loaded.points] == ["concurrency=1", "concurrency=16", "concurrency=64"]


def test_unknown_top_level_key_is_an_error_listing_allowed_fields(tmp_path):
    (line,) = problems(tmp_path, VALID.replace('title = "t"', 'title = "t"\ntitel = "x"'))
    assert "titel = 'x'" in line
    assert "unknown field" in line
    assert "title" in line and "patterns" in line  # what is allowed


def test_typo_in_a_nested_key_is_an_error(tmp_path):
    (line,) = problems(
        tmp_path, VALID.replace("concurrency = 4", "concurrency = 4\nconcurency = 8")
    )
    assert "load.concurency = 8" in line
    assert "allowed here: model, concurrency" in line


def test_value_out_of_range_names_field_value_and_limit(tmp_path):
    (line,) = problems(tmp_path, VALID.replace("concurrency = 4", "concurrency = 0"))
    assert "load.concurrency = 0" in line
    assert "greater than or equal to 1" in line


def test_wrong_type_is_an_error(tmp_path):
    (line,) = problems(tmp_path, VALID.replace("concurrency = 4", 'concurrency = "many"'))
    assert "load.concurrency = 'many'" in line
    assert "integer" in line


def test_unknown_pattern_lists_known_ones(tmp_path):
    (line,) = problems(tmp_path, VALID.replace('["rest"]', '["rest", "carrier-pigeon"]'))
    assert "patterns[1] = 'carrier-pigeon'" in line
    assert "known patterns: " in line and "rest" in line


def test_unknown_enum_value_lists_the_choices(tmp_path):
    (line,) = problems(tmp_path, VALID.replace('model = "closed"', 'model = "half-open"'))
    assert "load.model = 'half-open'" in line
    assert "'closed' or 'open'" in line


def test_unknown_operation_in_mix_is_an_error(tmp_path):
    (line,) = problems(tmp_path, VALID + "[workload]\nmix = { get_usr = 1.0 }\n")
    assert "workload.mix.get_usr" in line
    assert "get_user" in line


def test_missing_required_fields_are_named(tmp_path):
    lines = problems(tmp_path, 'patterns = ["rest"]\n')
    assert any(line.endswith("title: required field is missing") for line in lines)
    lines = problems(tmp_path, 'title = "t"\n[load]\nmodel = "closed"\n')
    assert any(line.endswith("patterns: required field is missing") for line in lines)


def test_closed_loop_without_concurrency_is_an_error(tmp_path):
    (line,) = problems(tmp_path, VALID.replace("concurrency = 4", ""))
    assert "closed loop needs concurrency" in line


def test_open_loop_without_rate_is_an_error(tmp_path):
    (line,) = problems(
        tmp_path,
        VALID.replace('model = "closed"\nconcurrency = 4', 'model = "open"\nconnections = 4'),
    )
    assert "open loop needs rate_per_s" in line


def test_sweep_over_an_unknown_parameter_lists_the_sweepable_ones(tmp_path):
    (line,) = problems(tmp_path, VALID + '[sweep]\nparameter = "load.colour"\nvalues = [1]\n')
    assert "sweep.parameter = 'load.colour'" in line
    assert "load.concurrency" in line and "payload.size_bytes" in line


def test_each_bad_sweep_value_is_reported_with_its_index(tmp_path):
    lines = problems(
        tmp_path, VALID + '[sweep]\nparameter = "load.concurrency"\nvalues = [1, 2.5, 0]\n'
    )
    assert len(lines) == 2
    assert "sweep.values[1] gives load.concurrency = 2.5" in lines[0]
    assert "sweep.values[2] gives load.concurrency = 0" in lines[1]


def test_all_problems_in_a_file_are_reported_at_once(tmp_path):
    text = VALID.replace('title = "t"', 'title = "t"\nbogus = 1').replace(
        "concurrency = 4", "concurrency = 4\ntimeout_s = -1"
    )
    assert len(problems(tmp_path, text)) == 2


def test_toml_syntax_error_gives_line_and_column(tmp_path):
    (line,) = problems(tmp_path, 'title = "unterminated\n')
    assert "not valid TOML" in line and "line 1" in line


def test_missing_file_is_reported(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert str(path) in caught.value.problems[0]


def test_bench_validate_exits_2_without_a_traceback(tmp_path):
    good = write(tmp_path, VALID, "good.toml")
    bad = write(tmp_path, VALID.replace("concurrency = 4", "concurrency = -3"), "bad.toml")
    completed = run_bench("validate", str(good), str(bad))
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr + completed.stdout
    assert f"{bad}: load.concurrency = -3: " in completed.stderr
    assert f"{good}: ok" in completed.stdout


def test_bench_run_refuses_a_bad_file_before_running_anything(tmp_path):
    bad = write(tmp_path, VALID.replace('["rest"]', '["nope"]'), "bad.toml")
    completed = run_bench("run", "--results-dir", str(tmp_path / "results"), str(bad))
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert "patterns[0] = 'nope'" in completed.stderr
    assert not (tmp_path / "results").exists()


def test_thresholds_may_only_name_patterns_of_the_scenario(tmp_path):
    (line,) = problems(
        tmp_path,
        VALID + "[thresholds]\nmax_p99_ms = 5\n[thresholds.patterns.grpc]\nmax_p99_ms = 1\n",
    )
    assert "thresholds.patterns names grpc, not patterns of this scenario (rest)" in line


def test_a_misspelt_threshold_is_an_error_listing_the_limits(tmp_path):
    (line,) = problems(tmp_path, VALID + "[thresholds]\nmax_p99 = 5\n")
    assert "thresholds.max_p99 = 5: unknown field" in line
    assert "max_p99_ms" in line and "min_completeness" in line


def test_push_workloads_are_validated_with_their_own_fields(tmp_path):
    push = 'title = "p"\npatterns = ["sse"]\n[workload]\nkind = "push"\n'
    lines = problems(tmp_path, push + "rate_per_s = 0\nsubscribers = 3\nsubscriber = 4\n")
    assert any("workload.rate_per_s = 0: Input should be greater than 0" in line for line in lines)
    assert any(
        "workload.subscriber = 4: unknown field; allowed here: kind, rate_per_s" in line
        for line in lines
    )
    (line,) = problems(
        tmp_path, push + "rate_per_s = 10\nsubscribers = 3\n[load]\nconcurrency = 4\n"
    )
    assert "a push workload sets its rate and subscribers under [workload]" in line


def test_a_request_response_pattern_cannot_run_a_push_workload(tmp_path):
    (line,) = problems(
        tmp_path,
        'title = "p"\npatterns = ["rest"]\n[workload]\nkind = "push"\n'
        "rate_per_s = 10\nsubscribers = 3\n",
    )
    assert "patterns rest cannot run a push workload" in line
