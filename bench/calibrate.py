"""Calibration: the harness's own generator against wrk, on the same REST server.

A benchmark, not a test: it prints both tools' figures and their ratios, and stores them
in `results/calibration.json`, from where every later run copies them into its
`results.json`, so the generator's own limits travel with every published chart.

Targets on a 2-core machine (server and generator on different cores): the harness
reaches at least half of wrk's request rate at concurrency 32, and its median latency at
concurrency 1 is at most twice wrk's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bench import environment
from bench.drivers.base import Target
from bench.engine import LoadPlan
from bench.generators import GeneratorGroup, GeneratorJob
from bench.metrics import build_trial
from bench.patterns import get_pattern
from bench.resources import Placement, ServerMonitor, plan_placement
from bench.results import utc_now, write_json
from bench.serverproc import ServerProcess
from bench.workload import Operation
from servers.dataset import DatasetSpec

CALIBRATION_FILE = "calibration.json"
RATE_CONCURRENCY = 32
LATENCY_CONCURRENCY = 1
TARGET_RATE_RATIO = 0.5  # harness rate / wrk rate at concurrency 32, at least
TARGET_P50_RATIO = 2.0  # harness p50 / wrk p50 at concurrency 1, at most
CALIBRATION_USER = 1
_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def parse_wrk(output: str) -> dict:
    """Requests per second and latency percentiles (us) from `wrk --latency` output."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is None:
        raise ValueError("wrk printed no Requests/sec line")
    percentiles = {}
    for percent, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M):
        percentiles[f"p{percent}_us"] = round(float(value) * _UNITS_US[unit], 1)
    requests = re.search(r"(\d+) requests in", output)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return {
        "requests_per_s": float(rate.group(1)),
        "latency_us": percentiles,
        "requests": int(requests.group(1)) if requests else None,
        "errors": (int(errors.group(1)) if errors else 0)
        + (sum(map(int, socket_errors.groups())) if socket_errors else 0),
    }


def _pinned(cpus: tuple[int, ...] | None) -> Callable[[], None] | None:
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def run_wrk(url: str, concurrency: int, duration_s: float, cpus: tuple[int, ...] | None) -> dict:
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{duration_s:g}s", "--latency", url]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=duration_s + 30,
        preexec_fn=_pinned(cpus),
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    return parse_wrk(completed.stdout)


def run_harness(
    target: Target,
    dataset: DatasetSpec,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    placement: Placement,
    server_pid: int,
) -> dict:
    """The harness's single generator process, closed loop, on the same URL wrk uses."""
    job = GeneratorJob(
        index=0,
        pattern="rest",
        dataset=dataset,
        plan=LoadPlan("closed", concurrency, warmup_s, duration_s),
        mix={"get_user": 1.0},
        per_page=20,
        seed=1,
        operations=(Operation("get_user", user_id=CALIBRATION_USER),),
        cpus=placement.generator_cpus,
    )
    with GeneratorGroup([job]) as group:
        group.start(target)
        start_ns = time.monotonic_ns() + 100_000_000
        group.go(start_ns)
        monitor = ServerMonitor([server_pid])
        time.sleep(max(0.0, (start_ns - time.monotonic_ns()) / 1e9 + warmup_s))
        monitor.start_window()
        time.sleep(duration_s)
        usage = monitor.end_window()
        results = group.collect(timeout_s=30)
    trial = build_trial(0, results, usage, None)
    return {
        "requests_per_s": trial.throughput_per_s,
        "latency_us": {
            "p50_us": trial.latency_us["p50_us"],
            "p90_us": trial.latency_us["p90_us"],
            "p99_us": trial.latency_us["p99_us"],
        },
        "requests": trial.requests,
        "errors": trial.errors + trial.timeouts,
        "generator_cpu_share": trial.generator_cpu_share,
    }


