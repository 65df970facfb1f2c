"""Publishing, ranking, claims and comparing, on small stored runs (tests/data/runs): no
measurement here, only the rules that turn measurements into verdicts and orders."""

from __future__ import annotations

import copy
import json
import re
import shutil
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from bench.claims import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NOT_MEASURABLE,
    NOT_MEASURED,
    SET_BY_SCENARIO,
    Runs,
    check_claims,
    claims_hash,
    judge_conditions,
    load_claims,
)
from bench.compare import _p_value, compare, holm
from bench.ranking import order, rank, rank_runs
from bench.results import load_run
from bench.results_model import RunDocument
from bench.thresholds import breaches
from tests.conftest import run_bench

DATA = Path(__file__).parent / "data" / "runs"
BEFORE_RR = next((DATA / "before").glob("*-rr-concurrency"))
BEFORE_PUSH = next((DATA / "before").glob("*-push-fanout"))
AFTER_RR = next((DATA / "after").glob("*-rr-concurrency"))


@pytest.fixture
def runs(tmp_path):
    """Copies of the stored runs, so that tests can change them."""
    target = tmp_path / "stored"
    shutil.copytree(DATA, target)
    return target


@pytest.mark.e2e
def test_publish_builds_offline_html_and_markdown_from_stored_results(runs, tmp_path):
    out = tmp_path / "published"
    completed = run_bench(
        "publish",
        "--out",
        str(out),
        str(runs / "before" / BEFORE_RR.name),
        str(runs / "before" / BEFORE_PUSH.name),
    )
    assert completed.returncode == 0, completed.stderr
    page = (out / "report.html").read_text()
    # Opens offline: the overview and each run's headline charts are inside it, the
    # others are chart files beside it, and nothing is fetched.
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == 1 + 2 + 2  # the overview, then two headline charts per run
    assert all(src.startswith("data:image/png;base64,") for src in images)
    linked = re.findall(r'<a href="(charts/[^"]+)"', page)
    assert len(linked) == 3 + 3 and all((out / link).is_file() for link in linked)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<script" not in page
    # The Markdown summary points at chart files that exist.
    markdown = (out / "README.md").read_text()
    pictures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", markdown)
    assert "charts/overview.png" in pictures
    assert pictures and all((out / picture).is_file() for picture in pictures)
    # The sources travel with the report, so it can be regenerated.
    assert (out / "runs" / BEFORE_RR.name / "results.json").is_file()
    # Every claim is listed with its rule, and the rules' hash is printed beside them.
    for claim in load_claims()["claims"]:
        assert f"| {claim['id']} |" in markdown
        assert f">{claim['id']}<" in page
    assert f"sha256 {claims_hash()[:16]}" in markdown
    # No percentile the samples do not support is shown as a number.
    assert "n/a (" in markdown


@pytest.mark.e2e
def test_make_publish_regenerates_the_same_report_from_the_stored_runs(runs, tmp_path):
    out = tmp_path / "published"
    assert (
        run_bench("publish", "--out", str(out), str(runs / "before" / BEFORE_RR.name)).returncode
        == 0
    )
    first = (out / "README.md").read_text()
    (out / "README.md").unlink()
    shutil.rmtree(out / "charts")
    again = run_bench("publish", "--out", str(out))  # what `make publish` runs
    assert again.returncode == 0, again.stderr
    assert (out / "README.md").read_text() == first
    assert (out / "charts" / "overview.png").is_file()


@pytest.mark.e2e
def test_adopting_newer_runs_of_a_scenario_replaces_the_older_ones(runs, tmp_path):
    out = tmp_path / "published"
    run_bench("publish", "--out", str(out), str(runs / "before" / BEFORE_RR.name))
    run_bench("publish", "--out", str(out), str(runs / "after" / AFTER_RR.name))
    assert sorted(p.name for p in (out / "runs").iterdir()) == [AFTER_RR.name]
    # Two runs of one scenario adopted together are both kept: replicates.
    both = [str(runs / "before" / BEFORE_RR.name), str(runs / "after" / AFTER_RR.name)]
    completed = run_bench("publish", "--out", str(out), *both)
    assert completed.returncode == 0, completed.stderr
    assert len(list((out / "runs").iterdir())) == 2
    assert "the order 2 independent runs agree on" in (out / "README.md").read_text()


