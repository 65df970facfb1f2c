"""The independent subscriber that follows WebSocket push, for `bench calibrate`: the
Node `ws` package (reference/ws-subscribe.mjs), N subscribers in one process."""

from __future__ import annotations

from bench.reference_clients import SubscriberKind, node_subscriber_probe

TOOL_PROBE = node_subscriber_probe(
    SubscriberKind.WEBSOCKET, lambda target: f"ws://{target.host}:{target.port}/"
)
