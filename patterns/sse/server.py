"""Server-Sent Events: `GET /events` streams `text/event-stream` (aiohttp).

Every event has an `id:` (its sequence number) and the stream opens with a `retry:` hint.
A client that reconnects with `Last-Event-ID` gets what it missed from a bounded replay
buffer, then the live stream; one that connects without it (or with it empty) starts
from now. A subscriber whose queue overflows is disconnected (or its events dropped, with
--slow-consumer drop), and counted; comment lines keep an idle stream alive through
proxies.

A `Last-Event-ID` beyond the last id issued (a client back after a server restart) names
a resume point the server never had. It answers with what it has: first a control event

    event: reset
    id: <the id the stream now continues after>
    data: {"last_event_id": "<as sent>", "oldest_id": <oldest held, or null>, "last_id": N}

then its whole replay buffer from the oldest event it holds (nothing if it holds none),
then the live stream. The event's type keeps it away from an EventSource's `message`
listeners, and its `id:` resets the client's Last-Event-ID, so a reconnect right after it
resumes normally. A `Last-Event-ID` that is not a decimal number (a negative one
included) is not one this server could have issued: 400, as a protocol error, on which
an EventSource fails the connection instead of retrying it (WHATWG HTML, 9.2.3).

Run it by hand with `python -m patterns.sse.server --port 8080`; start publishing by writing a
plan to its stdin (see common/events.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from aiohttp import web

from common import server as runtime
from common.events import EventSource, Fanout, SlowConsumer

RETRY_MS = 500
KEEPALIVE_S = 15.0
FANOUT = web.AppKey("fanout", Fanout)
HEARTBEAT_S = web.AppKey("heartbeat_s", float)


def frame(event) -> bytes:
    return b"id: %d\ndata: %s\n\n" % (event.seq, event.data)


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a subscriber's stream starts: after event `after`, announced by `reset` (the
    control event's frame) when the id the client asked for was never issued."""

    after: int
    reset: bytes = b""


def resume_point(last_event_id: str | None, source: EventSource) -> ResumePoint:
    """Where to start for a client sending `last_event_id`; HTTPBadRequest if it cannot
    be an id of this server's."""
    if not last_event_id:  # absent, or empty as WHATWG clients never send it: from now
        return ResumePoint(source.last_seq)
    if not (last_event_id.isascii() and last_event_id.isdigit()):
        raise web.HTTPBadRequest(text="Last-Event-ID must be an event id: a decimal number\n")
    significant = last_event_id.lstrip("0")
    # Beyond 18 digits it is beyond any counter, and int() refuses over 4,300 digits.
    if len(significant) <= 18 and int(last_event_id) <= source.last_seq:
        return ResumePoint(int(last_event_id))
    oldest = source.buffer[0].seq if source.buffer else None
    after = oldest - 1 if oldest is not None else source.last_seq
    data = orjson.dumps(
        {"last_event_id": last_event_id, "oldest_id": oldest, "last_id": source.last_seq}
    )
    return ResumePoint(after, b"event: reset\nid: %d\ndata: %s\n\n" % (after, data))


async def events(request: web.Request) -> web.StreamResponse:
    fanout = request.app[FANOUT]
    source = fanout.source
    start = resume_point(request.headers.get("Last-Event-ID"), source)
    # Join before anything is sent: once the client sees the headers it is subscribed.
    queue = fanout.join()
    sent = start.after
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    try:
        await response.prepare(request)
        await response.write(b"retry: %d\n\n" % RETRY_MS)
        if start.reset:
            await response.write(start.reset)
        for event in source.since(sent):
            await response.write(frame(event))
            sent = event.seq
        while True:
            try:
                seq, data = await queue.get(request.app[HEARTBEAT_S])
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


async def serve(context: runtime.ServerContext) -> None:
    args = context.args
    app = web.Application()
    app[FANOUT] = Fanout(context.source, frame, args.queue_events, args.slow_consumer)
    app[HEARTBEAT_S] = args.heartbeat_s
    app.router.add_get("/events", events)
    app.router.add_get("/health", health)
    await context.serve_aiohttp(app, streaming=True)


def add_arguments(parser) -> None:
    parser.add_argument("--heartbeat-s", type=float, default=KEEPALIVE_S)


def main() -> None:
    runtime.run_server(__doc__, serve, push=True, add_arguments=add_arguments)


if __name__ == "__main__":
    main()
