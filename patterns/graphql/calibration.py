"""GraphQL's get_user (every field) as wrk sends it, for `bench calibrate`."""

from __future__ import annotations

import orjson

from bench.loadtools import ProbeAnswer, ToolProbe, ToolRequest, json_user
from patterns.graphql.driver import USER_FULL


def _request(user_id: int) -> ToolRequest:
    body = orjson.dumps({"query": USER_FULL, "variables": {"id": user_id}})
    return ToolRequest("wrk", "POST", "/graphql", (("Content-Type", "application/json"),), body)


def _user(answer: ProbeAnswer) -> dict:
    return json_user(answer, "data", "user")


TOOL_PROBE = ToolProbe(_request, _user)
