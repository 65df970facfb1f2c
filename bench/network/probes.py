"""Measurements of a built path, taken from inside its namespaces.

A socket belongs to the network namespace it was created in, whichever thread uses it
later: each probe creates its sockets in the right namespace (`Place.call`) and then runs
as ordinary threads. Servers listen on the server side's address, clients are on the
client side, so every packet crosses the emulator exactly as a pattern's would.

Probes: TCP connect time (one round trip: SYN out, SYN-ACK back), the kernel's smoothed
RTT of an established connection (`TCP_INFO`) and the echo time on it, bulk TCP goodput
each way after the slow-start ramp, the bottleneck's capacity each way (paced UDP above
the configured rate, measured at the receiver), and random loss each way (sequence-numbered
UDP datagrams counted at the receiver, beside the emulator's own count).
"""

from __future__ import annotations

import contextlib
import math
import socket
import statistics
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from bench.network.link import CLIENT_ADDRESS, SERVER_ADDRESS, NetworkPath, PathStats
from bench.resources import Place

# struct tcp_info (linux/tcp.h): eight u8 fields, then u32s from tcpi_rto at offset 8;
# tcpi_snd_mss is the third (16), tcpi_rtt the 16th (68), tcpi_rttvar the 17th (72), in µs;
# tcpi_min_rtt (µs, Linux 4.6 and later) follows the u64 rates and counters, at 148.
TCP_INFO_SIZE = 152
TCPI_SND_MSS_OFFSET = 16
TCPI_RTT_OFFSET = 68
TCPI_RTTVAR_OFFSET = 72
TCPI_MIN_RTT_OFFSET = 148
IP_UDP_HEADER_BYTES = 28
DRAIN_TIMEOUT_S = 15.0


def socket_in(netns: str, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A new IPv4 socket in the network namespace `netns`."""
    return Place(netns=netns).call(lambda: socket.socket(socket.AF_INET, kind))


def listener_in(netns: str, address: str, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket bound to `address` on a free port in `netns` (listening, for TCP)."""
    sock = socket_in(netns, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, 0))
    if kind == socket.SOCK_STREAM:
        sock.listen(256)
    return sock


def tcp_info_rtt_ms(sock: socket.socket) -> tuple[float, float]:
    """The kernel's smoothed round-trip time of a connection and its variation, ms."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_SIZE)
    rtt_us = struct.unpack_from("I", info, TCPI_RTT_OFFSET)[0]
    rttvar_us = struct.unpack_from("I", info, TCPI_RTTVAR_OFFSET)[0]
    return rtt_us / 1000, rttvar_us / 1000


def tcp_info_min_rtt_ms(sock: socket.socket) -> float:
    """The smallest round trip the kernel has seen on a connection, ms: the path's own
    delay, without the moments a busy host added to some of them."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_SIZE)
    return struct.unpack_from("I", info, TCPI_MIN_RTT_OFFSET)[0] / 1000


def tcp_info_mss(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_SIZE)
    return struct.unpack_from("I", info, TCPI_SND_MSS_OFFSET)[0]


