"""A path between the servers' network namespace and the clients', for one trial.

`NetworkPath(spec, log_path)` starts the packet-level emulator (emulator.py) and gives the
two namespaces as paths `Place(netns=...)` enters: servers and brokers go to
`server_netns` and listen on `SERVER_ADDRESS`; generators, subscribers and webhook
receivers go to `client_netns` and are reached at `CLIENT_ADDRESS`. Every packet between
them crosses the emulator, which delays, jitters, rate-limits and drops it per direction.

The namespaces are held by the emulator's open descriptors only, so they disappear with it:
`stop()` (by pid), a SIGKILL of the emulator, or the death of the process that started it
(its control pipe closes; started from the main thread, the kernel also sends it SIGKILL).
Processes that entered a namespace keep it until they exit too: whoever starts them stops
them first.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bench.network.emulator import (
    CLIENT_ADDRESS,
    DEFAULT_QUEUE_PACKETS,
    SERVER_ADDRESS,
    LinkConfig,
)
from bench.network.spec import PathSpec
from bench.resources import Place
from bench.templates import (
    TemplateChild,
    TemplateFailed,
    can_fork_from_template,
    fork_from_template,
)

__all__ = [
    "CLIENT_ADDRESS",
    "SERVER_ADDRESS",
    "DirectionStats",
    "NetworkPath",
    "PathStats",
    "PathUnavailable",
    "network_namespaces",
    "path_unavailable_reason",
]

PROJECT_DIR = Path(__file__).resolve().parents[2]
EMULATOR_MODULE = "bench.network.emulator"
READY_TIMEOUT_S = 10.0  # a start takes about 0.1 s; a loaded machine may take longer
ANSWER_TIMEOUT_S = 5.0
STOP_GRACE_S = 3.0
_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21  # unshare(CLONE_NEWNET) and setns() need it
_CLONE_NEWNET = 0x40000000


class PathUnavailable(Exception):
    """This machine cannot build the path; the message says why, in one sentence."""


def _effective_capabilities() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def _try_namespace_and_tun() -> str | None:
    """Build a namespace with a TUN device in a throwaway thread (both go with the thread):
    the one check that also catches a container's seccomp or a kernel without TUN."""
    outcome: list[str | None] = []

    def attempt() -> None:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        if libc.unshare(_CLONE_NEWNET) != 0:
            outcome.append(f"unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())}")
            return
        try:
            tun = os.open("/dev/net/tun", os.O_RDWR)
        except OSError as error:
            outcome.append(f"cannot open /dev/net/tun: {error.strerror}")
            return
        try:
            request = struct.pack("16sH22x", b"probe0", 0x0001 | 0x1000)  # IFF_TUN|IFF_NO_PI
            fcntl.ioctl(tun, 0x400454CA, request)  # TUNSETIFF
        except OSError as error:
            outcome.append(f"cannot create a TUN device: {error.strerror}")
            return
        finally:
            os.close(tun)
        outcome.append(None)

    thread = threading.Thread(target=attempt, name="netns-probe", daemon=True)
    thread.start()
    thread.join()
    return outcome[0] if outcome else "the namespace probe failed"


_reason_checked: list[str | None] = []


def path_unavailable_reason() -> str | None:
    """None when this machine can build paths; else why not, in one sentence."""
    if _reason_checked:
        return _reason_checked[0]
    if not sys.platform.startswith("linux"):
        reason: str | None = "network paths need Linux (network namespaces and TUN devices)"
    elif not _effective_capabilities() >> _CAP_NET_ADMIN & 1:
        reason = "network paths need root (CAP_NET_ADMIN) to create namespaces and TUN devices"
    elif not _effective_capabilities() >> _CAP_SYS_ADMIN & 1:
        reason = "network paths need root (CAP_SYS_ADMIN) to create network namespaces"
    elif not os.path.exists("/dev/net/tun"):
        reason = "network paths need TUN devices and this machine has no /dev/net/tun"
    else:
        failure = _try_namespace_and_tun()
        reason = f"network paths cannot be built here: {failure}" if failure else None
    _reason_checked.append(reason)
    return reason


def network_namespaces() -> set[int]:
    """The inode of every network namespace some process is in or holds open (what
    `lsns -t net` lists, plus namespaces held only by descriptors, as the emulator's are)."""
    found: set[int] = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        with contextlib.suppress(OSError):
            found.add(os.stat(f"/proc/{pid}/ns/net").st_ino)
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in descriptors:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("net:["):
                found.add(int(target[5:-1]))
    return found


