"""Independent load tools written in C: wrk (HTTP/1.1) and h2load (HTTP/2, for gRPC).

Each pattern they can drive names a `ToolProbe` in its entry (the same get_user the
harness's driver sends, and where the user is in the answer); this module holds the
pacing that holds a tool at a fixed rate, the command line, the check of the tool's
answer, and the parsing of what the tool prints.
`bench calibrate` uses them to measure the harness's own generator against them.
"""

from __future__ import annotations

import math
import re
import resource
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

GET_USER_ID = 1
TOOL_TIMEOUT_GRACE_S = 30.0
PROBE_TIMEOUT_S = 10.0
INSTALL_HINTS = {
    "wrk": "apt-get install wrk",
    "h2load": "apt-get install nghttp2-client",
    "curl": "apt-get install curl",
}
_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


class ToolFailed(Exception):
    """A tool exited with an error, printed something we cannot read, or sent a request
    whose answer is wrong. The message is one sentence for people."""


@dataclass(frozen=True)
class ToolRequest:
    """One pattern's get_user as an independent tool sends it."""

    tool: str  # "wrk" or "h2load"
    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    http2: bool = False
    streams_per_connection: int = 1
    # A tool that checks every answer itself (the Node reference clients) needs no probe
    # by curl: wrk and h2load count statuses only.
    checks_answers: bool = False
    scheme: str = "http"  # how the tool's URL starts ("ws" for WebSocket)

    def describe(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class ToolOutput:
    """What a tool printed about its run, in our units."""

    requests: int  # completed requests, the whole run
    elapsed_s: float
    rate_per_s: float
    errors: int  # failed requests of any kind, wrong statuses included
    p50_us: float | None  # h2load prints no percentiles
    mean_us: float | None


@dataclass(frozen=True)
class ToolRun:
    report: ToolOutput
    cpu_s: float  # the tool process's own CPU time (user + system), start to exit


@dataclass(frozen=True)
class ToolProbe:
    """How an independent tool drives one pattern: its get_user as the harness's driver
    sends it, and where the user is in the answer (raising ToolFailed, or ValueError if
    the answer cannot be decoded). A pattern's entry names its probe; `bench calibrate`
    measures the patterns that have one."""

    request: Callable[[int], ToolRequest]  # user id -> the request
    user_in_answer: Callable[[ProbeAnswer], dict]


def tool_probes() -> dict[str, ToolProbe]:
    """Every request/response pattern an independent tool can drive, with how (a push
    pattern's probe is a SubscriberProbe: bench/subscriber_tools.py)."""
    from bench.pattern import load
    from bench.registry import PATTERNS

    probes = {
        name: load(pattern.tool_probe_path)
        for name, pattern in PATTERNS.items()
        if pattern.tool_probe_path
    }
    return {name: probe for name, probe in probes.items() if isinstance(probe, ToolProbe)}


def tool_requests(user_id: int = GET_USER_ID) -> dict[str, ToolRequest]:
    """Per pattern an independent tool can drive: its get_user, as the harness sends it."""
    return {name: probe.request(user_id) for name, probe in tool_probes().items()}


def missing_tool(name: str) -> str | None:
    """None if `name` is on PATH; otherwise the sentence that says how to install it."""
    if shutil.which(name):
        return None
    return f"{name} is not installed ({INSTALL_HINTS.get(name, 'install it')})"


def tool_version(name: str) -> str | None:
    command = {"wrk": ["wrk", "-v"], "h2load": ["h2load", "--version"]}[name]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    first = (completed.stdout + completed.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0].strip() if first else None


# wrk --------------------------------------------------------------------------------------
def lua_string(data: bytes) -> str:
    """`data` as a Lua string literal; every byte outside printable ASCII escaped."""
    out = []
    for byte in data:
        char = chr(byte)
        if char in '"\\' or not 32 <= byte < 127:
            out.append(f"\\{byte:03d}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


# wrk calls delay() after each response, before that connection's next request. A fixed
# delay would make each connection closed-loop with think time (rate = connections /
# (delay + latency), 6% short at 1,000/s on REST) and let the connections' timers fire
# together, in bursts that cost wrk a third less CPU per request. Handing out send slots on
# one schedule (an interval apart, from a monotonic clock through LuaJIT's FFI) keeps the
# aggregate rate on target and the sends spread out as the harness's open loop spreads
# them, to within wrk's timer resolution (whole milliseconds). Checked with strace at
# 1,000/s: three epoll_wait calls per request, so no sends share a wake-up. A slot already
# past is used at once.
_WRK_PACING = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } pb_timespec;
int clock_gettime(int clock_id, pb_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local now_ts = ffi.new("pb_timespec")
local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now_ts)
  return tonumber(now_ts.tv_sec) * 1000 + tonumber(now_ts.tv_nsec) / 1e6
end
local next_slot_ms = nil
function delay()
  local now = now_ms()
  next_slot_ms = (next_slot_ms or now) + interval_ms
  local wait_ms = next_slot_ms - now
  if wait_ms <= 0 then return 0 end
  return math.floor(wait_ms + 0.5)
end
"""


def wrk_script(request: ToolRequest, rate_per_s: float) -> str:
    """A wrk Lua script: the request (set once: no request() function, so wrk formats it
    once and sends the same bytes each time) and pacing at `rate_per_s` over all
    connections (one thread)."""
    lines = [f"wrk.method = {lua_string(request.method.encode())}"]
    if request.body:
        lines.append(f"wrk.body = {lua_string(request.body)}")
    for name, value in request.headers:
        lines.append(f"wrk.headers[{lua_string(name.encode())}] = {lua_string(value.encode())}")
    lines.append(f"local interval_ms = {1000.0 / rate_per_s!r}")
    return "\n".join(lines) + "\n" + _WRK_PACING


def wrk_command(url: str, script: Path, connections: int, duration_s: int) -> list[str]:
    # One thread: one event loop, like the harness's one generator process.
    return [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]


def _microseconds(value: str, unit: str) -> float:
    return round(float(value) * _UNITS_US[unit], 1)


def parse_wrk(output: str) -> ToolOutput:
    """What `wrk --latency` printed: requests, rate, errors, p50 and mean latency (us)."""
    counted = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if counted is None or rate is None:
        raise ToolFailed(f"wrk printed no request count or rate: {output.strip()[:200]!r}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if int(counted.group(1)) == 0:
        raise ToolFailed("wrk completed no request")
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M)
    mean = re.search(r"^\s+Latency\s+([\d.]+)(us|ms|s|m|h)\s", output, re.M)
    return ToolOutput(
        requests=int(counted.group(1)),
        elapsed_s=_microseconds(counted.group(2), counted.group(3)) / 1e6,
        rate_per_s=float(rate.group(1)),
        errors=(int(non_2xx.group(1)) if non_2xx else 0)
        + (sum(map(int, socket_errors.groups())) if socket_errors else 0),
        p50_us=_microseconds(*p50.groups()) if p50 else None,
        mean_us=_microseconds(*mean.groups()) if mean else None,
    )


# h2load -----------------------------------------------------------------------------------
def h2load_command(
    url: str, request: ToolRequest, body: Path, connections: int, rate_per_s: float, duration_s: int
) -> list[str]:
    """h2load at `rate_per_s` in all, over as many HTTP/2 connections as the harness's
    `connections` calls share (one, with the gRPC driver's default).

    `--rps` paces each client with its own timer, catching up on slots it missed. One
    stream at a time (`-m1`) because with more h2load sends in bursts: measured here at
    1,000/s, `-m8` sent four in five requests in bursts of eight (and `-c8` clients' timers
    fire together), which costs it about a third less CPU per request than the evenly
    spaced sends the harness makes. At a rate this far below the server's ceiling a
    request rarely waits for the one before it."""
    clients = max(1, math.ceil(connections / request.streams_per_connection))
    headers = [item for name, value in request.headers for item in ("-H", f"{name}: {value}")]
    return [
        "h2load",
        "-t1",
        f"-c{clients}",
        "-m1",
        f"-D{duration_s}",
        f"--rps={rate_per_s / clients:g}",
        "-d",
        str(body),
        *headers,
        url,
    ]


def parse_h2load(output: str) -> ToolOutput:
    """What h2load printed. Its `failed` includes `errored` and `timeout`, and non-success
    statuses (4xx, 5xx); 3xx counts as success there, and as an error here."""
    finished = re.search(r"finished in ([\d.]+)(us|ms|s|m|h), ([\d.]+) req/s", output)
    counts = re.search(
        r"requests: \d+ total, \d+ started, (\d+) done, \d+ succeeded, (\d+) failed", output
    )
    statuses = re.search(r"status codes: \d+ 2xx, (\d+) 3xx", output)
    request_time = re.search(
        r"time for request:\s+[\d.]+\w+\s+[\d.]+\w+\s+([\d.]+)(us|ms|s|m|h)", output
    )
    if finished is None or counts is None:
        raise ToolFailed(f"h2load printed no request counts: {output.strip()[:200]!r}")
    if int(counts.group(1)) == 0:
        # h2load exits with 0 even when no request got through (say, an HTTP/1.1-only server).
        raise ToolFailed("h2load completed no request: does the server speak HTTP/2 (h2c)?")
    return ToolOutput(
        requests=int(counts.group(1)),
        elapsed_s=_microseconds(finished.group(1), finished.group(2)) / 1e6,
        rate_per_s=float(finished.group(3)),
        errors=int(counts.group(2)) + (int(statuses.group(1)) if statuses else 0),
        p50_us=None,
        mean_us=_microseconds(*request_time.groups()) if request_time else None,
    )


# Running ----------------------------------------------------------------------------------
def tool_command(
    request: ToolRequest,
    url: str,
    files: Path,
    connections: int,
    rate_per_s: float,
    duration_s: int,
) -> tuple[list[str], Callable[[str], ToolOutput]]:
    """The command that drives `url` with `request` at `rate_per_s`, and its parser. The
    script or body file it needs is written into the folder `files`."""
    if request.tool == "wrk":
        script = files / "wrk.lua"
        script.write_text(wrk_script(request, rate_per_s))
        return wrk_command(url, script, connections, duration_s), parse_wrk
    body = files / "h2load.body"
    body.write_bytes(request.body)
    return h2load_command(url, request, body, connections, rate_per_s, duration_s), parse_h2load


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_tool(
    command: list[str],
    parse: Callable[[str], ToolOutput],
    timeout_s: float,
    preexec: Callable[[], None] | None = None,
) -> ToolRun:
    """Run a tool to its end; its report and its own CPU seconds.

    The CPU time is the difference in this process's reaped children's CPU time around
    the run: the tool is the only child that ends meanwhile (calibration runs one thing at
    a time; generator processes are reaped before). It covers the tool's whole life, its
    start-up included (a few milliseconds, a few per cent at 1,000 requests a second for
    three seconds), which errs in the harness's favour.
    """
    before_s = _children_cpu_s()
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            preexec_fn=preexec,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ToolFailed(f"{command[0]} did not finish within {timeout_s:g} s") from None
    cpu_s = _children_cpu_s() - before_s
    if completed.returncode != 0:
        detail = (completed.stderr or completed.stdout).strip().splitlines()
        raise ToolFailed(
            f"{command[0]} exited with code {completed.returncode}: "
            f"{detail[-1] if detail else 'no output'}"
        )
    return ToolRun(parse(completed.stdout), round(cpu_s, 6))


# Checking the tool's answer ---------------------------------------------------------------
@dataclass(frozen=True)
class ProbeAnswer:
    status: int
    headers: dict[str, str]  # names lower-cased; HTTP/2 trailers included
    body: bytes


def curl_command(url: str, request: ToolRequest, body: Path, headers_out: Path, body_out: Path):
    command = ["curl", "-sS", "--max-time", f"{PROBE_TIMEOUT_S:g}", "-X", request.method]
    command += ["-o", str(body_out), "-D", str(headers_out)]
    if request.http2:
        command.append("--http2-prior-knowledge")  # h2c, as h2load speaks it
    for name, value in request.headers:
        command += ["-H", f"{name}: {value}"]
    if request.body:
        command += ["--data-binary", f"@{body}"]
    return [*command, url]


def parse_curl_headers(text: str) -> tuple[int, dict[str, str]]:
    """The status and the headers (and trailers, which curl writes after them)."""
    status_line = re.match(r"HTTP/[\d.]+ (\d{3})", text)
    if status_line is None:
        raise ToolFailed(f"no HTTP status in the answer: {text[:120]!r}")
    headers = {}
    for line in text.splitlines()[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return int(status_line.group(1)), headers


def probe(url: str, request: ToolRequest, workdir: Path) -> ProbeAnswer:
    """Send the tool's request once with curl: the same method, headers and body bytes."""
    body, headers_out, body_out = (workdir / name for name in ("body", "headers", "answer"))
    body.write_bytes(request.body)
    try:
        completed = subprocess.run(
            curl_command(url, request, body, headers_out, body_out),
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S + 5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ToolFailed(f"curl could not send the tool's request: {exc}") from None
    if completed.returncode != 0:
        raise ToolFailed(f"curl could not send the tool's request: {completed.stderr.strip()}")
    status, headers = parse_curl_headers(headers_out.read_text(errors="replace"))
    return ProbeAnswer(status, headers, body_out.read_bytes() if body_out.exists() else b"")


def json_user(answer: ProbeAnswer, *path: str) -> dict:
    """The user at `path` in a JSON answer; an "error" or "errors" member is a failure."""
    document = orjson.loads(answer.body)
    for key in ("error", "errors"):
        if isinstance(document, dict) and document.get(key):
            raise ToolFailed(f"the answer is an error: {str(document[key])[:160]}")
    for key in path:
        document = document.get(key) if isinstance(document, dict) else None
    if not isinstance(document, dict):
        raise ToolFailed(f"no user at {'.'.join(path) or 'the top'} of the answer")
    return document


def check_answer(pattern: str, answer: ProbeAnswer, expected_user: dict) -> None:
    """The answer to the tool's request is a success carrying the expected user; raises
    ToolFailed with what is wrong. (The tools count statuses only, never bodies.)"""
    if answer.status != 200:
        raise ToolFailed(f"HTTP status {answer.status}, expected 200")
    try:
        user = tool_probes()[pattern].user_in_answer(answer)
    except ValueError as exc:
        raise ToolFailed(f"the answer cannot be decoded: {exc}") from None
    got = (user.get("id"), user.get("email"))
    want = (expected_user["id"], expected_user["email"])
    if got != want:
        raise ToolFailed(f"the answer is user {got}, expected {want}")
