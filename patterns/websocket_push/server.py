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
from common.events import EventSource, Fanout, SlowConsumer, add_push_arguments, control_loop


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


def main() -> None:
    parser = runtime.argument_parser(__doc__.splitlines()[0])
    add_push_arguments(parser)
    parser.add_argument("--ping-interval-s", type=float, default=20.0)
    args = parser.parse_args()
    sock = runtime.bind(args.host, args.port)

    async def run(stop: asyncio.Event) -> None:
        source = EventSource(args.payload_bytes, args.replay_events)
        fanout = Fanout(source, lambda event: event.data, args.queue_events, args.slow_consumer)
        control = asyncio.create_task(control_loop(source))
        async with serve(
            lambda connection: deliver(connection, fanout),
            sock=sock,
            compression=None,
            max_size=args.max_request_bytes,
            ping_interval=args.ping_interval_s,
            server_header=None,
        ):
            runtime.announce_ready(args.ready_file, sock.getsockname()[1])
            await stop.wait()
        control.cancel()

    runtime.serve(run)


if __name__ == "__main__":
    main()
