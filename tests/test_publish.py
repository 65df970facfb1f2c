"""Publishing and comparing, on small stored runs (tests/data/runs): no measurement here."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pytest

from bench.charts import rank
from bench.claims import FAILS, HOLDS, NOT_MEASURED, check_claims, load_claims
from bench.results import load_run
from bench.thresholds import breaches
from tests.conftest import run_bench

DATA = Path(__file__).parent / "data" / "runs"
BEFORE_RR = DATA / "before" / "20261123T195220Z-rr-concurrency"
BEFORE_PUSH = DATA / "before" / "20261123T195234Z-push-fanout"
AFTER_RR = DATA / "after" / "20261123T195252Z-rr-concurrency"


@pytest.fixture
def runs(tmp_path):
    """Copies of the stored runs, so that tests can change them."""
    target = tmp_path / "stored"
    shutil.copytree(DATA, target)
    return target


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
    # One file that opens offline: every chart is inside it, nothing is fetched.
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == 1 + 5 + 5  # the overview, then five charts per run
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<script" not in page
    # The Markdown summary points at chart files that exist.
    markdown = (out / "README.md").read_text()
    pictures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", markdown)
    assert "charts/overview.png" in pictures
    assert pictures and all((out / picture).is_file() for picture in pictures)
    # The sources travel with the report, so it can be regenerated.
    assert (out / "runs" / BEFORE_RR.name / "results.json").is_file()
    for claim in load_claims()["claims"]:
        assert f"| {claim['id']} |" in markdown
        assert f">{claim['id']}<" in page


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


def test_adopting_a_newer_run_of_a_scenario_replaces_the_older_one(runs, tmp_path):
    out = tmp_path / "published"
    run_bench("publish", "--out", str(out), str(runs / "before" / BEFORE_RR.name))
    run_bench("publish", "--out", str(out), str(runs / "after" / AFTER_RR.name))
    assert sorted(p.name for p in (out / "runs").iterdir()) == [AFTER_RR.name]


def test_publish_without_runs_says_what_to_do(tmp_path):
    completed = run_bench("publish", "--out", str(tmp_path / "empty"))
    assert completed.returncode == 2
    assert "bench publish --latest" in completed.stderr and "Traceback" not in completed.stderr


def test_claims_get_one_of_three_verdicts_with_the_machine_they_were_measured_on():
    documents = {load_run(d)["run"]["scenario"]: load_run(d) for d in (BEFORE_RR, BEFORE_PUSH)}
    results = check_claims(documents)
    assert [r.id for r in results] == [c["id"] for c in load_claims()["claims"]]
    assert {r.verdict for r in results} <= {HOLDS, FAILS, NOT_MEASURED}
    by_id = {r.id: r for r in results}
    assert by_id["T2"].verdict in (HOLDS, FAILS)  # rr-concurrency is there: it is measured
    assert "Xeon" in by_id["T2"].measured_on or by_id["T2"].measured_on
    assert by_id["W2"].verdict == NOT_MEASURED  # push-faults is not among these runs
    assert by_id["P4"].verdict == NOT_MEASURED


def _with_throughput(document: dict, pattern: str, label: str, factor: float) -> dict:
    changed = copy.deepcopy(document)
    for point in changed["points"]:
        if point["pattern"] == pattern and point["label"] == label:
            for key in ("median", "min", "max"):
                point["summary"]["throughput_per_s"][key] *= factor
    return changed


def test_the_grpc_speed_claim_holds_only_when_the_ratio_is_there():
    document = load_run(BEFORE_RR)
    rest = next(
        p for p in document["points"] if p["pattern"] == "rest" and p["label"] == "concurrency=32"
    )["summary"]["throughput_per_s"]["median"]
    grpc = next(
        p for p in document["points"] if p["pattern"] == "grpc" and p["label"] == "concurrency=32"
    )["summary"]["throughput_per_s"]["median"]
    fast = _with_throughput(document, "grpc", "concurrency=32", 8 * rest / grpc)
    slow = _with_throughput(document, "grpc", "concurrency=32", 2 * rest / grpc)
    assert {r.id: r for r in check_claims({"rr-concurrency": fast})}["T2"].verdict == HOLDS
    assert {r.id: r for r in check_claims({"rr-concurrency": slow})}["T2"].verdict == FAILS


def _point(pattern: str, median: float, low: float, high: float) -> dict:
    return {
        "pattern": pattern,
        "pattern_label": pattern,
        "label": "",
        "sweep_value": None,
        "sweep_parameter": None,
        "config": {"model": "closed"},
        "status": "ok",
        "summary": {"throughput_per_s": {"median": median, "min": low, "max": high}},
    }


def test_ranking_ties_patterns_whose_repeats_overlap():
    document = {
        "run": {"workload": "request_response", "report": {}},
        "points": [
            _point("a", 100, 95, 105),
            _point("b", 98, 90, 101),
            _point("c", 50, 45, 55),
            _point("d", 200, 190, 210),
        ],
    }
    field, _, ranked = rank(document)
    assert field == "throughput_per_s"
    assert [(r.pattern, r.rank, r.tied) for r in ranked] == [
        ("d", 1, False),
        ("a", 2, True),
        ("b", 2, True),
        ("c", 4, False),
    ]


def test_compare_reports_changes_with_their_significance(runs):
    completed = run_bench(
        "compare", str(runs / "before" / BEFORE_RR.name), str(runs / "before" / BEFORE_RR.name)
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert "Welch" in lines[0]
    rows = [line for line in lines[2:] if line.strip()]
    assert len(rows) == 2 * 3 * 3  # points x patterns x (throughput, p50, p99)
    assert all(row.rstrip().endswith("within noise") for row in rows)  # a run against itself


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
