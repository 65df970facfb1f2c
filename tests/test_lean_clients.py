"""The generator's lean clients (bench/drivers/http2.py for gRPC, bench/drivers/ws.py for
WebSocket) against real servers: they speak the protocol where it is not the common case
(a gRPC error status, flow control, a stream given up on, fragmented messages, pings, a
refused handshake), and no wrong answer passes."""

from __future__ import annotations

import asyncio

import pytest
import uvloop
from websockets.asyncio.server import serve

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
