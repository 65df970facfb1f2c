"""paho-mqtt on an asyncio event loop, without paho's network thread.

paho's documented external-loop interface: watch the client's socket with the event loop,
call `loop_read()` when it is readable and `loop_write()` when paho has something to
write, and `loop_misc()` about once a second for keepalives. One loop then carries many
clients, which the subscriber side needs (100 subscribers would otherwise be 100 threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl

import paho.mqtt.client as mqtt

MISC_INTERVAL_S = 1.0


class AsyncioMqtt:
    """Drives one paho client from the running event loop."""

    def __init__(self, client: mqtt.Client, misc_interval_s: float = MISC_INTERVAL_S) -> None:
        self.loop = asyncio.get_running_loop()
        self.client = client
        self.misc_interval_s = misc_interval_s
        self.misc: asyncio.Task | None = None
        client.on_socket_open = self._opened
        client.on_socket_close = self._closed
        client.on_socket_register_write = self._want_write
        client.on_socket_unregister_write = self._done_writing

    def _opened(self, client, _userdata, sock) -> None:
        # Nagle off, as every other client and server here (paho leaves it on): small
        # packets such as PUBACKs and the tail of a large message go out at once.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        readable = self._readable if isinstance(sock, ssl.SSLSocket) else client.loop_read
        self.loop.add_reader(sock, readable)
        if self.misc is None or self.misc.done():
            self.misc = self.loop.create_task(self._misc_loop())

    def _closed(self, _client, _userdata, sock) -> None:
        with contextlib.suppress(Exception):
            self.loop.remove_reader(sock)
            self.loop.remove_writer(sock)
        if self.misc is not None:
            self.misc.cancel()
            self.misc = None  # a reconnect opening a socket before this one is gone starts anew

    def _readable(self) -> None:
        """Over TLS: read, then read what the ssl module still holds. A record it has
        decrypted in full may hold more than the packet paho took, and the kernel's socket
        no longer shows those bytes as readable: without this they would wait for the
        next packet to arrive."""
        client = self.client
        client.loop_read()
        sock = client.socket()
        while isinstance(sock, ssl.SSLSocket) and sock.pending() > 0:
            if client.loop_read() != mqtt.MQTT_ERR_SUCCESS:
                return
            sock = client.socket()

    def _want_write(self, client, _userdata, sock) -> None:
        self.loop.add_writer(sock, client.loop_write)

    def _done_writing(self, _client, _userdata, sock) -> None:
        self.loop.remove_writer(sock)

    async def _misc_loop(self) -> None:
        while self.client.loop_misc() == mqtt.MQTT_ERR_SUCCESS:
            await asyncio.sleep(self.misc_interval_s)