def calibrate(results_dir: Path, duration_s: float = 10.0, log: Callable[[str], None] = print):
    """Measure wrk and the harness on one REST server; store and return the comparison."""
    placement = plan_placement(True)
    dataset = DatasetSpec()
    pattern = get_pattern("rest")
    wrk_available = shutil.which("wrk") is not None
    results_dir.mkdir(parents=True, exist_ok=True)
    logs = results_dir / ".calibration-logs"
    ready = logs / ".rest.ready"
    record: dict = {
        "measured_at": utc_now(),
        "environment": environment.collect(Path(__file__).resolve().parent.parent),
        "placement": placement.to_dict(),
        "duration_s": duration_s,
        "url": f"/users/{CALIBRATION_USER}",
        "payload_bytes": dataset.payload_bytes,
        "wrk": {},
        "harness": {},
    }
    log(f"calibration: REST server and generators, {placement.note}")
    with ServerProcess(
        "rest",
        pattern.server_command(dataset, ready),
        logs / "rest.log",
        ready,
        placement.server_cpus,
    ) as server:
        port = server.start()
        target = Target("127.0.0.1", port)
        url = f"http://127.0.0.1:{port}/users/{CALIBRATION_USER}"
        for concurrency in (RATE_CONCURRENCY, LATENCY_CONCURRENCY):
            if wrk_available:
                run_wrk(url, concurrency, 1, placement.generator_cpus)  # warm-up, discarded
                log(f"  wrk      concurrency {concurrency}: {duration_s:g} s ...")
                record["wrk"][str(concurrency)] = run_wrk(
                    url, concurrency, duration_s, placement.generator_cpus
                )
            log(f"  harness  concurrency {concurrency}: {duration_s:g} s ...")
            record["harness"][str(concurrency)] = run_harness(
                target, dataset, concurrency, 1.0, duration_s, placement, server.pid
            )
    if not wrk_available:
        record["note"] = "wrk is not installed (apt-get install wrk): no ratios"
    else:
        record["ratios"] = ratios(record)
    write_json(results_dir / CALIBRATION_FILE, record)
    for line in describe(record):
        log(line)
    return record


def ratios(record: dict) -> dict:
    rate = (
        record["harness"][str(RATE_CONCURRENCY)]["requests_per_s"]
        / record["wrk"][str(RATE_CONCURRENCY)]["requests_per_s"]
    )
    p50 = (
        record["harness"][str(LATENCY_CONCURRENCY)]["latency_us"]["p50_us"]
        / record["wrk"][str(LATENCY_CONCURRENCY)]["latency_us"]["p50_us"]
    )
    return {
        "rate_at_32": round(rate, 3),
        "rate_at_32_target": f">= {TARGET_RATE_RATIO}",
        "rate_at_32_met": rate >= TARGET_RATE_RATIO,
        "p50_at_1": round(p50, 3),
        "p50_at_1_target": f"<= {TARGET_P50_RATIO}",
        "p50_at_1_met": p50 <= TARGET_P50_RATIO,
    }


def describe(record: dict) -> list[str]:
    lines = [f"{'':10}{'concurrency':>12}{'req/s':>12}{'p50 us':>10}{'p99 us':>10}{'errors':>8}"]
    for tool in ("wrk", "harness"):
        for concurrency, figures in record.get(tool, {}).items():
            latency = figures["latency_us"]
            lines.append(
                f"{tool:10}{concurrency:>12}{figures['requests_per_s']:>12,.0f}"
                f"{latency.get('p50_us', 0):>10,.0f}{latency.get('p99_us', 0):>10,.0f}"
                f"{figures.get('errors') or 0:>8}"
            )
    found = record.get("ratios")
    if found:
        for label, key in (
            (f"request rate at concurrency {RATE_CONCURRENCY}", "rate_at_32"),
            (f"p50 latency at concurrency {LATENCY_CONCURRENCY}", "p50_at_1"),
        ):
            verdict = "met" if found[f"{key}_met"] else "NOT met"
            lines.append(
                f"harness/wrk {label}: {found[key]:.2f} "
                f"(target {found[f'{key}_target']}: {verdict})"
            )
    else:
        lines.append(record.get("note", "no ratios"))
    return lines


def load_calibration(results_dir: Path) -> dict | None:
    """The stored calibration, without its bulky environment, for embedding in a run."""
    try:
        record = json.loads((results_dir / CALIBRATION_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    record.pop("environment", None)
    return record
