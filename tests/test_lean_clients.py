"""The generator's lean clients (bench/drivers/http2.py for gRPC, bench/drivers/ws.py for
WebSocket) against real servers: they speak the protocol where it is not the common case
(a gRPC error status, flow control, a stream given up on, fragmented messages, pings, a
refused handshake), and no wrong answer passes."""

from __future__ import annotations

import asyncio

import pytest
import uvloop
from websockets.asyncio.server import serve
from websockets.utils import accept_key

from bench.drivers.base import DriverContext, ResponseInvalid, Target
from bench.drivers.http2 import Http2Connection
from bench.drivers.ws import WebsocketClient, WebsocketClosed
from bench.registry import PATTERNS
from bench.workload import ExpectedAnswers, Operation
from tests.conftest import SMALL_DATASET, start_server

TIMEOUT_S = 20


def run(coroutine):
    async def bounded():
        return await asyncio.wait_for(coroutine, TIMEOUT_S)

    return uvloop.run(bounded())


@pytest.fixture
def grpc_server(tmp_path):
    server = start_server(tmp_path, "grpc")
    yield server
    server.stop()


def grpc_driver(port: int):
    pattern = PATTERNS["grpc"]
    expected = ExpectedAnswers(SMALL_DATASET)
    return pattern.driver_class()(
        Target("127.0.0.1", port), DriverContext(expected, pattern.options())
    )


def test_a_grpc_error_status_is_an_error_with_its_name_never_an_answer(grpc_server):
    async def main():
        driver = grpc_driver(grpc_server.port)
        connection = await driver.connect()
        try:
            await connection.call(Operation("get_user", user_id=10_000))  # no such user
        finally:
            await connection.close()
            await driver.close()

    with pytest.raises(ResponseInvalid, match="get_user: NOT_FOUND: no user with id 10000"):
        run(main())


def test_one_lean_http2_connection_carries_every_operation_in_flight_together(grpc_server):
    """Different methods, at once and one after another, on one connection: the HPACK
    tables of both sides stay in step (cached blocks included), every answer checked."""
    operations = [Operation("get_user", user_id=1 + i % 7) for i in range(20)] + [
        Operation("list_users", page=1 + i % 3, per_page=10) for i in range(10)
    ]
    operations += [
        Operation("create_order", user_id=3, currency="EUR", items=(("sku-1", 2, 150),))
        for _ in range(5)
    ]

    async def main():
        driver = grpc_driver(grpc_server.port)
        slots = [await driver.connect() for _ in range(8)]
        for start in range(0, len(operations), 8):
            batch = operations[start : start + 8]
            await asyncio.gather(*(c.call(op) for c, op in zip(slots, batch, strict=False)))
        for operation in operations:
            await slots[0].call(operation)
        physical = driver.shared.open_count
        for connection in slots:
            await connection.close()
        await driver.close()
        return physical

    assert run(main()) == 1  # eight slots, eight streams per connection


def test_a_request_larger_than_the_servers_window_waits_for_window_updates(grpc_server):
    """A create_order whose body is past the server's 64 KiB initial window and its 16 KiB
    frame size is split into frames and sent as the server opens its window: the server
    reads it whole (and refuses its 1,500 items, as an order may have 100), then the
    connection carries the next call."""
    items = tuple((f"sku-{i:05d}-{'x' * 50}", 1, 100) for i in range(1_500))  # ~100 KB

    async def main():
        driver = grpc_driver(grpc_server.port)
        connection = await driver.connect()
        try:
            with pytest.raises(ResponseInvalid, match="INVALID_ARGUMENT: items must be"):
                await connection.call(
                    Operation("create_order", user_id=2, currency="EUR", items=items)
                )
            await connection.call(Operation("get_user", user_id=4))
        finally:
            await connection.close()
            await driver.close()

    run(main())


