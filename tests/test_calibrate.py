"""Calibration: the generator's CPU per request against wrk and h2load, and its record.

Parsing uses the tools' real output, captured from runs against this project's servers.
"""

from __future__ import annotations

import json
import os
import shutil
import socketserver
import subprocess
import sys
import threading

import pytest

from bench.calibrate import (
    CALIBRATION_FILE,
    CALIBRATION_FORMAT,
    NO_CALIBRATION,
    NO_TOOL,
    calibration_for_run,
    describe_ratios,
)
from bench.loadtools import (
    ToolFailed,
    check_answer,
    parse_h2load,
    parse_wrk,
    probe,
    tool_probes,
    tool_requests,
    wrk_command,
    wrk_script,
)
from bench.reference_clients import missing_reference
from common.dataset import build_user
from patterns.grpc import users_pb2
from tests.conftest import PROJECT_DIR, SMALL_DATASET, run_bench, start_server

# wrk 4.1 with calibration's Lua script, 8 connections at 1,000/s, REST /users/1.
WRK_OK = """Running 1s test @ http://127.0.0.1:46837/users/1
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   297.05us  100.09us   1.05ms   69.47%
    Req/Sec     1.00k     8.41     1.02k    80.00%
  Latency Distribution
     50%  271.00us
     75%  351.00us
     90%  450.00us
     99%  554.00us
  999 requests in 1.00s, 1.11MB read
Requests/sec:    997.42
Transfer/sec:      1.11MB
"""

# The same, for a user that does not exist.
WRK_404 = """Running 1s test @ http://127.0.0.1:46837/users/999999
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   276.07us  101.60us 733.00us   66.12%
    Req/Sec     1.00k     8.26     1.02k    81.82%
  Latency Distribution
     50%  259.00us
     75%  331.00us
     90%  428.00us
     99%  554.00us
  1098 requests in 1.10s, 225.18KB read
  Non-2xx or 3xx responses: 1098
Requests/sec:    997.94
Transfer/sec:    204.66KB
"""

# h2load 1.52 (nghttp2) with calibration's options, gRPC GetUser at 1,000/s.
H2LOAD_OK = """starting benchmark...
spawning thread #0: 1 total client(s). Timing-based test with 0s of warm-up time and 1s of main duration for measurements.
Warm-up started for thread #0.
progress: 100% of clients started
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
Application protocol: h2c
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 1.00s, 992.00 req/s, 455.52KB/s
requests: 992 total, 993 started, 992 done, 992 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 992 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 455.52KB (466452) total, 2.98KB (3051) headers (space savings 96.20%), 398.16KB (407712) data
                     min         max         mean         sd        +/- sd
time for request:      302us      4.84ms       389us       162us    95.67%
time for connect:       57us        57us        57us         0us   100.00%
time to 1st byte:     4.94ms      4.94ms      4.94ms         0us   100.00%
req/s           :     991.09      991.09      991.09        0.00   100.00%
"""  # noqa: E501

# h2load --h1 -n 6 against a path the REST server does not have.
H2LOAD_404 = """starting benchmark...
spawning thread #0: 1 total client(s). 6 total requests
Application protocol: http/1.1
progress: 100% done

finished in 4.17ms, 1439.54 req/s, 244.61KB/s
requests: 6 total, 6 started, 6 done, 0 succeeded, 6 failed, 0 errored, 0 timeout
status codes: 0 2xx, 0 3xx, 6 4xx, 0 5xx
traffic: 1.02KB (1044) total, 708B (708) headers (space savings 0.00%), 84B (84) data
                     min         max         mean         sd        +/- sd
time for request:      215us      2.14ms       606us       754us    83.33%
"""

# h2load (h2c) against the REST server, which speaks HTTP/1.1 only: it exits with 0.
H2LOAD_NOTHING_DONE = """finished in 1.00s, 0.00 req/s, 664B/s
requests: 0 total, 1 started, 0 done, 0 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 0 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 664B (664) total, 0B (0) headers (space savings 0.00%), 0B (0) data
                     min         max         mean         sd        +/- sd
time for request:        0us         0us         0us         0us     0.00%
"""