@pytest.mark.e2e
def test_publish_without_runs_says_what_to_do(tmp_path):
    completed = run_bench("publish", "--out", str(tmp_path / "empty"))
    assert completed.returncode == 2
    assert "bench publish --latest" in completed.stderr and "Traceback" not in completed.stderr


# Claims -----------------------------------------------------------------------------------
VERDICTS = {HOLDS, FAILS, INCONCLUSIVE, SET_BY_SCENARIO, NOT_MEASURABLE, NOT_MEASURED}


def test_every_claim_gets_a_verdict_and_its_rule():
    documents = {load_run(d)["run"]["scenario"]: load_run(d) for d in (BEFORE_RR, BEFORE_PUSH)}
    results = check_claims(documents)
    assert [r.id for r in results] == [c["id"] for c in load_claims()["claims"]]
    assert {r.verdict for r in results} <= VERDICTS
    by_id = {r.id: r for r in results}
    assert by_id["T2"].verdict in (HOLDS, FAILS, INCONCLUSIVE)  # rr-concurrency is there
    assert by_id["T2"].measured_on
    assert ">= 7" in by_id["T2"].rule
    assert by_id["W2"].verdict == NOT_MEASURED  # push-faults is not among these runs
    # L1 and L2 are judged over the wan path only: loopback runs never decide them.
    assert by_id["L1"].verdict == NOT_MEASURED and "rr-wan" in by_id["L1"].measured
    assert by_id["L2"].verdict == NOT_MEASURED
    assert by_id["P4"].verdict == NOT_MEASURABLE


def _scaled(document: dict, pattern: str, label: str, factor: float, bound: bool = False):
    """A copy with one point's throughput scaled in every trial (what the rules read)."""
    changed = copy.deepcopy(document)
    for point in changed["points"]:
        if point["pattern"] == pattern and point["label"] == label:
            for trial in point["trials"]:
                trial["requests"] = round(trial["requests"] * factor)
                trial["client_bound"] = bound
            point["summary"]["client_bound"] = bound
        elif point["label"] == label:
            point["summary"]["client_bound"] = False
            for trial in point["trials"]:
                trial["client_bound"] = False
    return changed


def _rate(document: dict, pattern: str, label: str) -> float:
    point = next(p for p in document["points"] if p["pattern"] == pattern and p["label"] == label)
    return sum(t["requests"] for t in point["trials"]) / sum(
        t["measured_s"] for t in point["trials"]
    )


def _t2(document: dict) -> str:
    return {r.id: r for r in check_claims({"rr-concurrency": document})}["T2"].verdict


def test_the_grpc_speed_claim_holds_only_when_every_repeat_shows_the_ratio():
    document = load_run(BEFORE_RR)
    label = "concurrency=32"
    ratio = _rate(document, "grpc", label) / _rate(document, "rest", label)
    assert _t2(_scaled(document, "grpc", label, 9 / ratio)) == HOLDS
    assert _t2(_scaled(document, "grpc", label, 2 / ratio)) == FAILS


def test_a_generator_bound_figure_cannot_fail_a_claim_it_might_meet():
    document = load_run(BEFORE_RR)
    label = "concurrency=32"
    ratio = _rate(document, "grpc", label) / _rate(document, "rest", label)
    # gRPC's throughput is only a lower bound: at 2x it might still be 7x, so no verdict...
    assert _t2(_scaled(document, "grpc", label, 2 / ratio, bound=True)) == INCONCLUSIVE
    # ...but a lower bound already at 9x proves the claim.
    assert _t2(_scaled(document, "grpc", label, 9 / ratio, bound=True)) == HOLDS


