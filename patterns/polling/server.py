"""Polling, long and short: `GET /events?after=<seq>&wait_s=<hold>` (aiohttp).

The client sends its cursor, the last sequence number it has (`after=latest` tells a new
subscriber where to start), so nothing is lost between polls: the answer holds every
newer event still in the bounded buffer (a client that falls further behind than the
buffer sees the gap). With nothing new, a long poll
(wait_s > 0) is held until an event arrives or the hold time passes, then answered,
empty if need be; a short poll (wait_s = 0) is answered at once.

    {"last": 42, "events": [{"seq": 41, "t": ..., "payload": "..."}, ...]}

Run it by hand with `python -m patterns.polling.server --port 8080`; start publishing by writing
a plan to its stdin (see common/events.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import math

from aiohttp import web

from common import server as runtime
from common.events import EventSource

MAX_HOLD_S = 60.0
MAX_EVENTS_PER_ANSWER = 1000
SOURCE = web.AppKey("source", EventSource)


def _number(request: web.Request, name: str, default: str) -> float | None:
    text = request.query.get(name, default)
    try:
        return float(text)
    except ValueError:
        return None


async def events(request: web.Request) -> web.Response:
    source = request.app[SOURCE]
    if request.query.get("after") == "latest":  # where a new subscriber's cursor starts
        return web.Response(
            body=b'{"last":%d,"events":[]}' % source.last_seq, content_type="application/json"
        )
    after, wait_s = _number(request, "after", "0"), _number(request, "wait_s", "0")
    # nan and inf parse as floats but are no sequence number (int() of them raises).
    if after is None or not math.isfinite(after) or after < 0 or after != int(after):
        return web.json_response({"error": "after must be a sequence number"}, status=422)
    if wait_s is None or not 0 <= wait_s <= MAX_HOLD_S:
        return web.json_response({"error": f"wait_s must be from 0 to {MAX_HOLD_S:g}"}, status=422)
    after = int(after)
    if after >= source.last_seq and wait_s > 0:
        # Hold the poll until something new is published, or the hold time is up.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(source.new_event.wait(), wait_s)
    found = source.since(after)[:MAX_EVENTS_PER_ANSWER]
    last = found[-1].seq if found else max(after, 0)
    body = b'{"last":%d,"events":[%s]}' % (last, b",".join(event.data for event in found))
    if not found:
        source.count("empty_answers")
    return web.Response(body=body, content_type="application/json")


async def health(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def serve(context: runtime.ServerContext) -> None:
    app = web.Application()
    app[SOURCE] = context.source
    app.router.add_get("/events", events)
    app.router.add_get("/health", health)
    await context.serve_aiohttp(app, streaming=True)


def main() -> None:
    runtime.run_server(__doc__, serve, push=True)


if __name__ == "__main__":
    main()
