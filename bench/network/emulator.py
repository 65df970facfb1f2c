"""The path between clients and servers: a userspace packet-level link, Mahimahi style.

Run as `python -m bench.network.emulator --config JSON --ready FILE [--parent PID]` (link.py
starts it; nothing else should). It creates two network namespaces, each with a TUN device
`tun0`: the server side is 198.18.0.1 with peer 198.18.0.2, the client side the other way
round (198.18.0.0/15 is the range RFC 2544 reserves for benchmarking). Every IP packet one
side's kernel sends to the other is read here, and written to the other side's device after
what the path does to it, per direction (up = client to server, down = server to client):

1. outage: while an outage window is open every packet is dropped, both ways (also one
   whose delivery time falls inside a window, so that nothing arrives while dark);
2. random loss, one seeded generator per direction (reproducible for a given seed);
3. the bottleneck, when the direction has a rate: a packet leaves at
   max(arrival, link free) + its bits / rate (serialisation, IP bytes, no link-layer
   framing), behind a drop-tail queue of `queue_packets` packets waiting to be serialised
   (default 1000, the limit netem and most qdiscs start with);
4. one-way delay rtt/2, plus jitter drawn uniformly within +-jitter/2 (clipped at 0), never
   reordering: a packet is released no earlier than the one before it in its direction.

The namespaces exist only through this process's open descriptors (never `ip netns add`
bind mounts), so they go when it goes, also after a SIGKILL; processes that entered one
keep it alive until they exit. The process dies with its parent (an end of file on its
standard input; PR_SET_PDEATHSIG with --deathsig), and exits cleanly on SIGTERM or SIGINT.

Control is a line protocol: one JSON object per line on standard input, one JSON line per
answer on standard output:
  {"begin_outages": NS}  the outage schedule starts counting at NS (monotonic ns; the
                         monotonic clock is the same in every namespace)
  {"end_outages": NS}    no outage opens or lasts past NS
  {"stats": true}        counters so far (see `Direction.stats`), the outage windows
                         applied, this process's CPU seconds
When the link is up it writes the ready file (JSON: pid, server_netns, client_netns as
/proc/PID/fd/N paths, tcp_congestion_control) and the same object as {"ready": {...}} on
standard output.

The loop is a plain epoll loop rather than asyncio: per packet it does a read, a few
comparisons and a write, and its timer is a timerfd armed to the nanosecond, where asyncio's
timers (and libuv's) round to milliseconds, which a 1 ms round trip would notice.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time
from collections import deque
from dataclasses import dataclass, field

# A packet written later than this after its release time counts as late (the emulator
# fell behind); 0.5 ms is well above the timerfd's and the loop's own granularity here.
LATE_NS = 500_000
SERVER_ADDRESS = "198.18.0.1"
CLIENT_ADDRESS = "198.18.0.2"
DEVICE = "tun0"
MTU = 1500
DEFAULT_QUEUE_PACKETS = 1000  # netem's default limit; also the usual txqueuelen
READ_BATCH = 64  # packets read from one device before looking at the other and the timer

_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1
_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_SIOCSIFADDR = 0x8916
_SIOCSIFDSTADDR = 0x8918
_SIOCSIFNETMASK = 0x891C
_SIOCSIFMTU = 0x8922
_IFF_UP = 0x1
_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_TIMER_ABSTIME = 1

_libc = ctypes.CDLL("libc.so.6", use_errno=True)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


@dataclass(frozen=True)
class LinkConfig:
    """What the path does, as link.py passes it (the JSON of --config)."""

    rtt_ms: float = 0.0
    jitter_ms: float = 0.0
    down_mbit: float | None = None
    up_mbit: float | None = None
    loss_pct: float = 0.0
    outages: dict | None = None  # every_s, for_s, first_at_s
    queue_packets: int = DEFAULT_QUEUE_PACKETS
    seed: int = 0
    # TCP congestion control in both namespaces; None keeps what a new namespace gets
    # (the machine's default, which decides how TCP copes with loss: BBR barely slows
    # down for random loss, CUBIC and Reno halve their window).
    congestion_control: str | None = None

    @classmethod
    def from_json(cls, text: str) -> LinkConfig:
        return cls(**json.loads(text))


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


# ---- namespaces and devices ---------------------------------------------------------


def _ifreq(name: str, payload: bytes = b"") -> bytes:
    """A struct ifreq: 16 bytes of name, then the union (24 bytes)."""
    return struct.pack("16s", name.encode()) + payload.ljust(24, b"\0")


def _sockaddr(address: str) -> bytes:
    return struct.pack("=HH4s8x", socket.AF_INET, 0, socket.inet_aton(address))


def _set_up(control: socket.socket, name: str) -> None:
    flags = struct.unpack_from("h", fcntl.ioctl(control, _SIOCGIFFLAGS, _ifreq(name)), 16)[0]
    fcntl.ioctl(control, _SIOCSIFFLAGS, _ifreq(name, struct.pack("h", flags | _IFF_UP)))


def _disable_ipv6(name: str) -> None:
    """No IPv6 on the TUN device: otherwise the kernel sends router solicitations and
    MLD reports across the path, packets the counters would carry but nobody asked for.
    /proc/sys/net shows the namespace of the thread that opens it."""
    with (
        contextlib.suppress(OSError),
        open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as knob,
    ):
        knob.write("1")


_CONGESTION_CONTROL = "/proc/sys/net/ipv4/tcp_congestion_control"
# Real-time priority for the packet loop: it shares the generators' CPU (on 2 cores there
# is no third), and under CFS a generator busy with TLS made it wake 1 to 10 ms late,
# delay the path was not asked for. netem does this work in the kernel's softirq, ahead
# of any process; SCHED_FIFO is the nearest a process gets. Its CPU stays a few % (the
# kernel keeps 5 % of every second for others in any case).
_FIFO_PRIORITY = 50


def run_ahead_of_others() -> str:
    """SCHED_FIFO for this process if allowed; says which scheduling it runs under."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(_FIFO_PRIORITY))
    except (OSError, AttributeError) as error:
        return f"normal (real-time priority refused: {getattr(error, 'strerror', error)})"
    return f"SCHED_FIFO {_FIFO_PRIORITY}"