def test_a_claim_the_scenario_settles_is_reported_as_set_by_the_scenario():
    runs = Runs({"rr-concurrency": [load_run(BEFORE_RR)]})
    select = {"scenario": "rr-concurrency", "pattern": "rest", "at": 1}
    rule = {
        "conditions": [
            {"select": select, "metric": "throughput_per_s", "op": ">", "value": 0, "set_by": "x"}
        ]
    }
    assert judge_conditions(runs, rule).verdict == SET_BY_SCENARIO
    rule["conditions"][0].pop("set_by")
    assert judge_conditions(runs, rule).verdict == HOLDS


def test_a_bound_decides_a_condition_only_where_it_can():
    from bench.claims import _compare

    assert _compare(5, "<", 10, "") is True and _compare(15, "<", 10, "") is False
    # At least 15 is more than 10; "at least 5" may or may not be.
    assert _compare(15, ">", 10, "at_least") is True
    assert _compare(5, ">", 10, "at_least") is None
    assert _compare(15, "<", 10, "at_least") is False
    assert _compare(5, "==", 10, "at_least") is None
    assert _compare(15, "==", 10, "at_least") is False
    assert _compare(5, "<", 10, "at_most") is True and _compare(15, "<", 10, "at_most") is None
    # A latency the generator may have added up to 5 to: 12 could be 7.
    assert _compare(12, "<", 10, "", slack=5) is None
    assert _compare(12, "<", 10, "", slack=1) is False


def test_changing_a_rule_changes_the_claims_hash():
    text = resources.files("bench").joinpath("claims.toml").read_text()
    assert claims_hash(text.encode()) == claims_hash()
    changed = text.replace("at_least = 7.0", "at_least = 6.0", 1)
    assert changed != text
    assert claims_hash(changed.encode()) != claims_hash()


def test_every_rule_names_points_and_figures_the_judge_knows():
    table = tomllib.loads(resources.files("bench").joinpath("claims.toml").read_text())
    scenarios = {path.stem for path in (Path(__file__).parent.parent / "scenarios").glob("*.toml")}
    for claim in table["claims"]:
        text = json.dumps(claim["rule"])
        for name in re.findall(r'"scenario": "([^"]+)"', text):
            assert name in scenarios, (claim["id"], name)


# Ranking ----------------------------------------------------------------------------------
def _point(pattern: str, value: float, low: float, high: float, **summary) -> dict:
    """A point as results.json holds it, with only what ranking reads filled in."""
    return {
        "point": 0,
        "pattern": pattern,
        "pattern_label": pattern,
        "label": "",
        "sweep_value": None,
        "sweep_parameter": None,
        "config": {"model": "closed"},
        "status": "ok",
        "trials": [],
        "summary": {"throughput_per_s": {"value": value, "min": low, "max": high}, **summary},
    }


def _document(*points: dict, headline: str | None = None) -> RunDocument:
    return RunDocument.model_validate(
        {
            "schema_version": 2,
            "run": {
                "id": "run",
                "scenario": "ranked",
                "title": "ranked",
                "status": "complete",
                "workload": "request_response",
                "report": {"headline": headline},
            },
            "environment": {},
            "points": list(points),
        }
    )


def _placed(ranked) -> list[tuple]:
    return [(r.entry.pattern, r.rank, r.tied) for r in ranked]


def test_a_rank_counts_only_the_points_clearly_ahead_never_a_chain():
    # b overlaps a; c overlaps b but not a: only a is clearly ahead of c.
    document = _document(
        _point("a", 100, 95, 105), _point("b", 92, 88, 96), _point("c", 85, 80, 89)
    )
    _, _, ranked = rank(document)
    assert _placed(ranked) == [("a", 1, True), ("b", 1, True), ("c", 2, False)]
    # The pooled order is never contradicted by the ranks' order: c, better than b here,
    # is not put behind it for want of a leader to tie with.
    document = _document(
        _point("lead", 100, 98, 102), _point("wide", 80, 60, 99), _point("tight", 90, 88, 92)
    )
    _, _, ranked = rank(document)
    assert _placed(ranked) == [("lead", 1, True), ("wide", 1, True), ("tight", 2, False)]


