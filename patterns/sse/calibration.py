"""The independent subscriber that follows Server-Sent Events, for `bench calibrate`: the
Node `eventsource` package's EventSource (reference/sse-subscribe.mjs), N subscribers in
one process."""

from __future__ import annotations

from bench.reference_clients import SubscriberKind, node_subscriber_probe

TOOL_PROBE = node_subscriber_probe(
    SubscriberKind.SSE, lambda target: f"http://{target.host}:{target.port}/events"
)