def _congestion_control(wanted: str | None) -> str:
    """Set the current namespace's TCP congestion control if `wanted`; what it is now."""
    if wanted:
        try:
            with open(_CONGESTION_CONTROL, "w") as knob:
                knob.write(wanted)
        except OSError as error:
            # A namespace may only pick what the machine allows (EPERM otherwise).
            with open("/proc/sys/net/ipv4/tcp_allowed_congestion_control") as allowed:
                choices = allowed.read().strip()
            raise OSError(
                error.errno,
                f"cannot use TCP congestion control {wanted!r} in a namespace: "
                f"{error.strerror}; this machine allows {choices} "
                "(net.ipv4.tcp_allowed_congestion_control)",
            ) from None
    with open(_CONGESTION_CONTROL) as knob:
        return knob.read().strip()


def _build_namespace(local: str, peer: str, congestion: str | None) -> tuple[int, int, str]:
    """A new network namespace with `lo` up and a TUN device `local` <-> `peer` in it.

    Returns (namespace fd, TUN fd, TCP congestion control). The calling thread is left
    inside the new namespace; the caller moves it back. The device is opened while
    inside, so it belongs there.
    """
    _check(_libc.unshare(_CLONE_NEWNET), "unshare(CLONE_NEWNET)")
    algorithm = _congestion_control(congestion)
    namespace = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    tun = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(tun, _TUNSETIFF, _ifreq(DEVICE, struct.pack("H", _IFF_TUN | _IFF_NO_PI)))
    _disable_ipv6(DEVICE)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
        _set_up(control, "lo")
        fcntl.ioctl(control, _SIOCSIFADDR, _ifreq(DEVICE, _sockaddr(local)))
        fcntl.ioctl(control, _SIOCSIFDSTADDR, _ifreq(DEVICE, _sockaddr(peer)))
        fcntl.ioctl(control, _SIOCSIFNETMASK, _ifreq(DEVICE, _sockaddr("255.255.255.255")))
        fcntl.ioctl(control, _SIOCSIFMTU, _ifreq(DEVICE, struct.pack("i", MTU)))
        # Up last: the peer route (198.18.0.x/32 via tun0) appears with the device.
        _set_up(control, DEVICE)
    return namespace, tun, algorithm