@dataclass(frozen=True)
class DirectionStats:
    """One direction's counters since the path started. `packets` (and `bytes`, IP
    packets' whole length) is what the sending side put on the path; every packet is then
    delivered (`delivered_bytes` of them), dropped for one reason, or still on its way
    (`in_flight`)."""

    packets: int = 0
    bytes: int = 0
    delivered: int = 0
    delivered_bytes: int = 0
    dropped_loss: int = 0
    dropped_queue: int = 0
    dropped_outage: int = 0
    dropped_write: int = 0  # refused by the receiving device: the emulator or kernel behind
    late: int = 0  # written more than 0.5 ms after their release time
    in_flight: int = 0
    late_max_us: int = 0  # the latest of them, since the path started

    @property
    def loss_pct(self) -> float:
        """Random loss the path applied, % of the packets sent."""
        return 100 * self.dropped_loss / self.packets if self.packets else 0.0

    @property
    def dropped_pct(self) -> float:
        """Every drop (loss, full queue, outage), % of the packets sent."""
        dropped = self.dropped_loss + self.dropped_queue + self.dropped_outage + self.dropped_write
        return 100 * dropped / self.packets if self.packets else 0.0

    def minus(self, earlier: DirectionStats) -> DirectionStats:
        """What happened between `earlier` and this (in_flight is this one's)."""
        return DirectionStats(
            **{
                name.name: getattr(self, name.name) - getattr(earlier, name.name)
                for name in fields(self)
                if name.name not in ("in_flight", "late_max_us")
            },
            in_flight=self.in_flight,
            late_max_us=self.late_max_us,
        )

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "loss_pct": round(self.loss_pct, 4),
            "dropped_pct": round(self.dropped_pct, 4),
        }

    @classmethod
    def from_dict(cls, document: dict) -> DirectionStats:
        return cls(**{name.name: int(document.get(name.name, 0)) for name in fields(cls)})


@dataclass(frozen=True)
class PathStats:
    """The path's counters: up (client to server) and down (server to client), the
    outage windows applied so far (monotonic ns, cut at the moment of asking), and the
    emulator's CPU seconds since it started."""

    up: DirectionStats
    down: DirectionStats
    outages: list[tuple[int, int]] = field(default_factory=list)
    emulator_cpu_s: float = 0.0
    at_ns: int = 0  # when the emulator answered (monotonic ns)

    def minus(self, earlier: PathStats) -> PathStats:
        """Counters and CPU between `earlier` and this; outages that opened since."""
        return PathStats(
            up=self.up.minus(earlier.up),
            down=self.down.minus(earlier.down),
            outages=[window for window in self.outages if window[1] > earlier.at_ns],
            emulator_cpu_s=round(self.emulator_cpu_s - earlier.emulator_cpu_s, 6),
            at_ns=self.at_ns,
        )

    def to_dict(self) -> dict:
        return {
            "up": self.up.to_dict(),
            "down": self.down.to_dict(),
            "outages": [list(window) for window in self.outages],
            "emulator_cpu_s": self.emulator_cpu_s,
            "at_ns": self.at_ns,
        }

    @classmethod
    def from_dict(cls, document: dict) -> PathStats:
        return cls(
            up=DirectionStats.from_dict(document["up"]),
            down=DirectionStats.from_dict(document["down"]),
            outages=[(int(start), int(end)) for start, end in document.get("outages", [])],
            emulator_cpu_s=float(document.get("emulator_cpu_s", 0.0)),
            at_ns=int(document.get("at_ns", document.get("now_ns", 0))),
        )


def link_config(
    spec: PathSpec,
    seed: int,
    queue_packets: int = DEFAULT_QUEUE_PACKETS,
    congestion_control: str | None = None,
) -> dict:
    """What the emulator is told, from a resolved path."""
    return asdict(
        LinkConfig(
            rtt_ms=spec.rtt_ms,
            jitter_ms=spec.jitter_ms,
            down_mbit=spec.down_mbit,
            up_mbit=spec.up_mbit,
            loss_pct=spec.loss_pct,
            outages=spec.outages.model_dump() if spec.outages else None,
            queue_packets=queue_packets,
            seed=seed,
            congestion_control=congestion_control,
        )
    )


