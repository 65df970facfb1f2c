"""Workload kinds as strategies: the core asks a run's kind, never branches on its name;
what crosses a process boundary (generator messages, control messages) is typed; where a
process runs is one placement."""

from __future__ import annotations

import io
import json
import re
import tokenize
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.charts import CHARTS
from bench.engine import LoadPlan
from bench.kinds import DEFAULT_KIND, KINDS, kind_for, kind_for_plan, kind_named, kind_of
from bench.kinds.push import publish_plan
from bench.push import PushPlan
from bench.registry import PATTERNS
from bench.resources import ANYWHERE, Place, Placement, ServerUsage, plan_placement
from bench.runner import point_config
from bench.scenario import load_scenario
from bench.trials import Window
from common.events import PublicationTally, PublishPlan, TallyRequest, parse_control

PROJECT = Path(__file__).resolve().parent.parent
# The schemas name the kinds: the scenario's workload tables are tagged with them, and
# results.json stores them (and reads a file that predates them as request/response);
# entries name the kind they serve (pattern.py holds those names); claims are about named
# results.
MAY_NAME_KINDS = {
    PROJECT / "bench" / name
    for name in ("pattern.py", "registry.py", "scenario.py", "results_model.py", "claims.py")
}
KIND_NAME = re.compile(r"\b(PUSH|REQUEST_RESPONSE|is_push)\b")


def scenario(tmp_path: Path, text: str):
    path = tmp_path / "s.toml"
    path.write_text('title = "t"\n' + text)
    return load_scenario(path)


PUSH_SCENARIO = """
patterns = ["sse"]
[workload]
kind = "push"
rate_per_s = 100
subscribers = 5
drain_s = 0.5
[load]
generators = 2
"""
RR_SCENARIO = """
patterns = ["rest"]
[load]
model = "open"
rate_per_s = 900
connections = 5
generators = 2
"""


def kind_tests(path: Path) -> list[str]:
    """Lines of `path`'s code (not its prose) that test a workload kind by its name."""
    found = []
    lines = path.read_text().splitlines()
    for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        named = (token.type == tokenize.STRING and token.string.strip("\"'") in KINDS) or (
            token.type == tokenize.NAME and KIND_NAME.fullmatch(token.string)
        )
        if named:
            found.append(f"{path.name}:{token.start[0]}: {lines[token.start[0] - 1].strip()}")
    return found


def test_the_core_outside_the_kinds_never_names_a_kind():
    core = [
        path
        for path in (PROJECT / "bench").rglob("*.py")
        if "kinds" not in path.parts and path not in MAY_NAME_KINDS
    ]
    assert core
    assert [line for path in sorted(core) for line in kind_tests(path)] == []


def test_every_pattern_serves_a_known_kind_and_every_kind_has_patterns():
    for pattern in PATTERNS.values():
        assert kind_named(pattern.kind).serves(pattern)
    for kind in KINDS.values():
        assert any(kind.serves(pattern) for pattern in PATTERNS.values()), kind.name
    with pytest.raises(KeyError, match="known: request_response, push"):
        kind_named("queue")


def test_a_run_without_a_recorded_kind_reads_as_request_response():
    assert kind_of({"run": {}}).name == DEFAULT_KIND == "request_response"
    assert kind_of({"run": {"workload": "push"}}).name == "push"


def test_each_kind_names_only_charts_that_exist_and_headlines_among_its_own():
    for kind in KINDS.values():
        assert set(kind.charts) <= set(CHARTS), kind.name
        assert set(kind.headline_charts) <= set(kind.charts), kind.name


def test_push_splits_subscribers_across_generators_with_global_ids(tmp_path):
    loaded = scenario(tmp_path, PUSH_SCENARIO)
    point = loaded.points[0].scenario
    placement = Placement(Place((1,)), Place((0,)), "test")
    kind = kind_for(point)
    jobs = kind.generator_jobs(
        PATTERNS["sse"], point, point.timing, placement, loaded.options["sse"]
    )
    assert [job.plan.subscribers for job in jobs] == [3, 2]
    assert [job.plan.first_subscriber for job in jobs] == [0, 3]
    assert all(job.place == Place((0,)) for job in jobs)
    assert all(kind_for_plan(job.plan) is kind for job in jobs)
    assert {job.plan.drain_s for job in jobs} == {0.5}


