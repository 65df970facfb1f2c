"""A result is only as good as what it counts: a trial that measured nothing is never "ok",
a point pools only the trials that count and says which did not, and every reader of a
run (summary.csv, the end-of-run table, compare, thresholds, the CLI's exit code) sees
the same. Synthetic generator results and the small stored runs in tests/data: no
servers, no measurement."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench import cli, figures
from bench.charts.style import problems
from bench.compare import compare, differences, run_warnings
from bench.engine import GeneratorResult
from bench.metrics import (
    MAX_UNSENT_SHARE,
    TRIAL_STATUSES,
    build_push_trial,
    build_trial,
    failed_trial,
)
from bench.push import PushResult
from bench.resources import ServerUsage
from bench.results import (
    POINT_STATUSES,
    PointRecord,
    load_run,
    point_status,
    read_run,
    run_summary_table,
    write_summary_csv,
)
from bench.results_model import Point, Spread, Summary
from bench.scenario import Limits, ScenarioError, load_scenario
from bench.thresholds import _unsent_breach, breaches
from common.events import PublicationTally
from common.histogram import LatencyHistogram

PROJECT_DIR = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data" / "runs"
RR_RUN = next((DATA / "before").glob("*-rr-concurrency"))
PUSH_RUN = next((DATA / "before").glob("*-push-fanout"))


def _histogram(count: int, us: int = 500) -> str:
    histogram = LatencyHistogram()
    for _ in range(count):
        histogram.record_ns(us * 1000)
    return histogram.encode()


def _generator(
    ok: int, unsent: int = 0, errors: int = 0, open_loop: bool = True, send_lag_us: int = 10
) -> dict:
    """One request/response generator's result, as a generator process sends it back."""
    result = GeneratorResult(
        ok=ok,
        errors=errors,
        unsent=unsent,
        latency=_histogram(ok),
        censored=_histogram(unsent, 1_000_000),
        service_time=_histogram(ok) if open_loop else "",
        send_lag=_histogram(ok, send_lag_us) if open_loop else "",
        connection_wait=_histogram(ok, 1) if open_loop else "",
        measured_s=2.0,
        cpu_s=0.5,
        wire_sent=100 * ok,
        wire_received=1000 * ok,
        tcp_connections=4,
    )
    return result.to_dict()


def _subscriber(arrivals: list[int]) -> dict:
    """One push generator with one subscriber: arrivals per event sequence number."""
    return PushResult(counts=[bytes(arrivals)], measured_s=2.0, cpu_s=0.1).to_dict()


WINDOW = PublicationTally(first_seq_in_window=0, last_seq_in_window=99)


# No empty success ------------------------------------------------------------------------
def test_an_open_loop_trial_that_sent_nothing_is_invalid_not_ok():
    trial = build_trial(0, [_generator(ok=0, unsent=1234)], None, 600.0)
    assert trial.status == "invalid"
    assert "no validated answer in the measured window" in trial.error
    assert "0 of 1,234 requests due were sent" in trial.error


def test_a_closed_loop_trial_with_only_wrong_answers_is_invalid():
    trial = build_trial(0, [_generator(ok=0, errors=50, open_loop=False)], None, None)
    assert trial.status == "invalid"
    assert "none answered correctly (50 errors" in trial.error


def test_an_open_loop_trial_whose_generator_left_most_requests_unsent_is_invalid():
    assert MAX_UNSENT_SHARE == 0.5
    # The generator sent late with a connection free: it, not the server, held them back.
    late = _generator(ok=400, unsent=600, send_lag_us=5_000)
    mostly_unsent = build_trial(0, [late], None, 500.0)
    assert mostly_unsent.status == "invalid"
    assert "could not send 600 of the 1,000 requests due" in mostly_unsent.error
    assert "(60%, more than 50%) and was the limit (it sent requests" in mostly_unsent.error
    # The same share unsent because every connection was waiting on the server (a rate
    # past its capacity) is the measurement: kept, its latencies lower bounds.
    overloaded = build_trial(0, [_generator(ok=400, unsent=600)], None, 500.0)
    assert overloaded.status == "ok" and not overloaded.client_bound
    assert overloaded.latency_us["censored"] == 600
    assert "p50_us" in overloaded.latency_us["lower_bound"]
    # Below the limit the trial stands, its unsent requests counted into the latency.
    some_unsent = build_trial(0, [_generator(ok=600, unsent=400)], None, 500.0)
    assert some_unsent.status == "ok" and some_unsent.error is None
    assert some_unsent.latency_us["censored"] == 400