def test_a_generator_bound_point_is_a_bound_never_a_rank_and_no_one_wins_past_it():
    bound = _point("fast", 500, 490, 510, client_bound=True, client_bound_reasons=["busy"])
    _, _, ranked = rank(_document(_point("a", 100, 95, 105), bound))
    # At least 490 is clearly ahead of a: a is second, the bound itself has no rank.
    assert _placed(ranked) == [("fast", None, False), ("a", 2, False)]
    assert ranked[0].entry.text("throughput_per_s") == ">= 500"
    # A bound that overlaps the best point keeps that point from winning outright.
    close = _point("close", 100, 99, 101, client_bound=True, client_bound_reasons=["busy"])
    _, _, ranked = rank(_document(_point("a", 100, 95, 105), close))
    assert _placed(ranked) == [("a", 1, True), ("close", None, True)]
    # And a bound below everyone cannot lose: "at least 50" may be anything above.
    low = _point("low", 50, 49, 51, client_bound=True, client_bound_reasons=["busy"])
    _, _, ranked = rank(_document(_point("a", 100, 95, 105), low))
    assert _placed(ranked) == [("a", 1, True), ("low", None, True)]


def test_ablation_variants_and_partial_points_are_shown_not_ranked():
    variant = {**_point("rest-no-keepalive", 900, 890, 910), "ablation": "keep-alive"}
    partial = {**_point("flaky", 800, 790, 810), "status": "partial"}
    _, _, ranked = rank(_document(_point("a", 100, 95, 105), variant, partial))
    assert _placed(ranked)[0] == ("a", 1, False)
    assert {r.entry.pattern: r.rank for r in ranked[1:]} == {
        "rest-no-keepalive": None,
        "flaky": None,
    }
    assert "ablation" in ranked[1].entry.excluded


def _latency_point(pattern: str, p99_us: int | None, count: int, lossy: bool = False) -> dict:
    latency = {
        "count": count,
        "censored": 0,
        "p99_us": p99_us,
        "spread": {"p99_us": [p99_us, p99_us] if p99_us else None},
        "lower_bound": [],
    }
    return _point(pattern, 1, 1, 1, latency_us=latency, lossy=lossy)


def test_unsupported_percentiles_are_not_ranked_and_losses_rank_last_on_latency():
    document = _document(
        _latency_point("complete", 9_000, 5_000),
        _latency_point("lossy", 1_000, 5_000, lossy=True),  # faster, but it dropped events
        _latency_point("few", 500, 300),  # p99 from 300 samples: not a p99
        headline="p99_us",
    )
    _, _, ranked = rank(document)
    assert _placed(ranked) == [("complete", 1, False), ("lossy", 2, False), ("few", None, False)]
    assert "n/a (300 samples" in ranked[2].entry.excluded


def test_two_runs_that_disagree_on_an_order_show_a_tie():
    agree = [_point("a", 100, 99, 101), _point("b", 50, 49, 51)]
    disagree = [_point("a", 40, 39, 41), _point("b", 50, 49, 51)]
    _, _, same = rank_runs([_document(*agree), _document(*copy.deepcopy(agree))])
    assert _placed(same) == [("a", 1, False), ("b", 2, False)]
    _, _, mixed = rank_runs([_document(*agree), _document(*disagree)])
    assert [(r.rank, r.tied) for r in mixed] == [(1, True), (1, True)]
    assert order([], "throughput_per_s") == []


