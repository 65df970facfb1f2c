"""Server processes: start one, wait until it is ready, and always stop it.

A server runs in its own session, so a Ctrl-C at the terminal reaches the runner only and
the runner stops the server itself, by its process id. If the runner dies without a chance
to clean up, the kernel sends the server SIGTERM (PR_SET_PDEATHSIG): no orphans.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import time
from collections import deque
from pathlib import Path

READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 5.0
_PR_SET_PDEATHSIG = 1


class ServerFailed(Exception):
    """A server did not start, or stopped while it was needed. The message names it."""

    def __init__(self, name: str, problem: str, log_tail: str) -> None:
        message = f"{name} server {problem}"
        if log_tail:
            message += f"; last lines of its log:\n{log_tail}"
        super().__init__(message)
        self.name = name
        self.problem = problem
        self.log_tail = log_tail


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: the runner's own clean-up still stops the server


class ServerProcess:
    """One server process; use as a context manager so that it is always stopped."""

    def __init__(
        self,
        name: str,
        command: list[str],
        log_path: Path,
        ready_file: Path,
        cpus: tuple[int, ...] | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.log_path = log_path
        self.ready_file = ready_file
        self.cpus = cpus
        self.process: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> int:
        """Start the server and return its port once it has announced it is ready."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        if self.cpus:
            # The process may already have exited; the wait below reports it.
            with contextlib.suppress(OSError):
                os.sched_setaffinity(self.process.pid, self.cpus)
        self.port = self._wait_until_ready(timeout_s)
        return self.port

    def _wait_until_ready(self, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.ready_file.exists():
                return int(json.loads(self.ready_file.read_text())["port"])
            code = self.process.poll()
            if code is not None:
                raise ServerFailed(
                    self.name, f"exited with code {code} before it was ready", self.log_tail()
                )
            time.sleep(0.01)
        self.stop()
        raise ServerFailed(self.name, f"was not ready within {timeout_s:g} s", self.log_tail())

    def exit_code(self) -> int | None:
        """None while the server runs; its exit code once it has stopped."""
        return None if self.process is None else self.process.poll()

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM, wait for a clean exit, then SIGKILL. Safe to call twice."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 15) -> str:
        try:
            with open(self.log_path, errors="replace") as log:
                return "".join(deque(log, maxlen=lines)).rstrip()
        except OSError:
            return ""

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