def test_a_push_trial_that_delivered_nothing_is_invalid():
    nothing = build_push_trial(0, [_subscriber([0] * 100)], WINDOW, None)
    assert nothing.status == "invalid"
    assert nothing.error == (
        "no event delivered in the measured window: 0 of 100 expected (100 events to 1 subscribers)"
    )
    some = build_push_trial(0, [_subscriber([1] * 40 + [0] * 60)], WINDOW, None)
    assert some.status == "ok" and some.delivery["completeness"] == 0.4


def test_a_trial_that_broke_stays_failed_and_one_interrupted_stays_interrupted():
    broken = build_trial(0, [_generator(ok=0, unsent=10)], None, 10.0, "failed", "server died")
    assert (broken.status, broken.error) == ("failed", "server died")
    stopped = build_push_trial(0, [_subscriber([0] * 100)], WINDOW, None, "interrupted", "Ctrl-C")
    assert stopped.status == "interrupted"


def test_a_point_is_partial_with_some_ok_trials_and_invalid_or_failed_without_any():
    assert point_status({"ok", "invalid"}) == "partial"
    assert point_status({"ok", "failed"}) == "partial"
    assert point_status({"invalid"}) == "invalid"
    assert point_status({"invalid", "failed"}) == "failed"  # the breakage is the news
    assert point_status({"ok", "invalid", "interrupted"}) == "interrupted"
    assert point_status({"ok"}) == "ok"


def _stored(tmp_path: Path, change) -> Path:
    """A copy of the stored request/response run, changed by `change(document)`."""
    run_dir = tmp_path / RR_RUN.name
    shutil.copytree(RR_RUN, run_dir)
    document = load_run(run_dir)
    change(document)
    (run_dir / "results.json").write_text(json.dumps(document))
    return run_dir


def test_the_runs_exit_check_fails_on_an_invalid_point(tmp_path, capsys):
    def invalidate(document):
        document["points"][0]["status"] = "invalid"
        document["points"][0]["error"] = "no validated answer in the measured window"

    assert cli._report_failures(_stored(tmp_path, invalidate))  # bench run exits 1
    assert "rest at concurrency=1: invalid: no validated answer" in capsys.readouterr().err


def _stored_point(**changes) -> Point:
    """The stored request/response run's first point (rest at concurrency=1), changed."""
    return read_run(RR_RUN).points[0].model_copy(update=changes)


def test_charts_mark_an_invalid_point_as_they_mark_a_failed_one():
    assert problems(_stored_point(status="invalid", summary=Summary())) == "invalid"
    assert problems(_stored_point(status="failed", summary=Summary())) == "failed"


# Partial points pool only the trials that count -----------------------------------------
def test_a_partial_points_figures_come_from_its_ok_trials_only():
    record = PointRecord(0, "", None, None, "rest", "REST", {})
    usage = ServerUsage(cpu_s=1.0, peak_rss_bytes=50_000_000)
    for repeat, ok in enumerate((1000, 3000)):
        record.add_trial(build_trial(repeat, [_generator(ok=ok)], usage, 1000.0))
    # A trial whose server died late: it answered plenty before, none of which may count.
    record.add_trial(
        build_trial(2, [_generator(ok=5000, errors=7)], usage, 1000.0, "failed", "rest died\nlog")
    )
    summary = record.summary
    assert record.status == "partial"
    assert (summary["trials_ok"], summary["trials_total"], summary["trials"]) == (2, 3, 3)
    assert summary["partial_note"] == "2 of 3 trials; 1 failed: rest died"
    assert summary["requests"] == 4000 and summary["errors"] == 0
    assert summary["measured_s"] == 4.0
    assert summary["throughput_per_s"] == {"value": 1000.0, "min": 500.0, "max": 1500.0}
    assert summary["latency_us"]["count"] == 4000
    assert LatencyHistogram.decode(summary["service_time_histogram"]).count == 4000
    assert summary["server_cpu_s_per_1000"]["value"] == 0.5  # 2 s of CPU for 4,000
    assert summary["wire_bytes_per_message"]["value"] == 1100.0


def test_a_partial_push_points_delivery_counts_come_from_its_ok_trials_only():
    record = PointRecord(0, "", None, None, "sse", "SSE", {})
    record.add_trial(build_push_trial(0, [_subscriber([1] * 100)], WINDOW, None))
    record.add_trial(build_push_trial(1, [_subscriber([0] * 100)], WINDOW, None))
    assert record.status == "partial"
    assert record.summary["delivery"]["expected"] == 100
    assert record.summary["delivery"]["completeness"]["value"] == 1.0
    assert record.summary["partial_note"].startswith("1 of 2 trials; 1 invalid: no event")


def test_a_point_whose_every_trial_counts_has_no_partial_note():
    record = PointRecord(0, "", None, None, "rest", "REST", {})
    record.add_trial(build_trial(0, [_generator(ok=10)], None, 5.0))
    assert record.status == "ok" and record.summary["partial_note"] is None
    skipped = PointRecord(0, "", None, None, "mqtt-qos0", "MQTT", {})
    skipped.add_trial(failed_trial(0, "skipped", "mqtt-qos0: mosquitto is not installed"))
    assert skipped.status == "skipped"