HERE = {
    "cpu_model": "AMD EPYC",
    "usable_cpus": [0, 1],
    "kernel": "6.1.0",
    "git": {"commit": "a" * 40, "dirty": False},
}


# Parsing the tools' output -------------------------------------------------------------
def test_parse_wrk_reads_requests_rate_p50_and_mean_in_microseconds():
    report = parse_wrk(WRK_OK)
    assert (report.requests, report.elapsed_s, report.rate_per_s) == (999, 1.0, 997.42)
    assert (report.p50_us, report.mean_us, report.errors) == (271.0, 297.1, 0)


def test_parse_wrk_counts_answers_other_than_2xx_as_errors():
    report = parse_wrk(WRK_404)
    assert (report.requests, report.errors, report.elapsed_s) == (1098, 1098, 1.1)


def test_parse_wrk_refuses_output_without_requests():
    with pytest.raises(ToolFailed, match="no request count"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


def test_parse_h2load_reads_completed_requests_rate_and_mean_and_has_no_p50():
    report = parse_h2load(H2LOAD_OK)
    assert (report.requests, report.elapsed_s, report.rate_per_s) == (992, 1.0, 992.0)
    assert (report.errors, report.mean_us, report.p50_us) == (0, 389.0, None)


def test_parse_h2load_counts_failed_requests_and_reads_milliseconds():
    report = parse_h2load(H2LOAD_404)
    assert (report.requests, report.errors, report.elapsed_s) == (6, 6, 0.00417)


def test_parse_h2load_refuses_a_run_in_which_nothing_was_done():
    with pytest.raises(ToolFailed, match="completed no request"):
        parse_h2load(H2LOAD_NOTHING_DONE)


# What the tools send ---------------------------------------------------------------------
def test_grpc_body_is_one_length_prefixed_get_user_request_for_user_1():
    body = tool_requests()["grpc"].body
    assert body[0] == 0  # not compressed
    assert int.from_bytes(body[1:5], "big") == len(body) - 5
    assert users_pb2.GetUserRequest.FromString(body[5:]) == users_pb2.GetUserRequest(id=1)


class _Recorder(socketserver.BaseRequestHandler):
    """Answers every HTTP/1.1 request with 200 and keeps the first one's bytes."""

    def handle(self) -> None:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                chunk = self.request.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            while len(buffer) < length:
                buffer += self.request.recv(65536)
            body, buffer = buffer[:length], buffer[length:]
            self.server.seen.append((head, body))
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
@pytest.mark.parametrize("pattern", ["jsonrpc", "soap", "graphql"])
def test_wrk_sends_the_request_byte_for_byte_at_the_rate_asked(tmp_path, pattern):
    request = tool_requests()[pattern]
    script = tmp_path / "wrk.lua"
    script.write_text(wrk_script(request, rate_per_s=200))
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Recorder) as server:
        server.daemon_threads = True
        server.seen = []
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}{request.path}"
            completed = subprocess.run(
                wrk_command(url, script, connections=2, duration_s=1),
                capture_output=True,
                text=True,
                timeout=30,
            )
        finally:
            server.shutdown()
            thread.join()
    assert completed.returncode == 0, completed.stderr
    report = parse_wrk(completed.stdout)
    assert 160 <= report.rate_per_s <= 240 and report.errors == 0
    head, body = server.seen[0]
    lines = head.decode().split("\r\n")
    assert lines[0] == f"{request.method} {request.path} HTTP/1.1"
    for name, value in request.headers:
        assert f"{name}: {value}" in lines
    assert body == request.body
    assert all(seen == server.seen[0] for seen in server.seen)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize(
    ("pattern", "missing_user_error"),
    [("jsonrpc", "the answer is an error"), ("grpc", "grpc-status 5")],
)
def test_the_tools_request_is_checked_by_its_answer_not_its_status(
    tmp_path, pattern, missing_user_error
):
    """JSON-RPC answers an unknown user with status 200 and gRPC with HTTP 200 and a
    grpc-status trailer: the tools would count both as successes."""
    server = start_server(tmp_path, pattern)
    try:
        url = f"http://127.0.0.1:{server.port}"
        right = tool_requests()[pattern]
        check_answer(
            pattern, probe(url + right.path, right, tmp_path), build_user(SMALL_DATASET, 1)
        )
        wrong = tool_requests(user_id=SMALL_DATASET.users + 1)[pattern]
        answer = probe(url + wrong.path, wrong, tmp_path)
    finally:
        server.stop()
    assert answer.status == 200
    with pytest.raises(ToolFailed, match=missing_user_error):
        check_answer(pattern, answer, build_user(SMALL_DATASET, 1))


