"""gRPC server streaming: `EventStream.Subscribe` sends every event on one long-lived call
(grpc.aio, patterns/grpc_stream/events.proto).

A subscriber may resume with `after_seq`, the last sequence number it has: events still
in the bounded replay buffer come first (an application-level cursor: gRPC itself promises
no replay). A subscriber whose queue overflows gets RESOURCE_EXHAUSTED (or, with
--slow-consumer drop, loses events), and is counted.

Run it by hand with `python -m patterns.grpc_stream.server --port 50052` (after `make protos`);
start publishing by writing a plan to its stdin (see common/events.py).
"""

from __future__ import annotations

import sys

import grpc

from common import server as runtime
from common.events import (
    EventSource,
    Fanout,
    SlowConsumer,
)

try:
    from patterns.grpc_stream import events_pb2, events_pb2_grpc
except ImportError:  # pragma: no cover - a set-up problem, reported in one sentence
    sys.exit("gRPC stubs are missing: run `make protos` (they are generated from its .proto)")


class EventStreamService(events_pb2_grpc.EventStreamServicer):
    def __init__(self, source: EventSource, fanout: Fanout, tls: bool) -> None:
        self.source = source
        self.fanout = fanout
        # grpcio's client side cannot tell which TLS version its C core negotiated; the
        # server's auth context can: written to the log once.
        self.tls_unlogged = tls

    async def Subscribe(self, request, context):
        if self.tls_unlogged:
            self.tls_unlogged = False
            print(f"TLS: {runtime.grpc_tls_description(context)}", flush=True)
        queue = self.fanout.join()
        # Headers now, not with the first event: the subscriber knows it is listening.
        await context.send_initial_metadata(())
        try:
            sent = request.after_seq or self.source.last_seq
            for event in self.source.since(sent):
                yield self.fanout.format_event(event)
                sent = event.seq
            while True:
                seq, item = await queue.get()
                if seq > sent:
                    yield item
                    sent = seq
        except SlowConsumer:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too slow to keep up")
        finally:
            self.fanout.leave(queue)


async def serve(context: runtime.ServerContext) -> None:
    args, source = context.args, context.source
    fanout = Fanout(
        source,
        lambda event: events_pb2.Event(
            seq=event.seq, published_ns=event.published_ns, payload=event.payload
        ),
        args.queue_events,
        args.slow_consumer,
    )
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0), *ping_permission(args)])
    service = EventStreamService(source, fanout, context.tls)
    events_pb2_grpc.add_EventStreamServicer_to_server(service, server)
    key_pair = context.tls_key_pair()  # gRPC over TLS only, when the run gave a certificate
    credentials = grpc.ssl_server_credentials([key_pair]) if key_pair else None
    port = runtime.grpc_port(server, args.host, args.port, credentials)
    await server.start()
    context.ready(port)
    await context.stop.wait()
    await server.stop(grace=0.25)  # as the gRPC server's (patterns/grpc/server.py)


def ping_permission(args) -> list[tuple[str, int]]:
    """Accept the subscribers' keepalive pings as often as they send them: by default a
    gRPC server allows one every 5 min on a call sending no data, and answers more with
    GOAWAY (too_many_pings), which would look like a dead connection."""
    if args.min_ping_interval_s is None:
        return []
    return [
        ("grpc.http2.min_recv_ping_interval_without_data_ms", int(args.min_ping_interval_s * 1000)),
        ("grpc.http2.max_ping_strikes", 0),
    ]


def add_arguments(parser) -> None:
    parser.add_argument("--min-ping-interval-s", type=float, default=None)


def main() -> None:
    runtime.run_server(__doc__, serve, push=True, bind_socket=False, add_arguments=add_arguments)


if __name__ == "__main__":
    main()
