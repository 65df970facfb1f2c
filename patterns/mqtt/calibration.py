"""The independent subscriber that follows MQTT, for `bench calibrate`: Mosquitto's own
command-line subscriber, `mosquitto_sub` (Debian's mosquitto-clients, in C on
libmosquitto), one process per subscriber, as the tool is made to run: one of it against
one harness subscriber, at 1,000 events a second.

Each subscribes with the pattern's topic and QoS (QoS 1 with a persistent session, as the
harness's subscribers have), Nagle off (`--nodelay`, as every socket of the harness), and
prints every message it gets, flushed, to a file of its own. Counted between `begin()`
and `finish()`: the lines added to the files (each is one event, read for its number:
a repeat or a gap is an error), and the processes' CPU time from the scheduler's own
count (bench/resources.py). The printing is part of what the tool costs: it has no
option not to.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable

import orjson
import psutil

from bench.resources import process_run_ns
from bench.serverproc import die_with_parent
from bench.subscriber_tools import SubscriberProbe, SubscriberReport

TOOL = "mosquitto_sub"
CONNECT_TIMEOUT_S = 10.0
STOP_GRACE_S = 2.0


def _missing() -> str | None:
    if shutil.which(TOOL):
        return None
    return f"{TOOL} is not installed (apt-get install mosquitto-clients)"


def _version() -> str | None:
    try:
        completed = subprocess.run([TOOL, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    for line in (completed.stdout + completed.stderr).splitlines():
        if line.startswith(f"{TOOL} version"):
            return line.strip()
    return None


class MosquittoSubscribers:
    """`count` mosquitto_sub processes, for one measured window."""

    def __init__(self, target, count: int, options, pin: Callable[[], None] | None) -> None:
        self.target = target
        self.count = count
        self.options = options
        self.pin = pin
        self.processes: list[subprocess.Popen] = []
        self.outputs: list = []
        self._offsets: list[int] = []
        self._cpu_ns = 0

    def _command(self, index: int) -> list[str]:
        qos = self.options.qos
        command = [TOOL, "-h", self.target.host, "-p", str(self.target.port)]
        command += ["-t", self.options.topic, "-q", str(qos), "--nodelay"]
        command += ["-i", f"calibration-{os.getpid()}-{index}"]
        return [*command, "-c"] if qos == 1 else command  # QoS 1: a persistent session

    def _in_child(self) -> None:
        die_with_parent()
        if self.pin is not None:
            self.pin()

    def __enter__(self) -> MosquittoSubscribers:
        try:
            for index in range(self.count):
                output = tempfile.TemporaryFile()
                self.outputs.append(output)
                self.processes.append(
                    subprocess.Popen(
                        self._command(index),
                        stdout=output,
                        stderr=subprocess.DEVNULL,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                        preexec_fn=self._in_child,
                    )
                )
            self._wait_connected()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_connected(self) -> None:
        """Until every process holds a connection to the broker (its subscription follows
        in the same round trip; the calibration's warm-up covers it)."""
        from bench.loadtools import ToolFailed

        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        waiting = list(self.processes)
        while waiting:
            if time.monotonic() > deadline:
                raise ToolFailed(f"{TOOL} did not connect within {CONNECT_TIMEOUT_S:g} s")
            for process in list(waiting):
                if process.poll() is not None:
                    raise ToolFailed(f"{TOOL} exited with code {process.returncode}")
                with contextlib.suppress(psutil.Error):
                    connections = psutil.Process(process.pid).net_connections("tcp")
                    if any(
                        c.status == psutil.CONN_ESTABLISHED
                        and c.raddr
                        and c.raddr.port == self.target.port
                        for c in connections
                    ):
                        waiting.remove(process)
            time.sleep(0.01)

    def _cpu_now_ns(self) -> int:
        return sum(process_run_ns(process.pid) or 0 for process in self.processes)

    def begin(self) -> None:
        self._cpu_ns = self._cpu_now_ns()
        self._offsets = [os.fstat(output.fileno()).st_size for output in self.outputs]

    def finish(self) -> SubscriberReport:
        cpu_s = (self._cpu_now_ns() - self._cpu_ns) / 1e9
        events = errors = 0
        for output, offset in zip(self.outputs, self._offsets, strict=True):
            output.seek(offset)
            lines = output.read().split(b"\n")[:-1]  # a line still being written waits
            last = None
            for line in lines:
                try:
                    seq = orjson.loads(line)["seq"]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    errors += 1
                    continue
                if last is not None and seq != last + 1:
                    errors += 1
                last = seq
                events += 1
        return SubscriberReport(events, errors, cpu_s, self.count)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for output in self.outputs:
            output.close()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# One subscriber a side: mosquitto_sub is one subscriber per process, and a process wakes
# once per event whatever its subscribers: ten processes against one generator holding ten
# would weigh processes, not subscribers.
TOOL_PROBE = SubscriberProbe(
    tool=TOOL,
    missing=_missing,
    version=_version,
    start=MosquittoSubscribers,
    subscribers=1,
    rate_per_s=1000.0,
)