# The record and its staleness ------------------------------------------------------------
def _stored(tmp_path, **measured_on) -> dict:
    record = {
        "format": CALIBRATION_FORMAT,
        "measured_on": {
            "cpu_model": "AMD EPYC",
            "usable_cpus": 2,
            "kernel": "6.1.0",
            "commit": "a" * 40,
            "dirty": False,
            **measured_on,
        },
        "rate_per_s": 1000.0,
        "patterns": {},
        "environment": {"packages": {"aiohttp": "3"}},
    }
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps(record))
    return record


def test_a_calibration_from_this_machine_and_commit_is_used_without_its_environment(tmp_path):
    _stored(tmp_path)
    record, problem = calibration_for_run(tmp_path, HERE)
    assert problem is None
    assert "environment" not in record
    assert record["measured_on"]["commit"] == "a" * 40


def test_a_calibration_from_another_commit_is_refused_naming_both(tmp_path):
    _stored(tmp_path, commit="b" * 40)
    record, problem = calibration_for_run(tmp_path, HERE)
    assert record is None
    assert problem == (
        f"the calibration was measured at commit {'b' * 12}, this is {'a' * 12}: "
        "run `bench calibrate`"
    )


def test_a_calibration_made_with_other_uncommitted_changes_is_refused(tmp_path):
    _stored(tmp_path, dirty=True, diff_sha256="c" * 64)
    record, problem = calibration_for_run(tmp_path, HERE)
    assert record is None
    assert "other uncommitted changes" in problem
    changed = {**HERE, "git": {"commit": "a" * 40, "dirty": True, "diff_sha256": "c" * 64}}
    record, problem = calibration_for_run(tmp_path, changed)
    assert problem is None  # the same changes: the same code


@pytest.mark.parametrize(
    "other", [{"cpu_model": "Intel Xeon"}, {"usable_cpus": 4}, {"kernel": "6.8.0"}]
)
def test_a_calibration_from_another_machine_is_refused(tmp_path, other):
    _stored(tmp_path, **other)
    record, problem = calibration_for_run(tmp_path, HERE)
    assert record is None
    assert problem.startswith("the calibration was measured on another machine (")
    assert "this one: AMD EPYC, 2 CPUs, kernel 6.1.0" in problem
    assert problem.endswith("run `bench calibrate`")


def test_no_calibration_and_an_old_one_say_to_run_bench_calibrate(tmp_path):
    assert calibration_for_run(tmp_path, HERE) == (None, NO_CALIBRATION)
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"ratios": {"rate_at_32": 0.5}}))
    record, problem = calibration_for_run(tmp_path, HERE)
    assert record is None and "older format" in problem


def subscriber_probes() -> dict:
    """Every push pattern an independent subscriber follows, with how."""
    from bench.pattern import load
    from bench.registry import PATTERNS
    from bench.subscriber_tools import SubscriberProbe

    probes = {n: load(p.tool_probe_path) for n, p in PATTERNS.items() if p.tool_probe_path}
    return {n: probe for n, probe in probes.items() if isinstance(probe, SubscriberProbe)}