# Compare ----------------------------------------------------------------------------------
@pytest.mark.e2e
def test_compare_reports_changes_with_their_significance(runs):
    completed = run_bench(
        "compare", str(runs / "before" / BEFORE_RR.name), str(runs / "before" / BEFORE_RR.name)
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert "Welch" in lines[0] and "Holm" in lines[0]
    rows = [line for line in lines[1:] if line.startswith("concurrency=")]
    # A run against itself: nothing better or worse, whatever the noise.
    assert rows and not any(" better" in row or " worse" in row for row in rows)
    assert "rank the patterns alike" in completed.stdout


@pytest.mark.e2e
def test_compare_warns_about_differences_besides_the_code(runs):
    completed = run_bench(
        "compare", str(runs / "before" / BEFORE_RR.name), str(runs / "before" / BEFORE_PUSH.name)
    )
    assert completed.returncode == 2  # nothing in common to compare
    assert "share no pattern and point" in completed.stderr


def test_zero_spread_repeats_are_never_called_a_change():
    assert _p_value([5.0, 5.0, 5.0], [6.0, 6.0, 6.0]) == (None, "no spread")
    assert _p_value([5.0, 5.0], [5.0, 5.0]) == (None, "not resolved")
    before, after = load_run(BEFORE_RR), copy.deepcopy(load_run(BEFORE_RR))
    for point in before["points"] + after["points"]:
        for trial in point["trials"]:
            trial["throughput_per_s"] = 100.0
    for point in after["points"]:
        for trial in point["trials"]:
            trial["throughput_per_s"] = 101.0
    throughput = [c for c in compare(before, after) if c.metric == "throughput"]
    assert throughput and all(c.verdict == "no spread" for c in throughput)


def test_holm_correction_grows_with_the_number_of_comparisons():
    adjusted = holm([0.01, 0.04, None, 0.03])
    assert adjusted[2] is None
    assert adjusted[0] == pytest.approx(0.03)  # smallest of three, times three
    assert adjusted[3] == pytest.approx(0.06)  # never below the one before it
    assert adjusted[1] == pytest.approx(0.06)


@pytest.mark.e2e
def test_compare_exits_non_zero_when_the_later_run_breaks_a_threshold(runs):
    completed = run_bench(
        "compare", str(runs / "before" / BEFORE_RR.name), str(runs / "after" / AFTER_RR.name)
    )
    assert completed.returncode == 3
    assert "threshold broken: rest at concurrency=1: p99" in completed.stderr
    assert "> 0.001 ms" in completed.stderr


def test_thresholds_are_checked_per_pattern_with_overrides():
    document = load_run(AFTER_RR)
    document["run"]["thresholds"] = {
        "max_p99_ms": 1000.0,
        "patterns": {"grpc": {"min_throughput_per_s": 10**9}},
    }
    found = breaches(document)
    assert found and all(line.startswith("grpc at ") for line in found)
    assert all("/s < 1,000,000,000/s" in line for line in found)
    document["run"]["thresholds"] = {"max_errors": 0}
    assert breaches(document) == []


@pytest.mark.e2e
def test_bench_run_exits_non_zero_when_a_threshold_is_broken(tmp_path):
    scenario = tmp_path / "strict.toml"
    scenario.write_text(
        'title = "strict"\npatterns = ["rest"]\n[payload]\nusers = 20\n'
        '[load]\nmodel = "closed"\nconcurrency = 2\n'
        "[timing]\nwarmup_s = 0.1\nduration_s = 0.3\nrepeats = 1\n"
        "[thresholds]\nmax_p50_ms = 0.0001\n"
    )
    completed = run_bench("run", "--results-dir", str(tmp_path / "results"), str(scenario))
    assert completed.returncode == 3, completed.stderr
    assert "threshold broken: rest: p50" in completed.stderr
    stored = json.loads((tmp_path / "results" / "latest" / "results.json").read_text())
    assert stored["run"]["thresholds"]["max_p50_ms"] == 0.0001


def test_generator_bound_reasons_of_several_trials_read_as_one_line_per_symptom():
    from bench.generator_bound import merged_reasons

    merged = merged_reasons(
        [
            ["its event loop woke 1.40 ms late (median)"],
            ["its event loop woke 1.47 ms late (median)", "generators used 99% of the 1 CPU"],
            [],
        ]
    )
    assert merged == [
        "its event loop woke 1.4 to 1.47 ms late (median), 2 of 3 trials",
        "generators used 99% of the 1 CPU, 1 of 3 trials",
    ]