def test_a_stream_given_up_on_is_reset_and_its_connection_goes_on(grpc_server):
    """A call whose awaiting task is cancelled (the engine's timeout) resets its stream
    (RST_STREAM, CANCEL); the connection keeps carrying calls, and the late answer of the
    abandoned one, if it comes, is dropped."""

    from patterns.grpc.driver import _LeanChannel, request_message

    async def main():
        connection = await Http2Connection.open("127.0.0.1", grpc_server.port)
        channel = _LeanChannel(connection, f"127.0.0.1:{grpc_server.port}", "http")
        request = request_message(Operation("get_user", user_id=1)).SerializeToString()
        abandoned = asyncio.ensure_future(channel.call("get_user", request))
        await asyncio.sleep(0)  # sent
        abandoned.cancel()
        with pytest.raises(asyncio.CancelledError):
            await abandoned
        assert connection.in_flight == 0
        for _ in range(5):
            _, response = await channel.call("get_user", request)
            assert response.trailers["grpc-status"] == "0"
        usable = connection.usable
        await channel.close()
        return usable

    assert run(main())


# WebSocket -------------------------------------------------------------------------------
async def _fragmenting_server(websocket):
    """Answers every message with it in three fragments, after a ping of its own (whose
    pong the client must send: the server's answer waits for it)."""
    count = 0
    async for message in websocket:
        count += 1
        pong = await websocket.ping(b"are you there %d" % count)
        await pong
        middle = len(message) // 2
        await websocket.send([message[:1], message[1:middle], message[middle:]])


