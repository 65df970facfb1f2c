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
    assert 'titel = "x"' in line
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
    assert 'load.concurrency = "many"' in line
    assert "integer" in line


def test_unknown_pattern_lists_known_ones(tmp_path):
    (line,) = problems(tmp_path, VALID.replace('["rest"]', '["rest", "carrier-pigeon"]'))
    assert 'patterns[1] = "carrier-pigeon"' in line
    assert "known patterns: " in line and "rest" in line


def test_unknown_enum_value_lists_the_choices(tmp_path):
    (line,) = problems(tmp_path, VALID.replace('model = "closed"', 'model = "half-open"'))
    assert 'load.model = "half-open"' in line
    assert '"closed" or "open"' in line


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
    assert "load.concurrency: required field is missing" in line
    assert 'a closed loop (load.model = "closed") needs concurrency' in line


def test_open_loop_without_rate_is_an_error(tmp_path):
    (line,) = problems(
        tmp_path,
        VALID.replace('model = "closed"\nconcurrency = 4', 'model = "open"\nconnections = 4'),
    )
    assert "load.rate_per_s: required field is missing" in line
    assert 'an open loop (load.model = "open") needs rate_per_s' in line


def test_sweep_over_an_unknown_parameter_lists_the_sweepable_ones(tmp_path):
    (line,) = problems(tmp_path, VALID + '[sweep]\nparameter = "load.colour"\nvalues = [1]\n')
    assert 'sweep.parameter = "load.colour"' in line
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
    assert 'patterns[0] = "nope"' in completed.stderr
    assert not (tmp_path / "results").exists()


def test_thresholds_may_only_name_patterns_of_the_scenario(tmp_path):
    (line,) = problems(
        tmp_path,
        VALID + "[thresholds]\nmax_p99_ms = 5\n[thresholds.patterns.grpc]\nmax_p99_ms = 1\n",
    )
    assert "thresholds.patterns.grpc: not a pattern of this scenario; its patterns: rest" in line


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
    assert 'patterns[0] = "rest": cannot run a push workload' in line
    can = line.split("patterns that can: ")[1].split(", ")
    assert "sse" in can and "mqtt-qos1" in can and "rest" not in can and "grpc" not in can


# Files that are not UTF-8 text, or not files ---------------------------------------------
def test_a_latin_1_file_is_refused_naming_the_first_bad_byte(tmp_path):
    path = tmp_path / "latin.toml"
    path.write_bytes('title = "café"\npatterns = ["rest"]\n'.encode("latin-1"))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    (line,) = caught.value.problems
    assert line.startswith(f"{path}: not UTF-8 text: byte 0xe9 at line 1, column 13")
    assert "must be a UTF-8 encoded TOML file" in line


def test_binary_garbage_is_refused_as_not_utf8(tmp_path):
    path = tmp_path / "garbage.toml"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    (line,) = caught.value.problems
    assert line.startswith(f"{path}: not UTF-8 text: byte 0x80 at line 2")


def test_a_utf8_byte_order_mark_is_not_part_of_the_toml(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + VALID.encode())
    assert load_scenario(path).scenario.title == "t"


def test_a_folder_is_not_a_scenario_file(tmp_path):
    with pytest.raises(ScenarioError) as caught:
        load_scenario(tmp_path)
    assert caught.value.problems == [
        f"{tmp_path}: is a folder, not a scenario file; give its .toml files ({tmp_path}/*.toml)"
    ]


def test_an_unreadable_file_is_one_line_naming_why(tmp_path, monkeypatch):
    path = write(tmp_path, VALID)

    def refuse(_self):  # chmod 000 does not stop root, who may run the tests
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert caught.value.problems == [f"{path}: cannot read the file: Permission denied"]


# Values are taken as written ----------------------------------------------------------
@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            '[load]\nconcurrency = "4"',
            'load.concurrency = "4": must be a whole number (an integer), not a string: '
            "write the number without quotes",
        ),
        (
            "[load]\nconcurrency = true",
            "load.concurrency = true: must be a whole number (an integer), not true or false",
        ),
        (
            "[load]\nconcurrency = 4.0",
            "load.concurrency = 4.0: must be a whole number (an integer), not a decimal: write 4",
        ),
        (
            '[timing]\nduration_s = "2000"',
            'timing.duration_s = "2000": must be a number, not a string: write the number '
            "without quotes",
        ),
        (
            '[load]\nconcurrency = 4\npin_cpus = "yes"',
            'load.pin_cpus = "yes": must be true or false, not a string: write true or false '
            "without quotes",
        ),
        (
            '[workload]\nmix = { get_user = "1" }',
            'workload.mix.get_user = "1": must be a number, not a string',
        ),
        ("[report]\nat = true", "report.at = true: must be a number, not true or false"),
    ],
)
def test_no_value_is_coerced_from_another_type(tmp_path, setting, expected):
    load = "" if "[load]" in setting else "[load]\nconcurrency = 4\n"
    (line,) = problems(tmp_path, f'title = "t"\npatterns = ["rest"]\n{load}{setting}\n')
    assert expected in line