def test_polling_raises_the_drain_to_its_interval(tmp_path):
    text = PUSH_SCENARIO.replace('["sse"]', '["short-polling"]')
    loaded = scenario(tmp_path, text + "[options.short-polling]\ninterval_s = 1.0\n")
    point = loaded.points[0].scenario
    options = loaded.options["short-polling"]
    (job, _) = kind_for(point).generator_jobs(
        PATTERNS["short-polling"], point, point.timing, plan_placement(False), options
    )
    assert job.plan.drain_s == options.min_drain_s() == 2.0  # two intervals, not 0.5


@pytest.mark.parametrize(
    ("options", "early"),
    [
        ("", True),
        ("receiver_lost_acks = 1\n", False),
        ("receiver_failure_rate = 0.2\n", False),
        ("forged_per_s = 5.0\n", False),
    ],
)
def test_the_drain_ends_early_only_where_nothing_is_injected_to_come_after(
    tmp_path, options, early
):
    text = PUSH_SCENARIO.replace('["sse"]', '["webhooks"]')
    loaded = scenario(tmp_path, text + "[options.webhooks]\n" + options)
    point = loaded.points[0].scenario
    jobs = kind_for(point).generator_jobs(
        PATTERNS["webhooks"], point, point.timing, plan_placement(False), loaded.options["webhooks"]
    )
    assert {job.plan.drain_until_complete for job in jobs} == {early}


def test_request_response_splits_connections_and_the_open_loop_rate(tmp_path):
    loaded = scenario(tmp_path, RR_SCENARIO)
    point = loaded.points[0].scenario
    jobs = kind_for(point).generator_jobs(
        PATTERNS["rest"], point, point.timing, plan_placement(False), loaded.options["rest"]
    )
    assert [job.plan.slots for job in jobs] == [3, 2]
    assert [job.plan.rate_per_s for job in jobs] == [450, 450]
    assert [job.plan.phase for job in jobs] == [0, 0.5]
    assert all(isinstance(job.plan, LoadPlan) and job.place == ANYWHERE for job in jobs)


def test_each_kind_records_its_own_point_settings(tmp_path):
    push = scenario(tmp_path, PUSH_SCENARIO)
    config = point_config(push.scenario, push.scenario.timing, push.options["sse"])
    assert config["model"] == "push"
    assert (config["subscribers"], config["generators"], config["rate_per_s"]) == (5, 2, 100)
    assert "concurrency" not in config
    rr = scenario(tmp_path, RR_SCENARIO)
    config = point_config(rr.scenario, rr.scenario.timing, rr.options["rest"])
    assert (config["model"], config["arrival"], config["connections"]) == ("open", "constant", 5)
    assert config["users"] == 1000 and "subscribers" not in config


def test_kinds_are_found_by_the_plan_a_generator_drives():
    assert kind_for_plan(LoadPlan("closed", 1, 0, 1)).name == "request_response"
    assert kind_for_plan(PushPlan(1, 0, 0, 1, 0, 10)).name == "push"
    with pytest.raises(TypeError):
        kind_for_plan(object())


def test_only_a_kind_that_counts_deliveries_takes_a_completeness_limit(tmp_path):
    text = RR_SCENARIO + "[thresholds]\nmin_completeness = 0.9\n"
    path = tmp_path / "rr.toml"
    path.write_text('title = "t"\n' + text)
    with pytest.raises(Exception, match="only a push workload counts delivered events"):
        load_scenario(path)


def test_the_publish_plan_travels_as_the_json_line_servers_have_always_read():
    plan = PublishPlan(start_ns=5, rate_per_s=10.0, warmup_s=0.5, duration_s=2.0)
    line = json.dumps(plan.to_dict())
    assert json.loads(line) == {
        "start_ns": 5,
        "rate_per_s": 10.0,
        "arrival": "constant",
        "warmup_s": 0.5,
        "duration_s": 2.0,
    }
    assert parse_control(line) == plan
    # What tests and older runners send: no arrival means a constant one.
    assert parse_control('{"start_ns": 1, "rate_per_s": 2, "warmup_s": 0, "duration_s": 1}') == (
        PublishPlan(1, 2.0, 0.0, 1.0)
    )
    request = TallyRequest("/tmp/x.tally")
    assert parse_control(json.dumps(request.to_dict())) == request


