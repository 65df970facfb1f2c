"""REST's get_user as wrk sends it, for `bench calibrate`."""

from __future__ import annotations

from bench.loadtools import ProbeAnswer, ToolProbe, ToolRequest, json_user


def _request(user_id: int) -> ToolRequest:
    return ToolRequest("wrk", "GET", f"/users/{user_id}")


def _user(answer: ProbeAnswer) -> dict:
    return json_user(answer)


TOOL_PROBE = ToolProbe(_request, _user)