# summary.csv ----------------------------------------------------------------------------
OLD_COLUMNS = [
    "scenario",
    "point",
    "sweep_parameter",
    "sweep_value",
    "pattern",
    "status",
    "trials_ok",
    "trials",
    "throughput_per_s",
    "throughput_min_per_s",
    "throughput_max_per_s",
    "p50_us",
    "p50_us_lower_bound",
    "p99_us",
    "latency_samples",
    "requests",
    "errors",
    "timeouts",
    "unsent",
    "completeness",
    "lost",
    "duplicates",
    "client_bound",
    "client_bound_reasons",
    "server_cpu_s_per_1000",
    "generator_cpu_s_per_1000",
    "server_peak_rss_bytes",
    "wire_bytes_per_message",
    "payload_bytes_per_message",
    "error",
]


def test_summary_csv_has_the_push_columns_and_every_column_it_had(tmp_path):
    push = pd.read_csv(write_summary_csv(tmp_path, load_run(PUSH_RUN)))
    for column in (
        *OLD_COLUMNS,
        *("delivered", "expected", "out_of_order", "trials_total", "partial_note"),
    ):
        assert column in push.columns, column
    document = load_run(PUSH_RUN)
    for point, row in zip(document["points"], push.itertuples(), strict=True):
        delivery = point["summary"]["delivery"]
        assert (row.delivered, row.expected, row.lost) == (
            delivery["delivered"],
            delivery["expected"],
            delivery["lost"],
        )
        assert row.out_of_order == delivery["out_of_order"]
        assert row.trials_total == row.trials == len(point["trials"])
    assert push["unsent_fraction"].isna().all()  # push sends no requests
    rr = pd.read_csv(write_summary_csv(tmp_path, load_run(RR_RUN)))
    assert rr["delivered"].isna().all() and (rr["unsent_fraction"] == 0).all()


# Thresholds ----------------------------------------------------------------------------
def test_a_limit_on_unsent_requests_is_checked_against_the_share_of_those_due():
    point = _stored_point(summary=Summary(requests=700, errors=0, timeouts=0, unsent=300))
    assert figures.unsent_fraction(point) == pytest.approx(0.3)
    found = _unsent_breach("rest", point, Limits(max_unsent_fraction=0.25))
    assert found == ["rest: 300 requests unsent, 30.00% of those due > 25.00%"]
    assert _unsent_breach("rest", point, Limits(max_unsent_fraction=0.5)) == []
    assert _unsent_breach("rest", point, Limits()) == []


def test_a_scenario_can_set_the_unsent_limit_and_a_run_is_judged_by_it(tmp_path):
    # Through the scenario file, as a user writes it: the model takes the limit (open
    # loop only) and breaches() applies it to a stored run.
    path = tmp_path / "open.toml"
    path.write_text(
        'title = "t"\npatterns = ["rest"]\n[workload]\nmix = { get_user = 1.0 }\n'
        '[load]\nmodel = "open"\nrate_per_s = 100\n[thresholds]\nmax_unsent_fraction = 0.25\n'
    )
    thresholds = load_scenario(path).scenario.thresholds
    document = read_run(RR_RUN)
    document.run.thresholds = thresholds.model_dump()
    counts = Summary(trials_ok=1, requests=700, errors=0, timeouts=0, unsent=300)
    document.points = [_stored_point(label="", summary=counts)]
    assert breaches(document) == ["rest: 300 requests unsent, 30.00% of those due > 25.00%"]
    closed = path.read_text().replace('model = "open"\nrate_per_s = 100', "concurrency = 2")
    path.write_text(closed)
    with pytest.raises(ScenarioError) as refused:
        load_scenario(path)
    assert "thresholds.max_unsent_fraction = 0.25: only an open loop" in str(refused.value)


def test_a_completeness_limit_is_checked_on_push_points():
    document = read_run(PUSH_RUN)
    document.run.thresholds = {"min_completeness": 0.999}
    assert breaches(document) == []
    worst = document.points[0]
    worst.summary.delivery.completeness = Spread(value=0.9, min=0.8, max=1.0)
    assert breaches(document) == [f"{worst.pattern} at {worst.label}: 90.00% delivered < 99.90%"]
    worst.status = "invalid"
    assert breaches(document) == [
        f"{worst.pattern} at {worst.label}: invalid, so no limit can be met"
    ]


