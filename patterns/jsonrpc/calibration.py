"""JSON-RPC's get_user as wrk sends it, for `bench calibrate`."""

from __future__ import annotations

import orjson

from bench.loadtools import ProbeAnswer, ToolProbe, ToolRequest, json_user


def _request(user_id: int) -> ToolRequest:
    body = {"jsonrpc": "2.0", "method": "get_user", "params": {"id": user_id}, "id": 1}
    return ToolRequest(
        "wrk", "POST", "/rpc", (("Content-Type", "application/json"),), orjson.dumps(body)
    )


def _user(answer: ProbeAnswer) -> dict:
    return json_user(answer, "result")


TOOL_PROBE = ToolProbe(_request, _user)