def build_link(congestion: str | None = None) -> tuple[int, int, int, int, str]:
    """Both namespaces: (server ns fd, server TUN fd, client ns fd, client TUN fd, TCP
    congestion control in them)."""
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        server_ns, server_tun, algorithm = _build_namespace(
            SERVER_ADDRESS, CLIENT_ADDRESS, congestion
        )
        _check(_libc.setns(original, _CLONE_NEWNET), "setns back")
        client_ns, client_tun, _ = _build_namespace(CLIENT_ADDRESS, SERVER_ADDRESS, congestion)
        _check(_libc.setns(original, _CLONE_NEWNET), "setns back")
    finally:
        os.close(original)
    return server_ns, server_tun, client_ns, client_tun, algorithm


# ---- the path -----------------------------------------------------------------------


class Outages:
    """The outage schedule: closed until `begin`, then dark for `for_ns` every
    `every_ns` from `begin + first_ns`, until `end` if one is set."""

    def __init__(self, spec: dict | None) -> None:
        self.every_ns = int(spec["every_s"] * 1e9) if spec else 0
        self.for_ns = int(spec["for_s"] * 1e9) if spec else 0
        self.first_ns = int(spec.get("first_at_s", 0.0) * 1e9) if spec else 0
        self.first: int | None = None  # monotonic ns of the first outage, once begun
        self.end: int | None = None

    def begin(self, window_start_ns: int) -> None:
        if self.every_ns:
            self.first = window_start_ns + self.first_ns
            self.end = None

    def stop(self, at_ns: int) -> None:
        self.end = at_ns

    def dark(self, now_ns: int) -> bool:
        first = self.first
        if first is None or now_ns < first or (self.end is not None and now_ns >= self.end):
            return False
        return (now_ns - first) % self.every_ns < self.for_ns

    def applied(self, now_ns: int) -> list[tuple[int, int]]:
        """The windows that have opened by `now_ns`, each cut at now and at the end."""
        if self.first is None:
            return []
        limit = now_ns if self.end is None else min(now_ns, self.end)
        windows = []
        start = self.first
        while start < limit:
            windows.append((start, min(start + self.for_ns, limit)))
            start += self.every_ns
        return windows


@dataclass
class Direction:
    """One direction of the path: what arrives from one device, what leaves to the other."""

    name: str
    out_fd: int
    rate_bytes_per_ns: float | None  # None: no bottleneck
    delay_ns: int
    jitter_ns: int
    loss: float  # probability, 0 to 1
    queue_packets: int
    loss_rng: random.Random
    jitter_rng: random.Random
    outages: Outages
    # Counters.
    packets: int = 0
    bytes: int = 0
    delivered: int = 0
    delivered_bytes: int = 0
    dropped_loss: int = 0
    dropped_queue: int = 0
    dropped_outage: int = 0
    dropped_write: int = 0  # refused by the receiving device (its kernel queue was full)
    # Packets written more than LATE_NS after their release time: the emulator falling
    # behind (descheduled, busy), which would add delay nobody configured.
    late: int = 0
    late_max_ns: int = 0
    # Packets on their way, in order: (release ns, packet).
    line: deque = field(default_factory=deque)
    # Departure times of the packets accepted by the bottleneck, not yet departed.
    backlog: deque = field(default_factory=deque)
    link_free_ns: int = 0
    last_release_ns: int = 0

    def arrive(self, packet: bytes, now_ns: int) -> None:
        """A packet read from the sending side's device at `now_ns`."""
        self.packets += 1
        self.bytes += len(packet)
        if self.outages.first is not None and self.outages.dark(now_ns):
            self.dropped_outage += 1
            return
        if self.loss and self.loss_rng.random() < self.loss:
            self.dropped_loss += 1
            return
        leaves_ns = now_ns
        if self.rate_bytes_per_ns:
            backlog = self.backlog
            while backlog and backlog[0] <= now_ns:
                backlog.popleft()
            if len(backlog) >= self.queue_packets:
                self.dropped_queue += 1
                return
            leaves_ns = max(now_ns, self.link_free_ns) + int(len(packet) / self.rate_bytes_per_ns)
            self.link_free_ns = leaves_ns
            backlog.append(leaves_ns)
        release_ns = leaves_ns + self.delay_ns
        if self.jitter_ns:
            release_ns += int((self.jitter_rng.random() - 0.5) * self.jitter_ns)
            release_ns = max(release_ns, leaves_ns)
        # FIFO: jitter never reorders, the way a real path's queue keeps packets in order.
        if release_ns < self.last_release_ns:
            release_ns = self.last_release_ns
        self.last_release_ns = release_ns
        self.line.append((release_ns, packet))

    def release_due(self, now_ns: int) -> None:
        """Write every packet whose release time has come to the receiving device."""
        line = self.line
        outages = self.outages
        while line and line[0][0] <= now_ns:
            release_ns, packet = line.popleft()
            if outages.first is not None and outages.dark(now_ns):
                self.dropped_outage += 1
                continue
            late_ns = now_ns - release_ns
            if late_ns > LATE_NS:
                self.late += 1
                self.late_max_ns = max(self.late_max_ns, late_ns)
            try:
                os.write(self.out_fd, packet)
            except (BlockingIOError, OSError):
                # The receiving kernel refused it (its backlog is full): not the path's
                # configured queue, so counted apart (and judged: generator_bound.py).
                self.dropped_write += 1
                continue
            self.delivered += 1
            self.delivered_bytes += len(packet)

    def next_release_ns(self) -> int | None:
        return self.line[0][0] if self.line else None

    def stats(self) -> dict:
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "delivered": self.delivered,
            "delivered_bytes": self.delivered_bytes,
            "dropped_loss": self.dropped_loss,
            "dropped_queue": self.dropped_queue,
            "dropped_outage": self.dropped_outage,
            "dropped_write": self.dropped_write,
            "late": self.late,
            "late_max_us": self.late_max_ns // 1000,
            "in_flight": len(self.line),
        }


