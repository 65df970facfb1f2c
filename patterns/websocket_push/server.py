"""WebSocket push: events broadcast to every connected subscriber (websockets).

Each connection has a bounded send queue served by its own task, which waits for the
socket to drain; a subscriber whose queue overflows is disconnected with 1013 ("try
again later"), or has its events dropped with --slow-consumer drop; both are counted.
There is no replay: a subscriber that reconnects gets events from then on, and what it
missed is measured as lost. Pings keep idle connections alive and find dead ones.

Run it by hand with `python -m patterns.websocket_push.server --port 8765`; start publishing by
writing a plan to its stdin (see common/events.py).
"""

from __future__ import annotations

import asyncio

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from common import server as runtime
from common.events import Fanout, SlowConsumer


async def deliver(connection: ServerConnection, fanout: Fanout) -> None:
    """Send this subscriber its events until it goes away (or is cut off for being slow)."""
    queue = fanout.join()
    sender = asyncio.create_task(_send_events(connection, queue))
    try:
        await connection.wait_closed()
    finally:
        sender.cancel()
        fanout.leave(queue)


async def _send_events(connection: ServerConnection, queue) -> None:
    try:
        while True:
            _, data = await queue.get()
            await connection.send(data, text=True)
    except SlowConsumer:
        await connection.close(CloseCode.TRY_AGAIN_LATER, "too slow to keep up")
    except ConnectionClosed:
        pass


def add_arguments(parser) -> None:
    parser.add_argument("--ping-interval-s", type=float, default=20.0)


async def serve_events(context: runtime.ServerContext) -> None:
    args = context.args
    fanout = Fanout(context.source, lambda event: event.data, args.queue_events, args.slow_consumer)
    async with serve(
        lambda connection: deliver(connection, fanout),
        sock=context.sock,
        compression=None,
        max_size=args.max_request_bytes,
        ping_interval=args.ping_interval_s,
        server_header=None,
        ssl=context.server_ssl(),  # wss only, when the run gave a certificate
    ):
        context.ready()
        await context.stop.wait()


def main() -> None:
    runtime.run_server(__doc__, serve_events, push=True, add_arguments=add_arguments)


if __name__ == "__main__":
    main()