def test_readers_given_the_plain_dicts_of_load_run_see_what_the_typed_document_says():
    # The command line and the runner still pass load_run's dicts: the same verdicts.
    raw, typed = load_run(PUSH_RUN), read_run(PUSH_RUN)
    raw["run"]["thresholds"] = typed.run.thresholds = {"min_throughput_per_s": 10**9}
    assert breaches(raw) == breaches(typed) != []
    assert run_summary_table(raw) == run_summary_table(typed)
    assert raw == typed.to_dict()


# bench compare -------------------------------------------------------------------------
def test_compare_warns_about_an_interrupted_quick_run_and_names_its_partial_points():
    document = load_run(RR_RUN)
    document["run"].update(status="interrupted", error="interrupted by user (Ctrl-C)", quick=True)
    partial = document["points"][1]
    partial["status"] = "partial"
    partial["summary"]["partial_note"] = "2 of 3 trials; 1 failed: grpc server died"
    document["points"][-1]["status"] = "pending"
    warnings = run_warnings(document, "second")
    assert warnings == [
        "the second run is interrupted: interrupted by user (Ctrl-C)",
        "the second run was a --quick smoke run, not a measurement",
        "the second run has 1 partial point(s): grpc at concurrency=1 "
        "(2 of 3 trials; 1 failed: grpc server died)",
        "the second run never reached 1 point(s)",
    ]
    assert set(warnings) <= set(differences(load_run(RR_RUN), document))
    assert run_warnings(load_run(RR_RUN)) == []


def test_compare_finds_nothing_to_compare_in_runs_that_share_no_point(capsys):
    assert compare(load_run(RR_RUN), load_run(PUSH_RUN)) == []
    assert cli.main(["compare", str(RR_RUN), str(PUSH_RUN)]) == cli.EXIT_BAD_INPUT
    assert "share no pattern and point: nothing to compare" in capsys.readouterr().err


# The end-of-run table ------------------------------------------------------------------
def _rows(table: str) -> dict[tuple[str, str], str]:
    rows = {}
    for line in table.splitlines():
        cells = line.split()
        if len(cells) >= 3:
            rows[(cells[0], cells[1])] = line
    return rows


def test_the_run_summary_table_has_every_point_its_headline_and_its_flags():
    document = load_run(RR_RUN)
    document["points"][1]["status"] = "partial"
    document["points"][1]["summary"].update(
        trials_ok=2, trials_total=3, partial_note="2 of 3 trials; 1 failed: grpc died"
    )
    invalid = document["points"][2]
    invalid.update(status="invalid", summary={})
    invalid["trials"] = [
        {"repeat": 0, "status": "invalid", "error": "no validated answer in the measured window"}
    ]
    table = run_summary_table(document)
    assert all(len(line) <= 100 for line in table.splitlines()), table
    assert table.splitlines()[0] == "rr-concurrency (complete): throughput (per second)"
    rows = _rows(table)
    for point in document["points"]:
        assert (point["label"], point["pattern"]) in rows, point["pattern"]
    assert re.search(r"grpc\s+partial\s+[\d,]+\s+partial: 2 of 3 trials", table)
    assert re.search(r"websocket\s+invalid\s+-$", rows[("concurrency=1", "websocket")])
    bound = rows[("concurrency=32", "websocket")]
    assert ">= " in bound and "generator-bound" in bound
    assert "grpc at concurrency=1: partial: 2 of 3 trials; 1 failed: grpc died" in table
    assert (
        "websocket at concurrency=1: invalid: 0 of 1 trials; 1 invalid: no validated answer"
        in table
    )
    assert ">= at least" in table


def test_the_run_summary_table_shows_push_completeness_and_unsupported_percentiles():
    document = load_run(PUSH_RUN)
    thin = copy.deepcopy(document["points"][0])
    thin["summary"]["latency_us"].update(count=300, censored=12)
    thin["summary"]["delivery"]["completeness"]["value"] = 0.96
    thin["summary"]["delivery"]["lost"] = 12
    thin["label"] = "subscribers=1"
    document["points"].append(thin)
    table = run_summary_table(document)
    lines = table.splitlines()
    assert lines[1].split() == ["point", "pattern", "status", "p99", "delivered", "flags"]
    assert len(lines) == 2 + len(document["points"])  # title, header, one row each
    row = _rows(table)[("subscribers=1", thin["pattern"])]
    assert re.search(r"ok\s+n/a\s+96\.00%\s+n/a: 312 of 1,000 samples needed, 12 lost", row)


# The documented schema ------------------------------------------------------------------
def test_the_schema_document_names_every_status_and_new_summary_field():
    schema = (PROJECT_DIR / "docs" / "results-schema.md").read_text()
    for status in {*TRIAL_STATUSES, *POINT_STATUSES}:
        assert f"`{status}`" in schema, status
    for name in ("trials_total", "partial_note", "unsent_fraction", "out_of_order"):
        assert f"`{name}`" in schema, name