def make_directions(config: LinkConfig, server_tun: int, client_tun: int, outages: Outages):
    """(up, down): up carries what the client side sends, down what the server side sends."""

    def direction(name: str, out_fd: int, mbit: float | None, salt: int) -> Direction:
        return Direction(
            name=name,
            out_fd=out_fd,
            rate_bytes_per_ns=mbit * 1e6 / 8 / 1e9 if mbit else None,
            delay_ns=int(config.rtt_ms * 1e6 / 2),
            jitter_ns=int(config.jitter_ms * 1e6),
            loss=config.loss_pct / 100,
            queue_packets=config.queue_packets,
            loss_rng=random.Random(config.seed * 4 + salt),
            jitter_rng=random.Random(config.seed * 4 + salt + 2),
            outages=outages,
        )

    return direction("up", server_tun, config.up_mbit, 0), direction(
        "down", client_tun, config.down_mbit, 1
    )


# ---- the loop -----------------------------------------------------------------------


class _Stop(Exception):
    """SIGTERM or SIGINT: leave the loop and close everything."""


def _on_signal(signum, frame) -> None:
    raise _Stop


class Timer:
    """A timerfd on CLOCK_MONOTONIC, armed at absolute nanoseconds."""

    def __init__(self) -> None:
        self.fd = _libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if self.fd < 0:
            error = ctypes.get_errno()
            raise OSError(error, f"timerfd_create: {os.strerror(error)}")
        self.armed_ns: int | None = None
        self._spec = _Itimerspec()
        self._spec_ref = ctypes.byref(self._spec)
        # Called once per released packet: declared argument types keep ctypes quick.
        self._settime = _libc.timerfd_settime
        self._settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]

    def arm(self, at_ns: int | None) -> None:
        """Fire at `at_ns`; None leaves it as it is (a late spare wake-up costs less than
        disarming after every packet)."""
        if at_ns is None or at_ns == self.armed_ns:
            return
        self.armed_ns = at_ns
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = divmod(max(at_ns, 1), 1_000_000_000)
        if self._settime(self.fd, _TFD_TIMER_ABSTIME, self._spec_ref, None) != 0:
            _check(-1, "timerfd_settime")

    def clear(self) -> None:
        self.armed_ns = None
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 8)


