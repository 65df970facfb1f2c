"""Server-Sent Events: `GET /events` streams `text/event-stream` (aiohttp).

Every event has an `id:` (its sequence number) and the stream opens with a `retry:` hint.
A client that reconnects with `Last-Event-ID` gets what it missed from a bounded replay
buffer, then the live stream; one that connects without it starts from now. A subscriber
whose queue overflows is disconnected (or its events dropped, with --slow-consumer drop),
and counted; comment lines keep an idle stream alive through proxies.

Run it by hand with `python -m servers.sse --port 8080`; start publishing by writing a
plan to its stdin (see servers/events.py).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from servers import runtime
from servers.events import EventSource, Fanout, SlowConsumer, add_push_arguments, control_loop

RETRY_MS = 500
KEEPALIVE_S = 15.0
FANOUT = web.AppKey("fanout", Fanout)


def frame(event) -> bytes:
    return b"id: %d\ndata: %s\n\n" % (event.seq, event.data)


def _resume_from(request: web.Request, source: EventSource) -> int:
    last_id = request.headers.get("Last-Event-ID", "")
    if last_id.isascii() and last_id.isdigit():
        return int(last_id)
    return source.last_seq  # a new subscriber starts from now


async def events(request: web.Request) -> web.StreamResponse:
    fanout = request.app[FANOUT]
    source = fanout.source
    # Join before anything is sent: once the client sees the headers it is subscribed.
    queue = fanout.join()
    sent = _resume_from(request, source)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    try:
        await response.prepare(request)
        await response.write(b"retry: %d\n\n" % RETRY_MS)
        for event in source.since(sent):
            await response.write(frame(event))
            sent = event.seq
        while True:
            try:
                seq, data = await queue.get(KEEPALIVE_S)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if seq > sent:  # replayed already
                await response.write(data)
                sent = seq
    except (SlowConsumer, ConnectionResetError):
        pass
    finally:
        fanout.leave(queue)
    return response


async def health(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    parser = runtime.argument_parser(__doc__.splitlines()[0])
    add_push_arguments(parser)
    args = parser.parse_args()
    sock = runtime.bind(args.host, args.port)

    async def run(stop: asyncio.Event) -> None:
        source = EventSource(args.payload_bytes, args.replay_events)
        app = web.Application()
        app[FANOUT] = Fanout(source, frame, args.queue_events, args.slow_consumer)
        app.router.add_get("/events", events)
        app.router.add_get("/health", health)
        control = asyncio.create_task(control_loop(source))
        await runtime.serve_aiohttp(app, sock, args.ready_file, stop, streaming=True)
        control.cancel()

    runtime.serve(run)


if __name__ == "__main__":
    main()
