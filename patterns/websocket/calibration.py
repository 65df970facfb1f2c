"""WebSocket's get_user as the Node reference client sends it, for `bench calibrate`.

No load tool in C speaks WebSocket here; `reference/ws-load.mjs` (the `ws` package) does,
at a fixed rate, checking every answer byte for byte itself (bench/reference_clients.py).
"""

from __future__ import annotations

import orjson

from bench.loadtools import ProbeAnswer, ToolFailed, ToolProbe, ToolRequest

# The harness's WebSocket driver carries this many requests in flight on one connection
# (WebsocketOptions.streams_per_connection); the reference client does the same.
STREAMS_PER_CONNECTION = 8
WS_LOAD = "ws-load"


def _request(user_id: int) -> ToolRequest:
    body = orjson.dumps({"op": "get_user", "params": {"id": user_id}})
    return ToolRequest(
        WS_LOAD,
        "GET",
        "/",
        body=body,
        streams_per_connection=STREAMS_PER_CONNECTION,
        checks_answers=True,
    )


def _user(answer: ProbeAnswer) -> dict:
    reply = orjson.loads(answer.body)
    if not isinstance(reply, dict) or "result" not in reply:
        raise ToolFailed(f"the answer is not a result: {answer.body[:160]!r}")
    return reply["result"]


TOOL_PROBE = ToolProbe(_request, _user)