class NetworkPath:
    """One emulated path, its two namespaces and the emulator process between them.

    A context manager: `with NetworkPath(spec, log) as path: ...` starts it and stops it.
    Not for loopback specs (`spec.emulated` False): those need no path.
    """

    def __init__(
        self,
        spec: PathSpec,
        log_path: Path,
        cpus: tuple[int, ...] | None = None,
        seed: int = 0,
        queue_packets: int = DEFAULT_QUEUE_PACKETS,
        congestion_control: str | None = None,
    ) -> None:
        self.spec = spec
        self.log_path = Path(log_path)
        self.cpus = cpus
        self.seed = seed
        self.queue_packets = queue_packets
        self.congestion_control = congestion_control
        self.server_netns = ""
        self.client_netns = ""
        self.emulator_pid = 0
        self.tcp_congestion_control = ""  # in both namespaces, as the kernel reports it
        self.scheduling = ""  # the emulator's: SCHED_FIFO, or why not
        self._process: subprocess.Popen | TemplateChild | None = None
        self._pending = b""
        self._lock = threading.Lock()
        # Written by the emulator when the link is up (pid, namespaces), for onlookers.
        self._ready_file = self.log_path.with_name(self.log_path.name + ".ready")

    def __enter__(self) -> NetworkPath:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the emulator and wait until both namespaces and the link are up.

        Raises PathUnavailable (with the emulator's last log line if it failed)."""
        reason = path_unavailable_reason()
        if reason:
            raise PathUnavailable(reason)
        if self._process is not None:
            raise RuntimeError("this path has already been started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        ready_file = self._ready_file
        with contextlib.suppress(FileNotFoundError):
            ready_file.unlink()
        config = json.dumps(
            link_config(self.spec, self.seed, self.queue_packets, self.congestion_control)
        )
        command = [sys.executable, "-m", EMULATOR_MODULE, "--config", config]
        command += ["--ready", str(ready_file)]
        # Started fresh, it is our child: it checks we are still there and dies with us.
        # Forked from its template, the template's child: the template dies with us and
        # its children with it (bench/templates.py), and the end of its standard input
        # (our pipe) stops it either way.
        fresh = [*command, "--parent", str(os.getpid())]
        if threading.current_thread() is threading.main_thread():
            fresh.append("--deathsig")
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(PROJECT_DIR), *filter(None, [environment.get("PYTHONPATH")])]
        )
        try:
            self._process = self._from_template(command) or self._fresh(fresh, environment)
        except TemplateFailed as exc:
            raise PathUnavailable(f"the network emulator could not be started: {exc}") from None
        self.emulator_pid = self._process.pid
        Place(cpus=self.cpus).put(self.emulator_pid)
        try:
            ready = self._read_answer(READY_TIMEOUT_S)["ready"]
        except (PathUnavailable, KeyError) as failure:
            self.stop()
            raise PathUnavailable(
                f"the network emulator did not start ({failure}): {self._log_tail()}"
            ) from None
        except BaseException:  # Ctrl-C while waiting: __exit__ will not run
            self.stop()
            raise
        self.server_netns = ready["server_netns"]
        self.client_netns = ready["client_netns"]
        self.tcp_congestion_control = ready["tcp_congestion_control"]
        self.scheduling = ready.get("scheduling", "")

    def _fresh(self, command: list[str], environment: dict[str, str]) -> subprocess.Popen:
        with open(self.log_path, "ab") as log:
            # Its own session: a Ctrl-C in the terminal reaches the runner, which stops
            # the emulator after the processes that use the path.
            return subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
                env=environment,
            )

    def _from_template(self, command: list[str]) -> TemplateChild | None:
        """Forked from the emulator's template (bench/templates.py: a session of its own
        as well), with the same pipes; None when templates are switched off."""
        if not can_fork_from_template(command):
            return None
        stdin_read, stdin_write = os.pipe()
        stdout_read, stdout_write = os.pipe()
        log = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        stdin, stdout = os.fdopen(stdin_write, "wb"), os.fdopen(stdout_read, "rb")
        try:
            return fork_from_template(
                command, None, None, (stdin_read, stdout_write, log), stdin, stdout
            )
        except BaseException:
            stdin.close()
            stdout.close()
            raise
        finally:
            for fd in (stdin_read, stdout_write, log):
                os.close(fd)

    def _log_tail(self) -> str:
        """The emulator's last words: its log's last line (a sentence when it failed)."""
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return f"no log at {self.log_path}"
        return f"{lines[-1].strip()} (log: {self.log_path})" if lines else "its log is empty"

    def _read_answer(self, timeout_s: float) -> dict[str, Any]:
        """The next line the emulator writes, as JSON; PathUnavailable if it does not
        answer within `timeout_s` or has exited."""
        process = self._process
        if process is None or process.stdout is None:
            raise PathUnavailable("the network path is not running")
        fd = process.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PathUnavailable(f"no answer from the emulator within {timeout_s:g} s")
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(1.0)
                raise PathUnavailable(f"the emulator exited with status {process.returncode}")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return json.loads(line)

    def _ask(self, request: dict) -> dict[str, Any]:
        with self._lock:
            process = self._process
            if process is None or process.stdin is None or process.poll() is not None:
                raise PathUnavailable("the network path is not running")
            try:
                process.stdin.write(json.dumps(request).encode() + b"\n")
                process.stdin.flush()
            except BrokenPipeError:
                raise PathUnavailable("the network emulator has exited") from None
            answer = self._read_answer(ANSWER_TIMEOUT_S)
        if "error" in answer:
            raise RuntimeError(f"the network emulator refused {request}: {answer['error']}")
        return answer

    def begin_outages(self, window_start_ns: int) -> None:
        """Start the outage schedule: the first outage opens `outages.first_at_s` after
        `window_start_ns` (time.monotonic_ns()). Nothing happens without outages."""
        self._ask({"begin_outages": int(window_start_ns)})

    def end_outages(self, at_ns: int) -> None:
        """No outage opens or lasts past `at_ns` (the end of the measured window)."""
        self._ask({"end_outages": int(at_ns)})

    def stats(self) -> PathStats:
        """The counters so far (a round trip over a pipe: cheap)."""
        return PathStats.from_dict(self._ask({"stats": True}))

    def stop(self) -> None:
        """Stop the emulator, by pid: SIGTERM, then SIGKILL after a grace. The namespaces
        go with it (once nothing else is in them). Idempotent."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        with contextlib.suppress(FileNotFoundError):
            self._ready_file.unlink()
