"""Shared fixtures: real servers on free ports, stopped afterwards, and process hygiene.

The tests come in three tiers; `make test` (plain `pytest`) runs them all:
- unmarked: unit tests of the core that need no server (scenarios, schedules, histograms,
  claims), and tests of one server or driver spoken to directly (its limits, fuzzing);
- `conformance`: tests/test_conformance.py, the suite every registered pattern folder gets
  (health, a bad request answered with its protocol's own error, a clean stop);
- `e2e`: whole runs through the runner or the bench CLI, as a user starts them.
Pick one with `pytest -m conformance`, `pytest -m e2e` or `pytest -m "not e2e"`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import pytest

from bench.registry import get_pattern
from bench.serverproc import ServerProcess
from common.dataset import DatasetSpec

PROJECT_DIR = Path(__file__).resolve().parent.parent
SMALL_DATASET = DatasetSpec(users=50, payload_bytes=1024)


# Helpers that live as long as the process that started them, by design, and end with it:
# multiprocessing's resource tracker (started on first use of a semaphore), the generators'
# fork server, and the servers' templates (bench/templates.py). What they start (a server
# forked from a template, a generator forked from the fork server) is still checked.
LONG_LIVED_HELPERS = (
    "multiprocessing.resource_tracker",
    "multiprocessing.forkserver",
    "-m bench.templates",
)


def long_lived_helper(command: str) -> bool:
    """Whether a command line is one of the long-lived helpers above."""
    return any(helper in command for helper in LONG_LIVED_HELPERS)


def children() -> set[int]:
    """Our descendants, except the long-lived helpers above."""
    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            command = " ".join(child.cmdline())
        except psutil.NoSuchProcess:
            continue
        if not long_lived_helper(command):
            found.add(child.pid)
    return found


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """Every test must stop what it started: no process of ours outlives its test."""
    before = children()
    yield
    leftovers = [psutil.Process(pid) for pid in children() - before if psutil.pid_exists(pid)]
    alive = []
    for process in leftovers:
        try:
            # A process already told to exit gets a moment to finish doing so.
            process.wait(timeout=5)
        except psutil.TimeoutExpired:
            alive.append(" ".join(process.cmdline()))
            process.kill()
        except psutil.NoSuchProcess:
            pass
    assert not alive, f"processes left behind: {alive}"


def start_server(
    tmp_path: Path,
    pattern: str,
    dataset: DatasetSpec = SMALL_DATASET,
    extra: list[str] | None = None,
) -> ServerProcess:
    ready = tmp_path / f".{pattern}.ready"
    command = get_pattern(pattern).server_command(dataset, ready) + (extra or [])
    server = ServerProcess(pattern, command, tmp_path / f"{pattern}.log", ready)
    server.start()
    return server


SHARED_MAX_REQUEST_BYTES = 16_384  # small, so that "too large" is cheap to send


class SharedServers:
    """One server per pattern for the whole session, started the first time a module asks
    for it: the files that test one server directly (its answers, its limits, fuzzing)
    share it instead of each starting their own. Tests only send them requests: nothing
    publishes on them (push servers get no control line) and nothing stops them early.

    Ask from a module-scoped fixture, never in a test's body: a server started during a
    test would count as a process the test left behind."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: dict[str, ServerProcess] = {}

    def port(self, pattern: str) -> int:
        if pattern not in self.started:
            extra = ["--max-request-bytes", str(SHARED_MAX_REQUEST_BYTES)]
            self.started[pattern] = start_server(self.tmp_path, pattern, extra=extra)
        return self.started[pattern].port

    def stop(self) -> None:
        for server in self.started.values():
            server.stop()


@pytest.fixture(scope="session")
def shared_servers(tmp_path_factory):
    servers = SharedServers(tmp_path_factory.mktemp("shared-servers"))
    try:
        yield servers
    finally:
        servers.stop()


def run_bench(*args: str, cwd: Path = PROJECT_DIR, timeout: float = 120):
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