def test_describe_ratios_names_each_ratio_and_what_has_none():
    def entry(status: str, tool: str | None = None, ratio: float | None = None, push=False):
        workload = "push" if push else "request_response"
        return {"status": status, "tool": tool, "cpu_ratio": ratio, "workload": workload}

    record = {
        "rate_per_s": 1000.0,
        "patterns": {
            "rest": entry("calibrated", "wrk", 1.84),
            "soap": entry("failed", "wrk"),
            "grpc": entry("calibrated", "h2load", 4.2),
            "graphql-fields": entry("uncalibrated"),
            "mqtt-qos0": entry("calibrated", "mosquitto_sub", 1.46, push=True),
            "webhooks": entry("uncalibrated", push=True),
        },
    }
    assert describe_ratios(record) == (
        "generator CPU per request vs wrk/h2load at 1,000/s: rest 1.8x, soap failed, "
        "grpc 4.2x; per delivered event vs mosquitto_sub: mqtt-qos0 1.5x; graphql-fields "
        "and webhooks uncalibrated"
    )


def test_describe_ratios_says_what_an_older_calibration_measured():
    older = {"ratios": {"rate_at_32": 1.051, "p50_at_1": 1.13}, "wrk": {}, "harness": {}}
    assert describe_ratios(older) == (
        "generator vs wrk, REST only (older calibration): 1.05x wrk's request rate at "
        "concurrency 32, 1.13x its p50 at concurrency 1"
    )


# End to end ------------------------------------------------------------------------------
def test_calibrate_without_the_tools_lists_their_patterns_as_uncalibrated(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "calibrate", "--results-dir", str(tmp_path)],
        cwd=PROJECT_DIR,
        env={**os.environ, "PATH": str(tmp_path)},  # no wrk, h2load or curl on it
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    patterns = json.loads((tmp_path / CALIBRATION_FILE).read_text())["patterns"]
    assert {entry["status"] for entry in patterns.values()} == {"uncalibrated"}
    assert patterns["rest"]["reason"] == "wrk is not installed (apt-get install wrk)"
    assert patterns["grpc"]["reason"] == (
        "h2load is not installed (apt-get install nghttp2-client)"
    )
    assert "graphql, jsonrpc, rest, soap: uncalibrated: wrk is not installed" in completed.stdout


@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("wrk", "h2load", "curl")),
    reason="needs wrk, h2load (nghttp2-client) and curl: apt-get install wrk nghttp2-client curl",
)
def test_calibrate_measures_both_sides_of_every_calibrated_pattern(tmp_path):
    # Half the default rate: more headroom below the GraphQL server's ceiling (about 1,900
    # requests a second on two cores), so that a busy machine does not fail the test.
    completed = run_bench(
        "calibrate",
        "--duration",
        "1",
        "--rate",
        "500",
        "--results-dir",
        str(tmp_path),
        timeout=240,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    record = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    patterns = record["patterns"]
    calibrated = {name for name, entry in patterns.items() if entry["status"] == "calibrated"}
    # Every pattern whose folder has a probe its tool can run here: wrk's and h2load's
    # five at least, and with the Node reference clients and mosquitto_sub installed
    # (make setup) WebSocket and the push patterns they follow.
    runnable = {name for name, probe in subscriber_probes().items() if probe.missing() is None}
    if missing_reference() is None:
        runnable.add("websocket")
    assert calibrated == (set(tool_probes()) - {"websocket"}) | runnable
    assert {"rest", "jsonrpc", "soap", "graphql", "grpc"} <= calibrated
    for name in calibrated:
        entry = patterns[name]
        assert entry["cpu_ratio"] > 0
        assert [measured["order"][0] for measured in entry["rounds"]] == [entry["tool"], "harness"]
        # Push: 1,000 deliveries a second, whatever the probe; request/response: --rate.
        rate = 1000 if entry["workload"] == "push" else 500
        for measured in entry["rounds"]:
            for side in (measured["tool"], measured["harness"]):
                assert side["cpu_us_per_request"] > 0 and side["errors"] == 0, (name, side)
                assert abs(side["rate_per_s"] - rate) <= rate / 5, (name, side)
    assert (patterns["webhooks"]["status"], patterns["webhooks"]["reason"]) == (
        "uncalibrated",
        NO_TOOL,
    )
    assert record["measured_on"]["usable_cpus"] == len(os.sched_getaffinity(0))
    assert "environment" in record
    assert describe_ratios(record) in completed.stdout
