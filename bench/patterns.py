"""The registry of API patterns: the one place a new pattern is added.

A pattern is its server module in `servers/`, its driver in `bench/drivers/`, and one
entry below. Nothing else in the runner knows pattern names. A variant (GraphQL asking
for a few fields, say) is another entry with the same server and driver and fixed options.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.brokers import MOSQUITTO
from bench.drivers.base import Driver
from bench.needs import Requirement
from bench.options import PatternOptions
from bench.serverproc import ServerGroup, ServerProcess
from servers.dataset import DatasetSpec

REQUEST_RESPONSE = "request_response"
PUSH = "push"


def _load(path: str):
    module_name, attribute = path.split(":")
    return getattr(importlib.import_module(module_name), attribute)


@dataclass(frozen=True)
class Pattern:
    name: str
    label: str  # how charts name it: the pattern and the stack that implements it
    workloads: frozenset[str]
    server_module: str  # run as `python -m <server_module>`
    driver_path: str  # "module:Class"
    color: str  # one fixed colour per pattern, across every chart
    options_path: str | None = None  # "module:Class" of its PatternOptions, if it has any
    fixed_options: dict = field(default_factory=dict)  # what makes a variant a variant
    # A variant with one of its pattern's mechanisms switched off, to show by ablation
    # what that mechanism is worth: says which one.
    ablation: str = ""
    # An option of the scenario's that decides the pattern's latency (a polling interval):
    # rankings on latency say so beside it.
    latency_set_by: str = ""
    launcher_path: str | None = None  # "module:function" for patterns needing more processes
    # What it guarantees the client: for push, what happens to events sent while a
    # subscriber is away; for request/response, how it reports a request it cannot answer.
    promises: str = ""
    needs: tuple[Requirement, ...] = ()  # beyond the Python packages make installs

    def driver_class(self) -> type[Driver]:
        return _load(self.driver_path)

    def options_class(self) -> type[PatternOptions]:
        return _load(self.options_path) if self.options_path else PatternOptions

    def options(self, settings: dict | None = None) -> PatternOptions:
        """This pattern's options from a scenario's settings; raises pydantic's
        ValidationError for bad ones. A variant's fixed options always win: the scenario
        loader refuses settings that would change them (`fixed_options_overridden`)."""
        return self.options_class().model_validate({**(settings or {}), **self.fixed_options})

    def fixed_options_overridden(self, settings: dict | None) -> dict:
        """The settings that would change what this variant fixes, as {option: value}.
        Writing the fixed value itself (the same type too: true is not 1) changes nothing."""
        return {
            name: value
            for name, value in (settings or {}).items()
            if name in self.fixed_options
            and not (
                type(value) is type(self.fixed_options[name]) and value == self.fixed_options[name]
            )
        }

    def servers(
        self,
        dataset: DatasetSpec,
        options: PatternOptions,
        logs: Path,
        name: str,
        cpus: tuple[int, ...] | None,
    ) -> ServerGroup:
        """The process(es) this pattern runs; most run one, `python -m <server_module>`."""
        if self.launcher_path:
            return _load(self.launcher_path)(self, dataset, options, logs, name, cpus)
        ready = logs / f".{name}.ready"
        process = ServerProcess(
            self.name,
            self.server_command(dataset, ready, options),
            logs / f"{name}.log",
            ready,
            cpus,
            control=PUSH in self.workloads,
        )
        return ServerGroup([process])

    def server_command(
        self, dataset: DatasetSpec, ready_file: Path, options: PatternOptions | None = None
    ) -> list[str]:
        command = [sys.executable, "-m", self.server_module, "--ready-file", str(ready_file)]
        return command + dataset.as_args() + (options or self.options()).server_args()


_RR = frozenset({REQUEST_RESPONSE})
_PUSH = frozenset({PUSH})

PATTERNS: dict[str, Pattern] = {
    pattern.name: pattern
    for pattern in [
        Pattern(
            name="rest",
            label="REST (aiohttp, JSON)",
            workloads=_RR,
            server_module="servers.rest",
            driver_path="bench.drivers.rest:RestDriver",
            options_path="bench.drivers.rest:RestOptions",
            color="#1f77b4",
            promises="an HTTP status per request (404, 422...)",
        ),
        Pattern(
            name="rest-no-keepalive",
            label="REST without keep-alive (a connection per request)",
            workloads=_RR,
            server_module="servers.rest",
            driver_path="bench.drivers.rest:RestDriver",
            options_path="bench.drivers.rest:RestOptions",
            fixed_options={"keep_alive": False},
            ablation="connection reuse (keep-alive)",
            color="#aec7e8",
            promises="an HTTP status per request; a new TCP connection each",
        ),
        Pattern(
            name="graphql",
            label="GraphQL (graphql-core, all fields)",
            workloads=_RR,
            server_module="servers.graphql",
            driver_path="bench.drivers.graphql:GraphqlDriver",
            options_path="bench.drivers.graphql:GraphqlOptions",
            color="#e377c2",
            promises="a GraphQL errors list; depth, alias, field and cost limits",
        ),
        Pattern(
            name="graphql-fields",
            label="GraphQL (graphql-core, 3 fields)",
            workloads=_RR,
            server_module="servers.graphql",
            driver_path="bench.drivers.graphql:GraphqlDriver",
            options_path="bench.drivers.graphql:GraphqlOptions",
            fixed_options={"selection": "few"},
            color="#f7b6d2",
            promises="a GraphQL errors list; only the fields asked for",
        ),
        Pattern(
            name="grpc",
            label="gRPC (grpc.aio, Protobuf)",
            workloads=_RR,
            server_module="servers.grpc",
            driver_path="bench.drivers.grpc:GrpcDriver",
            options_path="bench.drivers.grpc:GrpcOptions",
            color="#2ca02c",
            promises="a gRPC status per call (NOT_FOUND, INVALID_ARGUMENT...)",
        ),
        Pattern(
            name="websocket",
            label="WebSocket (websockets, JSON)",
            workloads=_RR,
            server_module="servers.websocket",
            driver_path="bench.drivers.websocket:WebsocketDriver",
            options_path="bench.drivers.websocket:WebsocketOptions",
            color="#ff7f0e",
            promises="an error message per request, matched by correlation id",
        ),
        Pattern(
            name="jsonrpc",
            label="JSON-RPC 2.0 (aiohttp)",
            workloads=_RR,
            server_module="servers.jsonrpc",
            driver_path="bench.drivers.jsonrpc:JsonRpcDriver",
            color="#9467bd",
            promises="a JSON-RPC error object per call (spec codes)",
        ),
        Pattern(
            name="soap",
            label="SOAP 1.1 (aiohttp, XML)",
            workloads=_RR,
            server_module="servers.soap",
            driver_path="bench.drivers.soap:SoapDriver",
            color="#8c564b",
            promises="a SOAP Fault per request",
        ),
        Pattern(
            name="sse",
            label="SSE (aiohttp, Last-Event-ID resume)",
            workloads=_PUSH,
            server_module="servers.sse",
            driver_path="bench.drivers.sse:SseDriver",
            options_path="bench.drivers.sse:SseOptions",
            color="#17becf",
            promises="resume: events missed while away are replayed (Last-Event-ID)",
        ),
        Pattern(
            name="sse-no-resume",
            label="SSE without Last-Event-ID (resumes from now)",
            workloads=_PUSH,
            server_module="servers.sse",
            driver_path="bench.drivers.sse:SseDriver",
            options_path="bench.drivers.sse:SseOptions",
            fixed_options={"resume": False},
            ablation="resuming with Last-Event-ID",
            color="#9edae5",
            promises="none: events sent while away are lost",
        ),
        Pattern(
            name="websocket-push",
            label="WebSocket push (websockets, no replay)",
            workloads=_PUSH,
            server_module="servers.websocket_push",
            driver_path="bench.drivers.websocket_push:WebsocketPushDriver",
            options_path="bench.drivers.websocket_push:WebsocketPushOptions",
            color="#ff7f0e",
            promises="none: events sent while away are lost",
        ),
        Pattern(
            name="long-polling",
            label="Long polling (aiohttp, cursor)",
            workloads=_PUSH,
            server_module="servers.polling",
            driver_path="bench.drivers.polling:PollingDriver",
            options_path="bench.drivers.polling:LongPollingOptions",
            color="#bcbd22",
            promises="resume: the next poll's cursor gets what was missed",
        ),
        Pattern(
            name="short-polling",
            label="Short polling (aiohttp, cursor)",
            workloads=_PUSH,
            server_module="servers.polling",
            driver_path="bench.drivers.polling:PollingDriver",
            options_path="bench.drivers.polling:ShortPollingOptions",
            latency_set_by="interval_s",
            color="#7f7f7f",
            promises="resume: the next poll's cursor gets what was missed",
        ),
        Pattern(
            name="grpc-stream",
            label="gRPC server streaming (grpc.aio)",
            workloads=_PUSH,
            server_module="servers.grpc_stream",
            driver_path="bench.drivers.grpc_stream:GrpcStreamDriver",
            options_path="bench.options:PushServerOptions",
            color="#2ca02c",
            promises="resume: a new stream from the last sequence number",
        ),
        Pattern(
            name="mqtt-qos0",
            label="MQTT QoS 0 (Mosquitto, paho)",
            workloads=_PUSH,
            server_module="servers.mqtt_publisher",
            driver_path="bench.drivers.mqtt:MqttDriver",
            options_path="bench.drivers.mqtt:MqttOptions",
            fixed_options={"qos": 0},
            launcher_path="bench.brokers:launch_mosquitto",
            color="#d62728",
            promises="at most once: events sent while away are lost",
            needs=(MOSQUITTO,),
        ),
        Pattern(
            name="mqtt-qos1",
            label="MQTT QoS 1 (Mosquitto, paho, persistent session)",
            workloads=_PUSH,
            server_module="servers.mqtt_publisher",
            driver_path="bench.drivers.mqtt:MqttDriver",
            options_path="bench.drivers.mqtt:MqttOptions",
            fixed_options={"qos": 1},
            launcher_path="bench.brokers:launch_mosquitto",
            color="#ff9896",
            promises="at least once: the broker queues for the persistent session",
            needs=(MOSQUITTO,),
        ),
        Pattern(
            name="webhooks",
            label="Webhooks (aiohttp, HMAC-signed, retried)",
            workloads=_PUSH,
            server_module="servers.webhooks",
            driver_path="bench.drivers.webhooks:WebhookDriver",
            options_path="bench.drivers.webhooks:WebhookOptions",
            color="#9467bd",
            promises="at least once: retried until acknowledged; receivers deduplicate",
        ),
        Pattern(
            name="webhooks-no-retry",
            label="Webhooks without retries (one attempt per event)",
            workloads=_PUSH,
            server_module="servers.webhooks",
            driver_path="bench.drivers.webhooks:WebhookDriver",
            options_path="bench.drivers.webhooks:WebhookOptions",
            fixed_options={"max_attempts": 1},
            ablation="the provider's retries",
            color="#c5b0d5",
            promises="at most once: one attempt per event",
        ),
        Pattern(
            name="webhooks-no-dedup",
            label="Webhooks, receivers without deduplication",
            workloads=_PUSH,
            server_module="servers.webhooks",
            driver_path="bench.drivers.webhooks:WebhookDriver",
            options_path="bench.drivers.webhooks:WebhookOptions",
            fixed_options={"deduplicate": False},
            ablation="the receivers' deduplication",
            color="#8c6d31",
            promises="at least once, and redeliveries processed again",
        ),
        Pattern(
            name="webhooks-no-verify",
            label="Webhooks, receivers without signature checks",
            workloads=_PUSH,
            server_module="servers.webhooks",
            driver_path="bench.drivers.webhooks:WebhookDriver",
            options_path="bench.drivers.webhooks:WebhookOptions",
            fixed_options={"verify_signatures": False},
            ablation="the receivers' signature checks",
            color="#e7969c",
            promises="at least once, and forged deliveries accepted",
        ),
    ]
}


def get_pattern(name: str) -> Pattern:
    return PATTERNS[name]
