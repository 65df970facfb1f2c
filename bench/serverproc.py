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
import socket
import subprocess
import time
from collections import deque
from pathlib import Path

from bench import signals
from bench.resources import ANYWHERE, Place
from bench.templates import (
    TemplateChild,
    TemplateFailed,
    can_fork_from_template,
    child_environment,
    fork_from_template,
)
from common.events import ControlMessage

READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 5.0
_PR_SET_PDEATHSIG = 1


class PatternUnavailable(Exception):
    """What a pattern needs is not on this machine (a broker, say): its points are skipped,
    with this as the reason, never faked."""


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


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask the kernel to send `signum` to this process when its parent dies. A process
    that changes user afterwards loses this (as Mosquitto does when started as root, unless
    told to stay the same user: see brokers.py)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum)
    except OSError:
        pass  # not Linux: the runner's own clean-up still stops the process


class ServerProcess:
    """One server process; use as a context manager so that it is always stopped.

    It is ready when it writes its port to `ready` (a file path), or, for programs that
    cannot (a broker), when `ready` (a port number) accepts connections. It runs in
    `place`. With `control`, its stdin stays open for control messages (push servers take
    publish plans there).
    """

    def __init__(
        self,
        name: str,
        command: list[str],
        log_path: Path,
        ready: Path | int,
        place: Place | None = None,
        control: bool = False,
    ) -> None:
        self.name = name
        self.command = command
        self.log_path = log_path
        self.ready = ready
        self.place = place or ANYWHERE
        self.control = control
        self.process: subprocess.Popen | TemplateChild | None = None
        self.port: int | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> int:
        """Start the server and return its port once it is ready."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(self.ready, Path):
            self.ready.unlink(missing_ok=True)
        try:
            self.process = self._from_template() or self._fresh()
        except OSError as exc:
            raise ServerFailed(self.name, f"could not be started: {exc}", "") from None
        self.place.put(self.process.pid)
        self.port = self._wait_until_ready(timeout_s)
        return self.port

    def _fresh(self) -> subprocess.Popen:
        """A new interpreter (or program), its own session, dying with the runner."""
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE if self.control else subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=self._in_child,
                env=child_environment(),
            )

    def _from_template(self) -> TemplateChild | None:
        """Forked from its module's template (bench/templates.py), as `_fresh` would have
        started it but for the imports; None for a program that is not a Python module,
        or when templates are switched off."""
        if not can_fork_from_template(self.command):
            return None
        log = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if self.control:
            stdin_read, stdin_write = os.pipe()
            stdin = os.fdopen(stdin_write, "wb")
        else:
            stdin_read, stdin = os.open(os.devnull, os.O_RDONLY), None
        try:
            return fork_from_template(
                self.command, self.place.cpus, self.place.netns, (stdin_read, log, log), stdin
            )
        except TemplateFailed:
            # A module its template cannot import (or a template that died): started
            # fresh, it fails (or not) as it always did, with its own words in its log.
            if stdin is not None:
                stdin.close()
            return None
        except BaseException:
            if stdin is not None:
                stdin.close()
            raise
        finally:
            os.close(stdin_read)
            os.close(log)

    def _in_child(self) -> None:
        """Between fork and exec: die with the runner, and enter the place (its network
        namespace can only be entered by the process itself)."""
        die_with_parent()
        self.place.enter()

    def send_control(self, message: ControlMessage | dict) -> None:
        """One control message, as a JSON line on the server's stdin (a dict is sent as
        it is: tests use it to send what no typed message would)."""
        assert self.process is not None and self.process.stdin is not None
        line = message if isinstance(message, dict) else message.to_dict()
        self.process.stdin.write(json.dumps(line).encode() + b"\n")
        self.process.stdin.flush()

    def _is_ready(self) -> int | None:
        if isinstance(self.ready, Path):
            if self.ready.exists():
                return int(json.loads(self.ready.read_text())["port"])
            return None

        def accepts() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.ready), timeout=1):
                    return True
            except OSError:
                return False

        # Asked from inside the server's namespace, where its loopback is.
        return self.ready if self.place.call(accepts) else None

    def _wait_until_ready(self, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            port = self._is_ready()
            if port is not None:
                return port
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
        with signals.deferred():
            self._stop(grace_s)

    def _stop(self, grace_s: float) -> None:
        process = self.process
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        if process.poll() is not None:
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


class ServerGroup:
    """The processes one pattern needs (most need one; MQTT a broker and a publisher),
    started in order and stopped in reverse."""

    def __init__(self, processes: list[ServerProcess], target: int = 0) -> None:
        self.processes = processes
        self.target_index = target

    def start(self) -> int:
        """Start every process; return the port subscribers and clients connect to."""
        for process in self.processes:
            process.start()
        return self.processes[self.target_index].port

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes if process.process is not None]

    @property
    def controller(self) -> ServerProcess:
        """The process that takes publish plans."""
        return next(p for p in reversed(self.processes) if p.control)

    def failure(self) -> ServerFailed | None:
        """A ServerFailed for the first process that has stopped, or None while all run."""
        for process in self.processes:
            code = process.exit_code()
            if code is not None:
                return ServerFailed(
                    process.name,
                    f"exited with code {code} during the measurement",
                    process.log_tail(),
                )
        return None

    def stop(self) -> None:
        # Every process is stopped by its id and waited for, even if a signal arrives
        # meanwhile (it is raised once they all have stopped).
        with signals.deferred():
            for process in reversed(self.processes):
                process.stop()

    def __enter__(self) -> ServerGroup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