def test_a_publication_tally_reads_back_what_the_publisher_wrote_and_says_none_if_missing():
    tally = PublicationTally(120, 11, 99, {"p50_us": 5.0}, {"retries": 3})
    assert PublicationTally.from_dict(json.loads(json.dumps(tally.to_dict()))) == tally
    # A publisher that published nothing in its window says so with nulls, not zeros.
    assert PublicationTally.from_dict({"counters": {}}).published is None


@pytest.mark.parametrize("line", ["[1, 2]", "{}", '{"start_ns": 1}', "not json"])
def test_a_control_line_that_is_no_message_is_refused(line):
    with pytest.raises((ValueError, KeyError, TypeError)):
        parse_control(line)


def test_a_placement_keeps_servers_and_generators_apart_and_reads_back_as_before():
    placement = plan_placement(True)
    if placement.servers.pinned:
        assert not set(placement.server_cpus) & set(placement.generator_cpus)
    assert list(placement.to_dict()) == ["server_cpus", "generator_cpus", "note"]
    assert plan_placement(False).to_dict() == {
        "server_cpus": None,
        "generator_cpus": None,
        "note": "not pinned: the scenario sets load.pin_cpus = false",
    }
    assert Place((3, 4)).cpu_count() == 2
    assert ANYWHERE.cpu_count() >= 1


def test_the_publisher_is_told_the_schedule_its_subscribers_check_against(tmp_path):
    loaded = scenario(tmp_path, PUSH_SCENARIO.replace("drain_s", 'arrival = "poisson"\ndrain_s'))
    point = loaded.points[0].scenario
    (job, _) = kind_for(point).generator_jobs(
        PATTERNS["sse"], point, point.timing, plan_placement(False), loaded.options["sse"]
    )
    told = publish_plan(job.plan, start_ns=7)
    assert told == PublishPlan(7, 100.0, point.timing.warmup_s, point.timing.duration_s, "poisson")


def _session(tmp_path: Path, text: str, pattern: str, failure: str | None):
    """Just what a kind's measurement reads of a trial whose processes ran (or died)."""
    loaded = scenario(tmp_path, text)
    servers = SimpleNamespace(failure=lambda: failure, controller=None)
    return SimpleNamespace(
        pattern=PATTERNS[pattern],
        scenario=loaded.scenario,
        timing=loaded.scenario.timing,
        options=loaded.options[pattern],
        repeat=2,
        name="00-x-r2",
        logs=tmp_path,
        servers=servers,
        cpus_held=lambda: {"generator_cpus": 1, "server_cpus": 1},
    )


def test_a_trial_whose_server_died_in_the_window_is_failed_with_the_servers_reason(tmp_path):
    session = _session(tmp_path, RR_SCENARIO, "rest", "rest server exited with code -9")
    measurement = kind_for(session.scenario).measurement(session)
    trial = measurement.trial([], Window(False, ServerUsage(0.0, 0), 0))
    assert (trial.status, trial.error, trial.repeat) == (
        "failed",
        "rest server exited with code -9",
        2,
    )
    assert measurement.collect_grace_s == session.scenario.load.timeout_s


def test_a_push_trial_without_the_publishers_tally_is_failed_and_says_so(tmp_path):
    session = _session(tmp_path, PUSH_SCENARIO, "sse", None)
    measurement = kind_for(session.scenario).measurement(session)
    measurement.started_ns = 0  # as on_start would have set it
    trial = measurement.trial([], Window(True, ServerUsage(0.0, 0), 0))
    assert trial.status == "failed"
    assert trial.error == "sse: the server wrote no publication tally"
    assert measurement.collect_grace_s == 0.5  # the drain
    interrupted = measurement.interrupted_trial([], "Ctrl-C")
    assert (interrupted.status, interrupted.error) == ("interrupted", "Ctrl-C")
