"""The typed reader of results.json: every stored run reads, and dumps back, exactly as it
was written; everything the writer writes is declared (so the generated schema document
covers it); a file of another format or shape is refused in one sentence naming the file,
the field and the version; and docs/results-schema.md is what the models generate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydantic import BaseModel

from bench import cli, figures
from bench.engine import GeneratorResult
from bench.metrics import build_push_trial, build_trial, failed_trial
from bench.push import PushResult
from bench.ranking import rank, ranking_text
from bench.resources import ServerUsage
from bench.results import PointRecord, RunRecorder, load_run, read_run
from bench.results_model import (
    RESULTS_FORMAT,
    Part,
    ResultsUnreadable,
    RunDocument,
    dump,
    load,
)
from bench.results_schema import GENERATE, render, sections
from bench.soak import ProcessTimeline
from common.events import PublicationTally
from common.histogram import LatencyHistogram

PROJECT_DIR = Path(__file__).resolve().parent.parent
STORED = sorted(
    path.parent
    for root in (PROJECT_DIR / "tests" / "data" / "runs", PROJECT_DIR / "results" / "published")
    for path in root.glob("**/results.json")
)
RR_RUN = next((PROJECT_DIR / "tests" / "data" / "runs" / "before").glob("*-rr-concurrency"))


def _exact(document: dict) -> str:
    """The document as JSON text with sorted keys: an int read back as a float differs."""
    return json.dumps(document, sort_keys=True)


def undeclared(part: object, where: str = "") -> list[str]:
    """Every key some part of a typed document holds without declaring it."""
    found = []
    if isinstance(part, BaseModel):
        found += [f"{where}.{key}" for key in part.model_extra or {}]
        for name in type(part).model_fields:
            found += undeclared(getattr(part, name), f"{where}.{name}")
    elif isinstance(part, list):
        for index, item in enumerate(part):
            found += undeclared(item, f"{where}[{index}]")
    elif isinstance(part, dict):
        for key, item in part.items():
            found += undeclared(item, f"{where}.{key}")
    return found


# Every stored run --------------------------------------------------------------------------
def test_the_stored_runs_are_all_found():
    assert len(STORED) >= 19  # three test runs, the published ones (16 scenarios)


@pytest.mark.parametrize("run_dir", STORED, ids=lambda path: path.name)
def test_every_stored_run_reads_and_dumps_back_exactly(run_dir, tmp_path):
    written = json.loads((run_dir / "results.json").read_text())
    document = load(run_dir)
    assert document.schema_version == RESULTS_FORMAT and document.points
    assert _exact(document.to_dict()) == _exact(written)
    assert undeclared(document) == []  # every field it holds is documented
    dump(document, tmp_path)
    assert _exact(json.loads((tmp_path / "results.json").read_text())) == _exact(written)
    # The dict reader, which claims and the command line index, gives the file itself.
    assert load_run(run_dir) == written


# What the writer writes ---------------------------------------------------------------------
def _histogram(count: int, us: int) -> str:
    histogram = LatencyHistogram()
    for _ in range(count):
        histogram.record_ns(us * 1000)
    return histogram.encode()


def _open_loop_generator(ok: int, unsent: int) -> dict:
    return GeneratorResult(
        ok=ok,
        unsent=unsent,
        latency=_histogram(ok, 500),
        censored=_histogram(unsent, 1_000_000),
        service_time=_histogram(ok, 400),
        send_lag=_histogram(ok, 10),
        connection_wait=_histogram(ok, 1),
        loop_lag=_histogram(100, 50),
        measured_s=2.0,
        cpu_s=0.5,
        check_s=0.01,
        wire_sent=100 * ok,
        wire_received=1000 * ok,
        payload_sent=10 * ok,
        payload_received=900 * ok,
        tcp_connections=4,
        error_kinds={"timeout": 1},
    ).to_dict()


def _subscriber(arrivals: list[int]) -> dict:
    return PushResult(
        latency=_histogram(sum(arrivals), 800),
        loop_lag=_histogram(100, 50),
        counts=[bytes(arrivals)],
        counters={"polls": 40},
        measured_s=2.0,
        cpu_s=0.1,
        wire_sent=500,
        wire_received=5000,
        payload_received=4000,
    ).to_dict()


def test_the_models_declare_everything_the_writer_writes(tmp_path):
    usage = ServerUsage(cpu_s=1.0, peak_rss_bytes=50_000_000, generator_cpus_busy=0.5)
    stored = load(RR_RUN)
    recorder = RunRecorder(tmp_path, stored.run.to_dict(), stored.environment.to_dict(), None)
    open_loop = recorder.point(PointRecord(0, "", None, None, "open", "Open", {"model": "open"}))
    for repeat in range(2):
        trial = build_trial(repeat, [_open_loop_generator(900, 100)], usage, 500.0)
        trial.extra["process_resources"] = ProcessTimeline({"me": 1}, 10).to_dict()
        open_loop.add_trial(trial)
    open_loop.add_trial(failed_trial(2, "failed", "server died"))
    push = recorder.point(PointRecord(1, "", None, None, "push", "Push", {"model": "push"}))
    tally = PublicationTally(120, 0, 99, {"p50_us": 5}, {"retries": 3})
    push.add_trial(build_push_trial(0, [_subscriber([1] * 90 + [0] * 10)], tally, usage))
    recorder.point(PointRecord(2, "", None, None, "pending", "Pending", {}))
    recorder.finish("complete")

    document = load(tmp_path)
    assert undeclared(document) == []
    first, second, never = document.points
    assert first.status == "partial" and first.summary.partial_note.startswith("2 of 3 trials")
    assert first.summary.service_time_us.count == 1800 and first.trials[0].generator.loop_lag_us
    assert first.trials[0].extra.process_resources.processes["me"].pid == 1
    assert second.summary.delivery.lost == 10 and second.trials[0].delivery.expected == 100
    assert second.trials[0].extra.polls_per_delivered_event == pytest.approx(40 / 90, abs=1e-3)
    assert never.status == "pending" and never.summary.model_fields_set == set()
    assert _exact(document.to_dict()) == _exact(load_run(tmp_path))


# Older files, other formats, other shapes ----------------------------------------------------
def _stored_copy(tmp_path: Path, change) -> Path:
    """A copy of the stored request/response run, its JSON changed by `change(document)`."""
    run_dir = tmp_path / RR_RUN.name
    shutil.copytree(RR_RUN, run_dir)
    document = json.loads((run_dir / "results.json").read_text())
    change(document)
    (run_dir / "results.json").write_text(json.dumps(document))
    return run_dir


def _refusal(run_dir: Path) -> str:
    with pytest.raises(ResultsUnreadable) as refused:
        load(run_dir)
    message = str(refused.value)
    assert message.startswith(f"{run_dir / 'results.json'}: ") and "\n" not in message
    with pytest.raises(ResultsUnreadable) as refused_too:
        load_run(run_dir)
    assert str(refused_too.value) == message  # the dict reader refuses alike
    return message


def test_a_file_of_the_retired_format_is_refused_naming_its_version(tmp_path):
    message = _refusal(_stored_copy(tmp_path, lambda d: d.update(schema_version=1)))
    assert "results format 1 is no longer read (it took the median" in message
    assert f"this bench reads format {RESULTS_FORMAT}: run the scenario again" in message


def test_a_file_of_a_newer_format_asks_for_a_newer_bench(tmp_path):
    newer = RESULTS_FORMAT + 1
    message = _refusal(_stored_copy(tmp_path, lambda d: d.update(schema_version=newer)))
    assert f"results format {newer} is newer than this bench reads ({RESULTS_FORMAT})" in message
    assert message.endswith("update bench to read it")


def test_a_file_without_a_version_is_not_taken_for_results(tmp_path):
    message = _refusal(_stored_copy(tmp_path, lambda d: d.pop("schema_version")))
    assert "no schema_version: not a results file bench wrote" in message


def test_a_misshapen_file_is_refused_naming_the_field(tmp_path):
    def lose_a_status(document):
        del document["points"][2]["status"]

    assert "points[2].status is missing" in _refusal(_stored_copy(tmp_path, lose_a_status))

    def trials_not_a_list(document):
        document["points"][0]["trials"] = "three"

    message = _refusal(_stored_copy(tmp_path / "b", trials_not_a_list))
    assert "points[0].trials: input should be a valid list" in message
    assert message.endswith("not a results file bench wrote, or damaged")

    def a_word_for_a_number(document):
        document["points"][1]["summary"]["throughput_per_s"]["value"] = "fast"

    message = _refusal(_stored_copy(tmp_path / "c", a_word_for_a_number))
    assert "points[1].summary.throughput_per_s.value: input should be a number:" in message


def test_bench_report_prints_the_refusal_and_exits_2(tmp_path, capsys):
    run_dir = _stored_copy(tmp_path, lambda d: d["run"].pop("id"))
    assert cli.main(["report", str(run_dir)]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err == (
        f"{run_dir / 'results.json'}: run.id is missing: not a results file bench wrote, "
        "or damaged\n"
    )


def test_an_older_file_without_the_newer_fields_reads_with_their_defaults(tmp_path):
    def age(document):
        for point in document["points"]:
            for name in ("ablation", "latency_set_by"):
                point.pop(name, None)
            point["summary"].pop("lossy", None)
            point["summary"]["latency_us"].pop("generator_delay", None)
        document["points"][1]["trials"][0].update(status="failed", error="grpc died\nlog")

    aged = read_run(_stored_copy(tmp_path, age))
    point = aged.points[1]
    assert point.ablation == "" and point.summary.latency_us.generator_delay == {}
    # The stored summaries predate partial_note: it is worked out from the trials.
    assert "partial_note" not in point.summary.model_fields_set
    assert figures.trials_note(point) == "1 of 2 trials; 1 failed: grpc died"
    assert figures.trials_counted(point) == (2, 2)  # from `trials`, the older name
    assert ranking_text(rank(aged)[2]) == ranking_text(rank(read_run(RR_RUN))[2])


def test_fields_a_newer_writer_adds_are_kept_through_a_read_and_a_dump(tmp_path):
    def add(document):
        document["points"][0]["summary"]["jitter_us"] = {"value": 3}
        document["run"]["operator"] = "ci"

    run_dir = _stored_copy(tmp_path, add)
    document = load(run_dir)
    assert document.points[0].summary.model_extra == {"jitter_us": {"value": 3}}
    document.run.status = "interrupted"
    dump(document, run_dir)
    again = load_run(run_dir)
    assert again["run"]["operator"] == "ci" and again["run"]["status"] == "interrupted"
    assert again["points"][0]["summary"]["jitter_us"] == {"value": 3}


def test_claims_reading_plain_points_see_what_the_typed_reader_sees():
    raw, typed = load_run(RR_RUN), read_run(RR_RUN)
    assert [figures.client_bound(p) for p in raw["points"]] == [
        figures.client_bound(p) for p in typed.points
    ]
    assert any(figures.client_bound(p) for p in raw["points"])  # one generator-bound point


# The schema document ----------------------------------------------------------------------
def test_the_committed_schema_document_is_the_one_the_models_generate():
    committed = (PROJECT_DIR / "docs" / "results-schema.md").read_text()
    assert committed == render(), f"docs/results-schema.md is stale: run `{GENERATE}`"


def test_the_schema_document_has_a_section_for_every_part_of_the_document():
    def subclasses(model: type) -> set[type]:
        return {c for s in model.__subclasses__() for c in {s, *subclasses(s)}}

    assert set(sections()) == subclasses(Part)
    assert next(iter(sections())) is RunDocument
    text = render()
    for model in sections():
        assert f"## `{model.__name__}`" in text
        for name in model.model_fields:
            assert f"| `{name}` |" in text, (model.__name__, name)
