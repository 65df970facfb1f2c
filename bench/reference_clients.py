"""Independent reference clients in Node (`reference/`): a WebSocket request/response load
client and WebSocket and Server-Sent Events subscribers.

No tool in C drives these protocols here as wrk and h2load drive HTTP/1.1 and gRPC, so
`bench calibrate` measures the harness's own generator and subscribers against clients
written with the most used Node packages (`ws`, `eventsource`), installed by `make setup`
from `reference/package-lock.json`. This module runs them and reads what they print; what
each measures, and how, is said at the top of each script.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from bench import signals
from bench.loadtools import TOOL_TIMEOUT_GRACE_S, ToolFailed
from bench.serverproc import die_with_parent
from bench.subscriber_tools import SubscriberProbe, SubscriberReport

if TYPE_CHECKING:
    from bench.drivers.base import Target

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "reference"
NODE_PACKAGES = ("ws", "eventsource")
NOT_INSTALLED = (
    "the Node reference clients are not installed: run `make setup` (needs Node.js 20 and npm)"
)
NODE_NOT_FOUND = (
    "node is not installed, so the Node reference clients cannot run: "
    "install Node.js 20 and npm, then run `make setup`"
)
# A command line argument is at most 128 KiB on Linux (MAX_ARG_STRLEN); the expected
# answer travels in one, so a record near that size cannot be checked by the load client.
MAX_ARGUMENT_BYTES = 120_000
READY_TIMEOUT_S = 30.0  # Node's start (about 50 ms) and N subscriptions over loopback
REPORT_TIMEOUT_S = 10.0
STOP_GRACE_S = 2.0


class SubscriberKind(enum.Enum):
    """The protocols the reference subscribers speak, each with its script."""

    WEBSOCKET = "ws-subscribe.mjs"
    SSE = "sse-subscribe.mjs"

    @classmethod
    def named(cls, kind: SubscriberKind | str) -> SubscriberKind:
        """`kind` itself, or the kind of that lower-case name; ValueError if none."""
        if isinstance(kind, SubscriberKind):
            return kind
        try:
            return cls[kind.upper()]
        except KeyError:
            known = ", ".join(member.name.lower() for member in cls)
            raise ValueError(f"no reference subscriber for {kind!r} (known: {known})") from None


@dataclass(frozen=True)
class WsLoadReport:
    """What ws-load.mjs measured over its window (after the warm-up)."""

    requests: int  # due in the window and answered right
    errors: int  # wrong answers, lost requests, failed connections, requests never sent
    timeouts: int  # due in the window and still unanswered 5 s after it closed
    elapsed_s: float  # the window as the script measured it
    rate_per_s: float  # requests / elapsed_s
    cpu_s: float  # the script's CPU time (user + system) over the window
    p50_us: float | None  # from the actual send to the answer; None when nothing answered
    mean_us: float | None


def missing_reference() -> str | None:
    """None when the reference clients can run: `node` on PATH and the packages installed
    in reference/node_modules; otherwise the one sentence that says how to get them."""
    if shutil.which("node") is None:
        return NODE_NOT_FOUND
    if not all((REFERENCE_DIR / "node_modules" / name).is_dir() for name in NODE_PACKAGES):
        return NOT_INSTALLED
    return None


def node_version() -> str | None:
    """Node's version (`v20.20.2`), or None when it is not installed or will not say."""
    node = shutil.which("node")
    if node is None:
        return None
    try:
        completed = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    version = completed.stdout.strip()
    return version if completed.returncode == 0 and version else None


def _node_command(script: str, settings: dict[str, Any]) -> list[str]:
    problem = missing_reference()
    if problem is not None:
        raise ToolFailed(problem)
    argument = json.dumps(settings)
    if len(argument.encode()) > MAX_ARGUMENT_BYTES:
        raise ToolFailed(
            f"{script}'s settings are {len(argument.encode()):,} bytes, more than a command "
            f"line carries ({MAX_ARGUMENT_BYTES:,}): use a smaller payload"
        )
    return [shutil.which("node") or "node", str(REFERENCE_DIR / script), argument]


def _in_child(pin: Callable[[], None] | None) -> Callable[[], None]:
    """Between fork and exec: die with the runner, and go to the generators' CPUs."""

    def prepare() -> None:
        die_with_parent()
        if pin is not None:
            pin()

    return prepare