class Emulator:
    """The link's event loop: two devices, a timer, and the control channel."""

    def __init__(self, config: LinkConfig, server_tun: int, client_tun: int) -> None:
        self.server_tun = server_tun
        self.client_tun = client_tun
        self.outages = Outages(config.outages)
        self.up, self.down = make_directions(config, server_tun, client_tun, self.outages)
        self.timer = Timer()
        self._control = b""

    def answer(self, document: dict) -> None:
        os.write(1, json.dumps(document).encode() + b"\n")

    def stats(self) -> dict:
        now = time.monotonic_ns()
        return {
            "up": self.up.stats(),
            "down": self.down.stats(),
            "outages": self.outages.applied(now),
            "emulator_cpu_s": time.process_time(),
            "now_ns": now,
        }

    def control(self) -> bool:
        """Read the control channel; False when it closed (the parent is gone)."""
        data = os.read(0, 65536)
        if not data:
            return False
        self._control += data
        *lines, self._control = self._control.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            try:
                request = json.loads(line)
            except ValueError:
                self.answer({"error": f"not JSON: {line[:80]!r}"})
                continue
            if "begin_outages" in request:
                self.outages.begin(int(request["begin_outages"]))
                self.answer({"ok": True})
            elif "end_outages" in request:
                self.outages.stop(int(request["end_outages"]))
                self.answer({"ok": True})
            elif request.get("stats"):
                self.answer(self.stats())
            else:
                self.answer({"error": f"unknown request {sorted(request)}"})
        return True

    def run(self) -> None:
        poller = select.epoll()
        poller.register(self.server_tun, select.EPOLLIN)
        poller.register(self.client_tun, select.EPOLLIN)
        poller.register(self.timer.fd, select.EPOLLIN)
        poller.register(0, select.EPOLLIN)
        sources = {self.client_tun: self.up, self.server_tun: self.down}
        up, down, timer, monotonic_ns = self.up, self.down, self.timer, time.monotonic_ns
        while True:
            for fd, _ in poller.poll():
                if fd in sources:
                    direction = sources[fd]
                    for _ in range(READ_BATCH):
                        try:
                            packet = os.read(fd, 65536)
                        except BlockingIOError:
                            break
                        direction.arrive(packet, monotonic_ns())
                elif fd == timer.fd:
                    timer.clear()
                elif not self.control():
                    return
            now = monotonic_ns()
            up.release_due(now)
            down.release_due(now)
            heads = [at for at in (up.next_release_ns(), down.next_release_ns()) if at is not None]
            timer.arm(min(heads) if heads else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="LinkConfig as JSON")
    parser.add_argument("--ready", required=True, help="file to write when the link is up")
    parser.add_argument("--parent", type=int, help="the process that started this one")
    parser.add_argument(
        "--deathsig",
        action="store_true",
        help="be killed when the parent's starting thread ends (start from a main thread)",
    )
    args = parser.parse_args(argv)

    # Die with the parent, even by SIGKILL. The kernel sends the signal when the thread
    # that started us ends, so link.py asks for it only from a main thread; the end of
    # standard input (the parent's pipe, closed when it dies) stops us in every case.
    if args.deathsig:
        _check(_libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    if args.parent is not None and os.getppid() != args.parent:
        return 1  # the parent is already gone
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    config = LinkConfig.from_json(args.config)
    fds: list[int] = []
    try:
        try:
            server_ns, server_tun, client_ns, client_tun, algorithm = build_link(
                config.congestion_control
            )
        except OSError as error:
            # One sentence for link.py to show; the caller's PathUnavailable carries it.
            print(f"cannot build the link: {error.strerror or error}", file=sys.stderr)
            return 1
        fds = [server_ns, server_tun, client_ns, client_tun]
        ready = {
            "pid": os.getpid(),
            "server_netns": f"/proc/{os.getpid()}/fd/{server_ns}",
            "client_netns": f"/proc/{os.getpid()}/fd/{client_ns}",
            "tcp_congestion_control": algorithm,
            "scheduling": run_ahead_of_others(),
        }
        partial = f"{args.ready}.partial"
        with open(partial, "w") as out:
            json.dump(ready, out)
        os.replace(partial, args.ready)
        emulator = Emulator(config, server_tun, client_tun)
        fds.append(emulator.timer.fd)
        emulator.answer({"ready": ready})
        print(f"link up: {json.dumps(ready)} config {args.config}", file=sys.stderr, flush=True)
        emulator.run()
        print("control channel closed: stopping", file=sys.stderr, flush=True)
    except _Stop:
        print("stopped by signal", file=sys.stderr, flush=True)
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
