"""Calibration against wrk: parsing wrk's report, and the stored ratios travelling with runs."""

from __future__ import annotations

import json
import shutil

import pytest

from bench.calibrate import CALIBRATION_FILE, load_calibration, parse_wrk
from tests.conftest import run_bench

WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:18080/users/1
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.74ms  495.35us   7.43ms   69.39%
    Req/Sec    18.46k     3.66k   26.64k    62.00%
  Latency Distribution
     50%  163.00us
     75%    1.97ms
     90%    2.33ms
     99%    1.02s
  91811 requests in 5.00s, 103.32MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  18358.38
Transfer/sec:     20.66MB
"""


def test_parse_wrk_reads_rate_percentiles_in_microseconds_and_errors():
    parsed = parse_wrk(WRK_OUTPUT)
    assert parsed["requests_per_s"] == 18358.38
    assert parsed["latency_us"] == {
        "p50_us": 163.0,
        "p75_us": 1970.0,
        "p90_us": 2330.0,
        "p99_us": 1_020_000.0,
    }
    assert parsed["requests"] == 91811
    assert parsed["errors"] == 3


def test_parse_wrk_refuses_output_without_a_rate():
    with pytest.raises(ValueError):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_calibrate_measures_both_tools_and_stores_the_ratios(tmp_path):
    completed = run_bench(
        "calibrate", "--duration", "1", "--results-dir", str(tmp_path), timeout=180
    )
    assert completed.returncode == 0, completed.stderr
    assert "harness/wrk request rate at concurrency 32:" in completed.stdout
    assert "harness/wrk p50 latency at concurrency 1:" in completed.stdout
    record = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    for tool in ("wrk", "harness"):
        for concurrency in ("32", "1"):
            assert record[tool][concurrency]["requests_per_s"] > 0
            assert record[tool][concurrency]["errors"] == 0
    assert record["ratios"]["rate_at_32"] > 0 and record["ratios"]["p50_at_1"] > 0
    embedded = load_calibration(tmp_path)
    assert embedded["ratios"] == record["ratios"] and "environment" not in embedded