def _report(cls: type, script: str, line: str) -> Any:
    """The frozen dataclass `cls` from the JSON line a script printed; ToolFailed if the
    line is not one."""
    try:
        values = json.loads(line)
        return cls(**{field.name: values[field.name] for field in fields(cls)})
    except (ValueError, KeyError, TypeError):
        raise ToolFailed(f"{script} printed something unreadable: {line.strip()[:200]!r}") from None


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def run_ws_load(
    url: str,
    connections: int,
    streams_per_connection: int,
    rate_per_s: float,
    warmup_s: float,
    duration_s: float,
    user_id: int,
    expected_result: bytes,
    pin: Callable[[], None] | None = None,
) -> WsLoadReport:
    """Run ws-load.mjs to its end against the WebSocket request/response server at `url`:
    get_user `user_id` at `rate_per_s` over `connections` connections (up to
    `streams_per_connection` requests in flight on each), every answer checked against
    `expected_result` (the user record as the server encodes it). `pin` runs in the child
    before it starts (pinning it to the generators' CPUs).

    Raises ToolFailed with one sentence if it cannot start, exits with an error, prints
    something unreadable, or runs past its warm-up and window plus a grace."""
    script = "ws-load.mjs"
    command = _node_command(
        script,
        {
            "url": url,
            "connections": connections,
            "streams_per_connection": streams_per_connection,
            "rate_per_s": rate_per_s,
            "warmup_s": warmup_s,
            "duration_s": duration_s,
            "user_id": user_id,
            "expected_result": expected_result.decode(),
        },
    )
    timeout_s = warmup_s + duration_s + TOOL_TIMEOUT_GRACE_S
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            preexec_fn=_in_child(pin),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ToolFailed(f"{script} did not finish within {timeout_s:g} s") from None
    except OSError as exc:
        raise ToolFailed(f"{script} could not be started: {exc}") from None
    if completed.returncode != 0:
        detail = _last_line(completed.stderr) or _last_line(completed.stdout) or "no output"
        raise ToolFailed(f"{script} exited with code {completed.returncode}: {detail}")
    return _report(WsLoadReport, script, _last_line(completed.stdout))


class ReferenceSubscribers:
    """N reference subscribers of one kind in one Node process, for one measured window.

        with ReferenceSubscribers("sse", url, subscribers=100) as subscribers:
            ...  # the window opens
            subscribers.begin()
            ...  # the window closes
            report = subscribers.finish()

    Entering starts the script and returns once every subscriber is connected (ToolFailed
    if that fails or takes longer than `ready_timeout_s`); leaving always stops the
    process by its id, SIGTERM then SIGKILL after a grace, on errors too. It runs in its
    own session, so a Ctrl-C at the terminal reaches the runner, which stops it.
    """

    def __init__(
        self,
        kind: SubscriberKind | str,
        url: str,
        subscribers: int,
        pin: Callable[[], None] | None = None,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> None:
        self.kind = SubscriberKind.named(kind)
        self.script = self.kind.value
        self.url = url
        self.subscribers = subscribers
        self.pin = pin
        self.ready_timeout_s = ready_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._selector: selectors.BaseSelector | None = None
        self._buffer = b""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> ReferenceSubscribers:
        command = _node_command(self.script, {"url": self.url, "subscribers": self.subscribers})
        # stderr to a file: a pipe nobody reads could fill and stall the script.
        self._stderr = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                preexec_fn=_in_child(self.pin),
                start_new_session=True,
            )
            self._selector = selectors.DefaultSelector()
            self._selector.register(self.process.stdout, selectors.EVENT_READ)
            ready = self._read_json_line(self.ready_timeout_s, "connect its subscribers")
            if ready.get("ready") != self.subscribers:
                raise ToolFailed(f"{self.script} said it was ready with {ready!r}")
        except OSError as exc:
            self.stop()
            raise ToolFailed(f"{self.script} could not be started: {exc}") from None
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def begin(self) -> None:
        """The measured window opens: the script starts counting events and its CPU."""
        self._tell("start")

    def finish(self, timeout_s: float = REPORT_TIMEOUT_S) -> SubscriberReport:
        """The measured window closes: what the script counted since `begin()`."""
        self._tell("end")
        line = self._read_line(timeout_s, "report")
        return _report(SubscriberReport, self.script, line)

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM, a grace to exit, then SIGKILL; safe to call twice. A stopping signal
        that arrives meanwhile is raised once the process is gone."""
        with signals.deferred():
            self._stop(grace_s)

    def _stop(self, grace_s: float) -> None:
        process = self.process
        if process is not None:
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _tell(self, command: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        try:
            self.process.stdin.write(command.encode() + b"\n")
            self.process.stdin.flush()
        except OSError:
            raise ToolFailed(self._exited(f"before it was told {command!r}")) from None

    def _read_json_line(self, timeout_s: float, waiting_for: str) -> dict:
        line = self._read_line(timeout_s, waiting_for)
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise ToolFailed(f"{self.script} printed something unreadable: {line[:200]!r}")
        return value

    def _read_line(self, timeout_s: float, waiting_for: str) -> str:
        """The script's next line on stdout, waited for at most `timeout_s`."""
        assert self.process is not None and self.process.stdout is not None
        assert self._selector is not None
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0 or not self._selector.select(remaining_s):
                raise ToolFailed(f"{self.script} did not {waiting_for} within {timeout_s:g} s")
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                raise ToolFailed(self._exited(f"before it could {waiting_for}"))
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode(errors="replace")

    def _exited(self, when: str) -> str:
        """The sentence for a script that stopped `when`, with its last line of stderr."""
        assert self.process is not None
        try:
            code = self.process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            code = None
        detail = "no output"
        if self._stderr is not None:
            self._stderr.seek(0)
            detail = _last_line(self._stderr.read().decode(errors="replace")) or detail
        status = "closed its output" if code is None else f"exited with code {code}"
        return f"{self.script} {status} {when}: {detail}"


def node_subscriber_probe(kind: SubscriberKind, url: Callable[[Target], str]) -> SubscriberProbe:
    """The SubscriberProbe of a push pattern these scripts follow: `kind`'s script,
    pointed at `url(target)`."""
    return SubscriberProbe(
        tool=kind.value.removesuffix(".mjs"),
        missing=missing_reference,
        version=node_version,
        start=lambda target, count, options, pin: ReferenceSubscribers(
            kind, url(target), count, pin
        ),
    )