def _thread(target: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def wait_until_idle(path: NetworkPath, timeout_s: float = DRAIN_TIMEOUT_S) -> PathStats:
    """Wait until no packet is on its way in either direction (a probe's leftovers would
    otherwise queue ahead of the next probe's packets); the stats at that moment."""
    deadline = time.monotonic() + timeout_s
    while True:
        stats = path.stats()
        if stats.up.in_flight == 0 and stats.down.in_flight == 0:
            return stats
        if time.monotonic() > deadline:
            raise TimeoutError(f"the path still carries packets after {timeout_s:g} s")
        time.sleep(0.005)  # polling the condition, not waiting for time to pass


# ---- round trips ----------------------------------------------------------------------


def connect_times_ms(path: NetworkPath, count: int = 20) -> list[float]:
    """`count` TCP connects, one after another, from the client side to a listener on the
    server side: each is one round trip through the path (plus the kernels' own time)."""
    listener = listener_in(path.server_netns, SERVER_ADDRESS)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def accept_and_close() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.close()

    acceptor = _thread(accept_and_close, "accept")
    times = []
    try:
        for _ in range(count):
            client = socket_in(path.client_netns)
            client.settimeout(10)
            started = time.perf_counter_ns()
            client.connect((SERVER_ADDRESS, port))
            times.append((time.perf_counter_ns() - started) / 1e6)
            client.close()
    finally:
        stop.set()
        acceptor.join()
        listener.close()
    return times


@dataclass(frozen=True)
class RoundTrip:
    connect_ms: list[float]
    echo_ms: list[float]
    tcp_info_rtt_ms: float
    tcp_info_rttvar_ms: float
    mss: int
    tcp_info_min_rtt_ms: float = 0.0

    @property
    def connect_p50_ms(self) -> float:
        return statistics.median(self.connect_ms)

    @property
    def echo_p50_ms(self) -> float:
        return statistics.median(self.echo_ms)


def echo_server(listener: socket.socket) -> threading.Thread:
    """Echo every byte on each connection the listener accepts, until it closes."""

    def serve(connection: socket.socket) -> None:
        with connection:
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := connection.recv(65536):
                connection.sendall(data)

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            _thread(lambda connection=connection: serve(connection), "echo")

    return _thread(accept, "echo-accept")


def round_trip(path: NetworkPath, connects: int = 20, echoes: int = 20) -> RoundTrip:
    """Connect times, then echoes of 64 bytes on one connection (Nagle off both ends) and
    the kernel's smoothed RTT of that connection after them."""
    connect = connect_times_ms(path, connects)
    listener = listener_in(path.server_netns, SERVER_ADDRESS)
    server = echo_server(listener)
    client = socket_in(path.client_netns)
    try:
        client.settimeout(10)
        client.connect(listener.getsockname())
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        message = b"x" * 64
        echo = []
        for _ in range(echoes):
            started = time.perf_counter_ns()
            client.sendall(message)
            received = 0
            while received < len(message):
                chunk = client.recv(len(message) - received)
                if not chunk:
                    raise ConnectionError("the echo server closed the connection")
                received += len(chunk)
            echo.append((time.perf_counter_ns() - started) / 1e6)
        rtt, rttvar = tcp_info_rtt_ms(client)
        min_rtt = tcp_info_min_rtt_ms(client)
        mss = tcp_info_mss(client)
    finally:
        client.close()
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        server.join(5)
    return RoundTrip(connect, echo, rtt, rttvar, mss, min_rtt)


# ---- bulk goodput ---------------------------------------------------------------------


@dataclass(frozen=True)
class Goodput:
    """TCP payload bytes per second at the receiver between `ramp_s` and
    `ramp_s + measure_s` after the first byte (slow start excluded; the slope of a line
    fitted to the bytes received), and the IP bytes the emulator delivered in that
    direction over about the same interval."""

    direction: str
    goodput_mbit: float
    wire_mbit: float | None
    ramp_s: float
    measure_s: float
    received_bytes: int
    emulator_cpu_share: float | None  # the emulator's CPU seconds per second meanwhile

    def to_dict(self) -> dict:
        return asdict(self)


def goodput(path: NetworkPath, direction: str, ramp_s: float, measure_s: float) -> Goodput:
    """Bulk TCP transfer `direction` ("down": server to client, "up": client to server)."""
    listener = listener_in(path.server_netns, SERVER_ADDRESS)
    client = socket_in(path.client_netns)
    client.settimeout(10)
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    sender, receiver = (server, client) if direction == "down" else (client, server)
    stop = threading.Event()

    def send() -> None:
        chunk = b"\0" * 65536
        sender.settimeout(0.2)
        while not stop.is_set():
            try:
                sender.send(chunk)
            except TimeoutError:
                continue
            except OSError:
                return

    sending = _thread(send, "bulk-send")
    marks: list[tuple[float, int]] = []  # (receiver time s, bytes so far)
    stats: list[PathStats] = []
    total = 0
    try:
        receiver.settimeout(10)
        buffer = bytearray(262144)
        first = None
        while True:
            count = receiver.recv_into(buffer)
            now = time.monotonic()
            if not count:
                raise ConnectionError("the sender closed the connection early")
            total += count
            if first is None:
                first = now
            marks.append((now, total))
            if len(stats) == 0 and now >= first + ramp_s:
                stats.append(path.stats())
            if now >= first + ramp_s + measure_s:
                stats.append(path.stats())
                break
    finally:
        stop.set()
        # Abort rather than close: data still queued on the path is thrown away by the
        # receiving kernel instead of being waited for.
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        receiver.close()
        sending.join(5)
        sender.close()
    # The slope of bytes received over time, fitted to every read in the window: after a
    # loss, data held back behind the hole arrives in one burst, which a rate taken
    # between two end points would count inside or outside the window by chance.
    window = [mark for mark in marks if mark[0] >= first + ramp_s]
    fit = statistics.linear_regression([t for t, _ in window], [n for _, n in window])
    rate = fit.slope * 8 / 1e6
    wire = cpu_share = None
    if len(stats) == 2:
        before, after = (getattr(s, direction) for s in stats)
        elapsed_s = (stats[1].at_ns - stats[0].at_ns) / 1e9
        wire = round((after.delivered_bytes - before.delivered_bytes) * 8 / elapsed_s / 1e6, 3)
        cpu_share = round((stats[1].emulator_cpu_s - stats[0].emulator_cpu_s) / elapsed_s, 3)
    wait_until_idle(path)
    return Goodput(direction, round(rate, 3), wire, ramp_s, measure_s, total, cpu_share)


# ---- UDP: capacity and loss -----------------------------------------------------------


@dataclass(frozen=True)
class UdpResult:
    """One paced UDP stream: sent and received counts, the receiver's rate, and the
    emulator's count of the packets it carried and randomly dropped meanwhile."""

    direction: str
    sent: int
    received: int
    out_of_order: int
    payload_bytes: int
    receive_mbit: float | None  # IP bytes per second, first to last arrival
    path_packets: int
    path_dropped_loss: int
    path_dropped_queue: int

    @property
    def loss_pct(self) -> float:
        return 100 * (self.sent - self.received) / self.sent if self.sent else 0.0

    @property
    def path_loss_pct(self) -> float:
        return 100 * self.path_dropped_loss / self.path_packets if self.path_packets else 0.0

    def loss_stderr_pct(self, expected_pct: float) -> float:
        """The binomial standard deviation of a loss rate measured on `sent` packets."""
        p = expected_pct / 100
        return 100 * math.sqrt(p * (1 - p) / self.sent) if self.sent else math.inf

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "loss_pct": round(self.loss_pct, 4),
            "path_loss_pct": round(self.path_loss_pct, 4),
        }