def test_the_lean_websocket_client_joins_fragments_and_answers_pings():
    async def main():
        received: list[tuple[bytes, int]] = []
        async with serve(_fragmenting_server, "127.0.0.1", 0, compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            client = await WebsocketClient.open(
                f"ws://127.0.0.1:{port}/",
                "127.0.0.1",
                port,
                lambda data, at: received.append((data, at)),
                max_size=1 << 20,
            )
            for text in (b'{"n": 1, "text": "first"}', b'{"n": 2, "text": "second"}'):
                client.send_text(text)
            while len(received) < 2:
                await asyncio.sleep(0.01)
            await client.close()
            return received, client.closed.result()

    received, why = run(main())
    assert [data for data, _ in received] == [
        b'{"n": 1, "text": "first"}',
        b'{"n": 2, "text": "second"}',
    ]
    assert all(at > 0 for _, at in received)
    assert "1000" in why  # the closing handshake, answered by the server


def test_a_refused_websocket_handshake_fails_the_connect_with_the_reason():
    async def refuse(connection, request):
        return connection.respond(403, "no\n")

    async def main():
        async with serve(lambda ws: None, "127.0.0.1", 0, process_request=refuse) as server:
            port = server.sockets[0].getsockname()[1]
            await WebsocketClient.open(
                f"ws://127.0.0.1:{port}/", "127.0.0.1", port, lambda *_: None, max_size=1024
            )

    with pytest.raises(WebsocketClosed, match=r"handshake refused.*403"):
        run(main())


def _frame(opcode: int, payload: bytes, *, masked: bool = False) -> bytes:
    """A whole server frame (FIN set), with the shortest length form."""
    size = len(payload)
    if size < 126:
        length = bytes([size])
    elif size < 65536:
        length = bytes([126]) + size.to_bytes(2, "big")
    else:
        length = bytes([127]) + size.to_bytes(8, "big")
    if masked:
        mask = b"\x01\x02\x03\x04"
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return bytes([0x80 | opcode, length[0] | 0x80]) + length[1:] + mask + body
    return bytes([0x80 | opcode]) + length + payload


class _Transport:
    """What the client writes, for feeding it a server's bytes by hand."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.closed = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_extra_info(self, name, default=None):
        return default


def _opened_client(received: list[bytes]) -> tuple[WebsocketClient, _Transport]:
    """A client past its opening handshake, on a transport the test writes for the server."""
    client = WebsocketClient("ws://127.0.0.1:1/", lambda data, at: received.append(data), 1 << 20)
    transport = _Transport()
    client.connection_made(transport)
    key = next(
        line.split(b":", 1)[1].strip()
        for line in transport.written.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    transport.written = b""
    client.data_received(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key.decode()).encode() + b"\r\n\r\n"
    )
    assert client.handshake.done() and client.handshake.exception() is None
    return client, transport


def _unmasked(frame: bytes) -> tuple[int, bytes]:
    """(first byte, payload) of one short masked client frame."""
    assert frame[1] & 0x80, "a client masks every frame"
    size = frame[1] & 0x7F
    mask, body = frame[2:6], frame[6 : 6 + size]
    return frame[0], bytes(b ^ mask[i % 4] for i, b in enumerate(body))


# A ping whose payload looks like the start of a text frame: read from the middle of the
# ping (the library holding its header), it would be taken for one.
PING = b"\x81\x03pin"


def test_the_fast_road_reads_frames_cut_anywhere_and_hands_pings_to_the_library():
    big, medium, small = b"b" * 70_000, b"m" * 300, b'{"n": 3}'
    script = (
        _frame(0x1, small)
        + _frame(0x1, medium)
        + _frame(0x9, PING)  # the library answers it with a pong
        + _frame(0x2, big)
        + _frame(0x1, small)
    )
    big_at = script.index(b"b" * 10) - 10  # the big frame's header: 1 + 1 + 8 bytes
    ping_at = script.index(PING) - 2
    cuts = [*range(40), *range(ping_at - 2, ping_at + 8), *range(big_at - 3, big_at + 12)]

    async def main():
        for cut in cuts:  # the stream in two reads, cut at `cut`, then in 7-byte reads
            for pieces in (
                [script[:cut], script[cut:]],
                [script[at : at + 7] for at in range(0, len(script), 7)],
            ):
                received: list[bytes] = []
                client, transport = _opened_client(received)
                fast_before = client._fast
                for piece in pieces:
                    client.data_received(piece)
                assert received == [small, medium, big, small], (cut, len(received))
                assert fast_before and client._fast, "on the fast road, and back after the ping"
                assert _unmasked(transport.written) == (0x8A, PING), "the ping's pong"
                transport.written = b""
                client.send_text(b'{"op": "x"}')
                assert _unmasked(transport.written) == (0x81, b'{"op": "x"}')

    run(main())


def test_a_masked_frame_from_the_server_fails_the_connection_as_the_library_does():
    async def main():
        received: list[bytes] = []
        client, _ = _opened_client(received)
        client.data_received(_frame(0x1, b"fine") + _frame(0x1, b"masked", masked=True))
        return received, client.closed.result()

    received, why = run(main())
    assert received == [b"fine"]
    assert "failed" in why and "mask" in why.lower(), why


def test_a_whole_frame_inside_a_fragmented_message_fails_the_connection_in_any_reads():
    """RFC 6455 5.4: after a first fragment only its continuations (or control frames)
    may come. Read by read, the fast road must not take the stray frame as a message."""
    first = bytes([0x01, 3]) + b"abc"  # text, FIN clear
    stray = _frame(0x1, b"X")
    last = bytes([0x80, 3]) + b"def"  # continuation, FIN set

    async def main():
        outcomes = []
        for pieces in ([first + stray + last], [first, stray, last]):
            received: list[bytes] = []
            client, _ = _opened_client(received)
            for piece in pieces:
                client.data_received(piece)
            outcomes.append((received, client.closed.done() and client.closed.result()))
        return outcomes

    for received, why in run(main()):
        assert received == [], received
        assert why and "failed" in why and "continuation" in why, why


def test_closing_with_half_a_frame_held_hands_it_to_the_library_first():
    async def main():
        received: list[bytes] = []
        client, transport = _opened_client(received)
        message = _frame(0x1, b"whole later")
        client.data_received(message[:5])  # held by the fast road
        closing = asyncio.create_task(client.close())
        await asyncio.sleep(0)  # the close frame is written; the answer is on its way
        client.data_received(message[5:] + _frame(0x8, (1000).to_bytes(2, "big")))
        client.connection_lost(None)
        await closing
        return received, client.closed.result(), transport.written

    received, why, written = run(main())
    assert received == [b"whole later"], "the message the close overtook is still read"
    assert "1000" in why, why
    assert _unmasked(written)[0] == 0x88, "the client's close frame"