def test_an_int_is_a_fine_float(tmp_path):
    loaded = load_scenario(write(tmp_path, VALID + "[timing]\nduration_s = 2\n"))
    assert loaded.scenario.timing.duration_s == 2.0


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("[timing]\nduration_s = nan", "timing.duration_s = nan"),
        ("[timing]\nwarmup_s = -inf", "timing.warmup_s = -inf"),
        ("[thresholds]\nmax_p99_ms = inf", "thresholds.max_p99_ms = inf"),
        ('[sweep]\nparameter = "load.concurrency"\nvalues = [1, nan]', "sweep.values[1] = nan"),
    ],
)
def test_nan_and_inf_are_refused_as_not_finite(tmp_path, setting, field):
    (line,) = problems(tmp_path, VALID + setting + "\n")
    assert f"{field}: must be a finite number (nan and inf are not allowed)" in line


def test_a_number_or_a_string_where_a_number_or_float_goes_is_one_problem(tmp_path):
    (line,) = problems(
        tmp_path,
        VALID + '[sweep]\nparameter = "load.concurrency"\nvalues = [1, 2]\n[report]\nat = "2"\n',
    )
    assert 'report.at = "2": must be a number' in line


# Settings that only mean something together ------------------------------------------------
PUSH = (
    'title = "p"\npatterns = ["sse"]\n[workload]\nkind = "push"\nrate_per_s = 10\nsubscribers = 2\n'
)


def test_away_s_without_disconnect_every_s_is_an_error(tmp_path):
    (line,) = problems(tmp_path, PUSH + "away_s = 0.2\n")
    assert (
        "workload.away_s = 0.2: only means something with workload.disconnect_every_s "
        "(how often each subscriber drops); set both, or neither" in line
    )
    assert load_scenario(write(tmp_path, PUSH + "disconnect_every_s = 1\naway_s = 0.2\n"))


def test_per_page_without_list_users_in_the_mix_is_an_error(tmp_path):
    (line,) = problems(tmp_path, VALID + "[workload]\nper_page = 50\n")
    assert "workload.per_page = 50: per_page is only used by list_users" in line
    assert "workload.mix does not have (get_user)" in line
    (line,) = problems(
        tmp_path, VALID + '[sweep]\nparameter = "workload.per_page"\nvalues = [5, 50]\n'
    )
    assert 'sweep.parameter = "workload.per_page": per_page is only used by list_users' in line


def test_open_loop_settings_under_a_closed_loop_are_errors(tmp_path):
    lines = problems(
        tmp_path, VALID.replace("concurrency = 4", 'concurrency = 4\narrival = "poisson"\n')
    )
    assert lines == [
        f'{tmp_path / "s.toml"}: load.arrival = "poisson": only for load.model = "open", '
        'and load.model is "closed"; remove it, or set model = "open"'
    ]
    (line,) = problems(
        tmp_path, VALID.replace("concurrency = 4", "concurrency = 4\nconnections = 8")
    )
    assert 'load.connections = 8: only for load.model = "open"' in line


def test_concurrency_under_an_open_loop_is_an_error(tmp_path):
    (line,) = problems(
        tmp_path, VALID.replace('model = "closed"', 'model = "open"\nrate_per_s = 100')
    )
    assert 'load.concurrency = 4: only for load.model = "closed", and load.model is "open"' in line


def test_a_sweep_of_concurrency_needs_no_concurrency_beside_it(tmp_path):
    text = 'title = "t"\npatterns = ["rest"]\n'
    text += '[sweep]\nparameter = "load.concurrency"\nvalues = [1, 4]\n'
    points = load_scenario(write(tmp_path, text)).points
    assert [point.scenario.load.concurrency for point in points] == [1, 4]


def test_a_push_workload_takes_only_generators_and_pin_cpus_from_load(tmp_path):
    lines = problems(tmp_path, PUSH + "[load]\ngenerators = 2\ntimeout_s = 3\n")
    assert len(lines) == 1
    assert (
        "load.timeout_s = 3.0: a push workload sets its rate and subscribers under [workload]; "
        "[load] takes only generators and pin_cpus" in lines[0]
    )


def test_a_push_workload_has_no_users_to_size(tmp_path):
    (line,) = problems(tmp_path, PUSH + "[payload]\nusers = 10\n")
    assert "payload.users = 10: a push workload publishes events, not users" in line


def test_a_sweep_of_a_setting_the_workload_does_not_use_is_an_error(tmp_path):
    (line,) = problems(
        tmp_path, VALID + '[sweep]\nparameter = "workload.subscribers"\nvalues = [1, 2]\n'
    )
    assert 'sweep.parameter = "workload.subscribers": not a setting of a request_response' in line
    assert "sweepable here: load.concurrency" in line
    (line,) = problems(
        tmp_path, VALID + '[sweep]\nparameter = "load.rate_per_s"\nvalues = [10, 20]\n'
    )
    assert 'sweep.parameter = "load.rate_per_s": not a setting of load.model = "closed"' in line