@dataclass(frozen=True)
class _Stream:
    direction: str
    count: int
    rate_per_s: float
    payload_bytes: int


def udp_streams(path: NetworkPath, streams: list[_Stream]) -> list[UdpResult]:
    """Paced, sequence-numbered UDP datagrams, several streams at once (one per
    direction at most); each counted at its receiver once the path is idle again."""
    before = wait_until_idle(path)
    receivers, senders, states = [], [], []
    for stream in streams:
        if stream.direction == "down":
            source, sink, sink_address = path.server_netns, path.client_netns, CLIENT_ADDRESS
        else:
            source, sink, sink_address = path.client_netns, path.server_netns, SERVER_ADDRESS
        receiver = listener_in(sink, sink_address, socket.SOCK_DGRAM)
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        receiver.settimeout(0.05)
        sender = socket_in(source, socket.SOCK_DGRAM)
        sender.connect(receiver.getsockname())
        receivers.append(receiver)
        senders.append(sender)
        states.append({"seen": set(), "out_of_order": 0, "first": None, "last": None})
    done = threading.Event()

    def receive(receiver: socket.socket, state: dict) -> None:
        highest = -1
        while True:
            try:
                data = receiver.recv(65536)
            except TimeoutError:
                if done.is_set():
                    return
                continue
            now = time.monotonic()
            sequence = struct.unpack_from("!I", data)[0]
            state["seen"].add(sequence)
            if sequence < highest:
                state["out_of_order"] += 1
            highest = max(highest, sequence)
            state["first"] = state["first"] or now
            state["last"] = now

    def send(sender: socket.socket, stream: _Stream) -> None:
        padding = b"\0" * (stream.payload_bytes - 4)
        started = time.monotonic()
        for sequence in range(stream.count):
            due = started + sequence / stream.rate_per_s
            delay = due - time.monotonic()
            if delay > 0.001:  # pacing to the schedule; small debts are paid in bursts
                time.sleep(delay)
            with contextlib.suppress(OSError):  # a full device queue or an ICMP error
                sender.send(struct.pack("!I", sequence) + padding)

    listening = [
        _thread(lambda r=r, s=s: receive(r, s), "udp-recv")
        for r, s in zip(receivers, states, strict=True)
    ]
    sending = [
        _thread(lambda c=c, st=st: send(c, st), "udp-send")
        for c, st in zip(senders, streams, strict=True)
    ]
    for thread in sending:
        thread.join()
    after = wait_until_idle(path)
    done.set()
    for thread in listening:
        thread.join()
    for sock in (*receivers, *senders):
        sock.close()
    results = []
    for stream, state in zip(streams, states, strict=True):
        carried = getattr(after, stream.direction).minus(getattr(before, stream.direction))
        received = len(state["seen"])
        span = (state["last"] or 0) - (state["first"] or 0)
        rate = None
        if received > 1 and span > 0:
            rate = (received - 1) * (stream.payload_bytes + IP_UDP_HEADER_BYTES) * 8 / span / 1e6
        results.append(
            UdpResult(
                direction=stream.direction,
                sent=stream.count,
                received=received,
                out_of_order=state["out_of_order"],
                payload_bytes=stream.payload_bytes,
                receive_mbit=rate and round(rate, 3),
                path_packets=carried.packets,
                path_dropped_loss=carried.dropped_loss,
                path_dropped_queue=carried.dropped_queue,
            )
        )
    return results


def loss(
    path: NetworkPath,
    count: int,
    rate_per_s: dict[str, float],
    payload_bytes: int = 32,
) -> dict[str, UdpResult]:
    """Random loss each way: `count` small datagrams per direction, both directions at
    once, paced at `rate_per_s[direction]` (keep it well below the bottleneck, so that
    no datagram is lost in a full queue instead)."""
    streams = [_Stream(d, count, rate_per_s[d], payload_bytes) for d in ("up", "down")]
    return {result.direction: result for result in udp_streams(path, streams)}


def capacity(
    path: NetworkPath, rate_mbit: dict[str, float], duration_s: float = 1.0
) -> dict[str, UdpResult]:
    """The bottleneck's rate each way: full-size datagrams sent at 1.25 times the
    configured rate for `duration_s`, so the queue never empties and the receiver sees the
    link's own pace (random loss, applied before the queue, does not change that)."""
    payload = 1500 - IP_UDP_HEADER_BYTES
    streams = []
    for direction, mbit in rate_mbit.items():
        per_s = 1.25 * mbit * 1e6 / 8 / 1500
        streams.append(_Stream(direction, max(2, int(per_s * duration_s)), per_s, payload))
    return {result.direction: result for result in udp_streams(path, streams)}
