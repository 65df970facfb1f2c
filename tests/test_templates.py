"""Processes forked from a pre-imported template (bench/templates.py): a child is the
process `python -m module args` would have been, in its own session and place, with the
descriptors it was given; the runner follows it by pid as it would a Popen; it dies with
its template."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bench.resources import usable_cpus
from bench.serverproc import ServerProcess
from bench.templates import (
    FRESH_PROCESSES_VARIABLE,
    Spawn,
    TemplateChild,
    TemplateFailed,
    TemplatePool,
)

MODULE = "tests.template_target"


@pytest.fixture
def pool(tmp_path):
    templates = TemplatePool(tmp_path / "templates")
    yield templates
    templates.close()


def spawn(pool: TemplatePool, args: list[str], log: Path, cpus=None, stdin=True):
    """A child of MODULE's template; its stdin a pipe we hold (or /dev/null)."""
    template = pool.template(MODULE)
    log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    read_end, write_end = os.pipe() if stdin else (os.open(os.devnull, os.O_RDONLY), None)
    try:
        pid = template.spawn(Spawn(args, cpus), read_end, log_fd, log_fd)
    finally:
        os.close(read_end)
        os.close(log_fd)
    writer = os.fdopen(write_end, "wb") if write_end is not None else None
    return TemplateChild(template, pid, writer)


def gone(pid: int, timeout_s: float = 10.0) -> bool:
    """Whether process `pid` has ended (it is not ours: its template reaps it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.01)
    return False


def test_a_child_is_the_module_run_as_main_in_its_own_session_place_and_descriptors(pool, tmp_path):
    report, log = tmp_path / "report.json", tmp_path / "child.log"
    cpu = usable_cpus()[-1]
    child = spawn(pool, [str(report), "--read-line", "--exit", "3"], log, cpus=[cpu])
    child.stdin.write(b"hello\n")
    child.stdin.flush()
    assert child.wait(10) == 3
    found = json.loads(report.read_text())
    assert found["name"] == "__main__"
    assert found["argv"] == [str(report), "--read-line", "--exit", "3"]
    assert found["session"] == found["pid"] == child.pid  # a session of its own
    assert found["cpus"] == [cpu]
    assert found["line"] == "hello"  # its stdin is the pipe it was given...
    assert found["unbuffered"] == "1"
    assert log.read_text() == "started\n"  # ...and its stdout the log


def test_a_child_ended_by_a_signal_reports_it_as_popen_does(pool, tmp_path):
    report = tmp_path / "report.json"
    child = spawn(pool, [str(report), "--block"], tmp_path / "child.log")
    deadline = time.monotonic() + 10
    while not report.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert child.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(0.05)
    child.terminate()
    assert child.wait(10) == -signal.SIGTERM
    child.kill()  # signalling one that has ended reaches nobody


def test_children_end_with_their_template(pool, tmp_path):
    report = tmp_path / "report.json"
    child = spawn(pool, [str(report), "--block"], tmp_path / "child.log")
    deadline = time.monotonic() + 10
    while not report.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    pool.close()  # the template is stopped: the kernel ends its children (PR_SET_PDEATHSIG)
    assert gone(child.pid)


def test_a_module_that_cannot_be_imported_is_named_in_one_sentence(pool):
    with pytest.raises(TemplateFailed, match=r"cannot import tests\.no_such_module"):
        pool.template("tests.no_such_module").wait_ready(timeout_s=30)


def test_servers_start_from_templates_unless_told_to_start_fresh(tmp_path, monkeypatch):
    import sys

    report = tmp_path / "report.json"
    command = [sys.executable, "-m", MODULE, str(report)]
    with ServerProcess("t", command, tmp_path / "t.log", 1) as forked:
        with contextlib.suppress(Exception):
            forked.start(timeout_s=0.5)  # it never listens on port 1: only how it started
        assert isinstance(forked.process, TemplateChild)
    monkeypatch.setenv(FRESH_PROCESSES_VARIABLE, "1")
    with ServerProcess("t", command, tmp_path / "t.log", 1) as fresh:
        with contextlib.suppress(Exception):
            fresh.start(timeout_s=0.5)
        assert isinstance(fresh.process, subprocess.Popen)


def test_a_child_whose_template_is_killed_is_seen_to_end_and_waits_do_not_hang(pool, tmp_path):
    """The template dies without a word (SIGKILL): its child gets SIGTERM from the kernel,
    and is followed by its pidfd: poll and wait say it ended, nothing raises or spins."""
    report = tmp_path / "report.json"
    child = spawn(pool, [str(report), "--block"], tmp_path / "child.log")
    deadline = time.monotonic() + 10
    while not report.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    template = pool.template(MODULE)
    template.process.kill()
    template.process.wait()
    assert child.wait(10) == -signal.SIGTERM
    assert child.poll() == -signal.SIGTERM
    assert not template.alive()
    assert pool.template(MODULE) is not template  # used again: a new template


def test_a_template_that_does_not_answer_is_stopped_not_trusted_later(pool, tmp_path):
    """A template that stops answering (here: stopped with SIGSTOP) makes spawn fail in one
    sentence; it is stopped with what it forked, so a late answer can never be taken for
    another request's."""
    import bench.templates as templates

    template = pool.template(MODULE)
    template.wait_ready()
    os.kill(template.pid, signal.SIGSTOP)
    original, templates.ANSWER_TIMEOUT_S = templates.ANSWER_TIMEOUT_S, 0.5
    try:
        with pytest.raises(TemplateFailed, match=r"did not answer within 0\.5 s"):
            spawn(pool, [str(tmp_path / "report.json")], tmp_path / "child.log")
    finally:
        templates.ANSWER_TIMEOUT_S = original
        with contextlib.suppress(ProcessLookupError):
            os.kill(template.pid, signal.SIGCONT)
    assert template.dead and not template.alive()
    assert gone(template.pid)
