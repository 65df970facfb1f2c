"""Bytes on the wire, read from the kernel's own TCP counters (Linux TCP_INFO).

The counts are TCP payload: everything the protocol puts on the connection (HTTP headers,
WebSocket frames, HTTP/2 framing, MQTT packets) is included, TCP/IP headers are not.
They are measured, never computed from payload sizes.
"""

from __future__ import annotations

import socket
import struct
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
