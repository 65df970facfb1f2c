"""Bytes on the wire and connections, as each driver's meter counts them.

Every driver has a `WireMeter`: what its traffic carried and how many connections it
opened and holds. The engines read only the meter, so a transport other than TCP (a UDP
or QUIC pattern) supplies a meter of its own. The default, `TcpWireMeter`, reads the
kernel's own TCP counters (Linux TCP_INFO): TCP payload, so everything the protocol puts
on the connection (HTTP headers, WebSocket frames, HTTP/2 framing, MQTT packets) is
included, TCP/IP headers are not. They are measured, never computed from payload sizes.
Under TLS they count TLS records (ciphertext, record headers and handshakes included):
what the path carries.

TLS: a driver that opens a TLS connection tells its meter the handshake and the version
it negotiated (`WireMeter.tls_handshake(version)`, or `tls_connection(channel)` with the
transport or socket itself); the results carry the counts by version.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
from abc import ABC, abstractmethod
from dataclasses import dataclass

# Offsets in struct tcp_info (include/uapi/linux/tcp.h): tcpi_bytes_received is at 128,
# tcpi_bytes_sent (kernel 4.19+) at 200. Both u64.
_TCP_INFO_LENGTH = 256
_BYTES_RECEIVED_OFFSET = 128
_BYTES_SENT_OFFSET = 200
_TCP_INFO = getattr(socket, "TCP_INFO", None)


@dataclass(frozen=True)
class WireBytes:
    sent: int = 0
    received: int = 0

    def __add__(self, other: WireBytes) -> WireBytes:
        return WireBytes(self.sent + other.sent, self.received + other.received)

    def __sub__(self, other: WireBytes) -> WireBytes:
        return WireBytes(self.sent - other.sent, self.received - other.received)

    @property
    def total(self) -> int:
        return self.sent + self.received


@dataclass
class PayloadCounter:
    """Application payload bytes, defined the same way for every pattern: the application's
    data in the pattern's own encoding (a request's parameters or body, an answer's
    record(s), an event) and nothing else. Envelopes and wrappers (a SOAP envelope, a
    JSON-RPC or WebSocket message's id and method, a GraphQL query document), framing (a
    gRPC message's 5-byte prefix, HTTP headers) and failed or repeated deliveries are the
    protocol's overhead: wire bytes minus these."""

    sent: int = 0
    received: int = 0

    def snapshot(self) -> WireBytes:
        return WireBytes(self.sent, self.received)


def tcp_wire_bytes(sock: socket.socket | None) -> WireBytes | None:
    """Bytes this socket has sent and received so far, or None where the kernel cannot tell."""
    if sock is None or _TCP_INFO is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_LENGTH)
    except OSError:
        return None
    if len(info) < _BYTES_SENT_OFFSET + 8:
        return None
    (received,) = struct.unpack_from("=Q", info, _BYTES_RECEIVED_OFFSET)
    (sent,) = struct.unpack_from("=Q", info, _BYTES_SENT_OFFSET)
    return WireBytes(sent=sent, received=received)


def socket_counters(port: int, *, local: bool = False) -> dict[str, WireBytes]:
    """Per socket (keyed by its inode), the bytes of this process's matching TCP sockets."""
    found: dict[str, WireBytes] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{name}")
            if not link.startswith("socket:"):
                continue
            duplicate = os.dup(int(name))
        except OSError:
            continue  # closed meanwhile
        try:
            sock = socket.socket(fileno=duplicate)
        except OSError:
            os.close(duplicate)
            continue
        with sock:
            if sock.type != socket.SOCK_STREAM or sock.family not in (
                socket.AF_INET,
                socket.AF_INET6,
            ):
                continue
            try:
                address = sock.getsockname() if local else sock.getpeername()
            except OSError:
                continue  # not connected (a listening socket, or one being set up)
            if address[1] != port or (local and _is_listening(sock)):
                continue
            measured = tcp_wire_bytes(sock)
            if measured is not None:
                found[link] = measured
    return found


def _is_listening(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))


def tls_version(channel: object) -> str | None:
    """The TLS version ("TLSv1.3") negotiated on a connection, or None if it is in the
    clear: an asyncio transport (asyncio's or uvloop's; its "ssl_object"), an
    ssl.SSLSocket (paho's socket) or an ssl.SSLObject."""
    if isinstance(channel, ssl.SSLSocket | ssl.SSLObject):
        return channel.version()
    get_extra_info = getattr(channel, "get_extra_info", None)
    if get_extra_info is None:
        return None
    ssl_object = get_extra_info("ssl_object")
    return ssl_object.version() if ssl_object is not None else None


class WireMeter(ABC):
    """One driver's account of its traffic: bytes on the wire, connections opened and
    held, TLS handshakes. Drivers call `opened()` for each connection they open, `scan()`
    where a connection may close soon (so it keeps its bytes where the meter can),
    `closed(carried)` with what a connection they close themselves carried, where the
    meter cannot see it any more, and `tls_handshake(version)` (or `tls_connection`) for
    each TLS connection once its handshake is done."""

    def __init__(self) -> None:
        self.connections_opened = 0
        self.closed_wire = WireBytes()
        # TLS handshakes completed, by negotiated version ("TLSv1.3": 4): over the
        # driver's whole life, connection set-up included.
        self.tls_versions: dict[str, int] = {}

    def opened(self) -> None:
        self.connections_opened += 1

    def tls_handshake(self, version: str | None) -> None:
        """A TLS handshake completed and negotiated `version` (None: the library would not
        say which; counted as "unknown", so the handshake still counts)."""
        key = version or "unknown"
        self.tls_versions[key] = self.tls_versions.get(key, 0) + 1

    def tls_connection(self, channel: object) -> str | None:
        """Count `channel`'s handshake if it speaks TLS (see tls_version); nothing in the
        clear. Returns the version."""
        version = tls_version(channel)
        if version is not None:
            self.tls_handshake(version)
        return version

    @property
    def tls_handshakes(self) -> int:
        """TLS handshakes completed so far, every version."""
        return sum(self.tls_versions.values())

    def closed(self, carried: WireBytes) -> None:
        self.closed_wire += carried

    def scan(self) -> None:  # noqa: B027 - optional: only meters that can lose bytes need it
        """Take a reading now, so connections that close later keep their bytes."""

    @abstractmethod
    def wire_bytes(self) -> WireBytes:
        """Bytes exchanged with the server so far."""

    @abstractmethod
    def open_connections(self) -> int:
        """Connections held to the server now."""


class TcpWireMeter(WireMeter):
    """The kernel's counters of this process's TCP sockets to a port (or, with `local`,
    accepted on our own port), found through /proc whoever opened them: a library's own
    sockets (grpcio's C core, for one) count as well as ours.

    A socket that closed takes its bytes with it, unless `scan()` read it before (it then
    keeps its last reading) or the driver handed them to `closed()`."""

    def __init__(self, port: int, *, local: bool = False) -> None:
        super().__init__()
        self.port = port
        self.local = local
        self._seen: dict[str, WireBytes] = {}

    def scan(self) -> None:
        self._seen.update(socket_counters(self.port, local=self.local))

    def wire_bytes(self) -> WireBytes:
        # Reading does not scan: sockets are kept only from the readings a driver asked for.
        sockets = {**self._seen, **socket_counters(self.port, local=self.local)}
        total = self.closed_wire
        for counted in sockets.values():
            total += counted
        return total

    def open_connections(self) -> int:
        return len(socket_counters(self.port, local=self.local))