def test_completeness_is_refused_for_request_response(tmp_path):
    lines = problems(
        tmp_path,
        VALID + "[thresholds]\nmin_completeness = 0.9\n[thresholds.patterns.rest]\n"
        'min_completeness = 0.5\n[report]\nheadline = "completeness"\n',
    )
    assert len(lines) == 3
    assert "thresholds.min_completeness = 0.9: only a push workload counts" in lines[0]
    assert "thresholds.patterns.rest.min_completeness = 0.5: only a push" in lines[1]
    assert 'report.headline = "completeness": only a push workload counts' in lines[2]


def test_report_at_must_be_one_of_the_sweep_values(tmp_path):
    sweep = '[sweep]\nparameter = "load.concurrency"\nvalues = [1, 32]\n'
    (line,) = problems(tmp_path, VALID + sweep + "[report]\nat = 16\n")
    assert "report.at = 16: not one of sweep.values (1, 32)" in line
    (line,) = problems(tmp_path, VALID + "[report]\nat = 16\n")
    assert "report.at = 16: picks a sweep value to rank at, and this file has no [sweep]" in line
    assert (
        load_scenario(write(tmp_path, VALID + sweep + "[report]\nat = 32\n")).scenario.report.at
        == 32
    )


def test_every_rule_over_several_settings_is_reported_at_once(tmp_path):
    lines = problems(tmp_path, PUSH + "away_s = 1\n[payload]\nusers = 5\n[load]\nconcurrency = 2\n")
    assert len(lines) == 3


# A variant's fixed options ---------------------------------------------------------------
def test_a_variants_fixed_option_cannot_be_set_otherwise(tmp_path):
    text = PUSH.replace('["sse"]', '["mqtt-qos0"]') + "[options.mqtt-qos0]\nqos = 1\n"
    (line,) = problems(tmp_path, text)
    assert line.endswith(
        "options.mqtt-qos0.qos = 1: mqtt-qos0 fixes qos = 0 (that is what makes it a "
        "variant); remove the line, or use mqtt-qos1"
    )
    text = VALID.replace('["rest"]', '["rest-no-keepalive"]')
    (line,) = problems(tmp_path, text + "[options.rest-no-keepalive]\nkeep_alive = true\n")
    assert "rest-no-keepalive fixes keep_alive = false" in line and line.endswith("or use rest")


def test_writing_a_variants_fixed_value_itself_is_allowed(tmp_path):
    text = VALID.replace('["rest"]', '["rest-no-keepalive"]')
    loaded = load_scenario(
        write(tmp_path, text + "[options.rest-no-keepalive]\nkeep_alive = false\n")
    )
    assert loaded.options["rest-no-keepalive"].keep_alive is False


def test_pattern_options_are_strict_too(tmp_path):
    text = VALID.replace('["rest"]', '["rest", "grpc"]')
    lines = problems(
        tmp_path,
        text + '[options.rest]\nkeep_alive = 1\n[options.grpc]\nstreams_per_connection = "8"\n',
    )
    assert any("options.rest.keep_alive = 1: must be true or false" in line for line in lines)
    assert any(
        'options.grpc.streams_per_connection = "8": must be a whole' in line for line in lines
    )


# Messages speak the file's language ------------------------------------------------------
REALISTIC_TYPOS = [
    '[workload]\nkind = "pushh"',
    '[workload]\nkind = ["push"]',
    "workload = 5",
    "load = 5",
    "[[load]]\nconcurrency = 1",
    '[workload]\nkind = "push"\nrate_per_s = "10"\nsubscribers = 1\nsubscriber = 2',
    '[workload]\nkind = "push"',
    "[workload]\nmix = { get_usr = 1.0 }",
    '[report]\nat = "x"',
    '[sweep]\nparameter = "load.concurrency"\nvalues = ["a", true]',
    "[thresholds.patterns.rest]\nmax_p99 = 1",
    "[options]\nrest = 5",
    '[load]\nmodel = "closed"\nconcurrency = 4\narrival = "poisson"',
]


@pytest.mark.parametrize("typo", REALISTIC_TYPOS)
def test_no_message_names_pydantic_internals(tmp_path, typo):
    text = 'title = "t"\npatterns = ["rest"]\n' + typo + "\n"
    if "[load]" not in typo and "load =" not in typo:
        text += "[load]\nconcurrency = 4\n"
    for line in problems(tmp_path, text):
        for internal in (
            "function-after",
            "Input tag",
            "_workload_kind",
            "discriminator",
            "request_response.",
            "push.",
            "instance of",
            "[key]",
            ".int",
            ".float",
            "dictionary",
            "'",
        ):
            assert internal not in line, line


def test_a_misspelt_workload_kind_lists_the_kinds(tmp_path):
    (line,) = problems(tmp_path, VALID + '[workload]\nkind = "pushh"\n')
    assert line.endswith(
        'workload.kind = "pushh": must be one of: "request_response", "push", "cold_start"'
    )


def test_a_value_where_a_table_goes_says_a_table_is_needed(tmp_path):
    (line,) = problems(tmp_path, 'title = "t"\npatterns = ["rest"]\nload = 5\n')
    assert line.endswith("load = 5: must be a table: a [section] or { key = value }")
