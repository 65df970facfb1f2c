"""The MQTT event source: publishes the event schedule to a broker topic (paho-mqtt).

MQTT's server is the broker (Mosquitto, started by the runner); this process is the
publisher that puts the events on the topic, at QoS 0 or 1. paho allows 20 QoS 1
messages in flight by default, which would cap a publisher at about 20 per round trip;
it is raised here so the broker, not the client library, sets the pace.

With --tls-ca it connects over TLS and verifies the broker's certificate.

Run it by hand with `python -m patterns.mqtt.server --broker-port 1883`; start
publishing by writing a plan to its stdin (see common/events.py).
"""

from __future__ import annotations

import asyncio
import sys

import paho.mqtt.client as mqtt

from common import server as runtime
from patterns.mqtt.loop import AsyncioMqtt
from patterns.mqtt.protocol import DEFAULT_TOPIC, INFLIGHT


def add_arguments(parser) -> None:
    # The broker runs beside the publisher, in the same place: its loopback reaches it
    # whatever address the broker's listener has (and it is in the certificate).
    parser.add_argument("--broker-host", default="127.0.0.1")
    parser.add_argument("--broker-port", type=int, required=True)
    parser.add_argument("--qos", type=int, choices=(0, 1), default=0)
    parser.add_argument("--topic", default=DEFAULT_TOPIC)


async def publish(context: runtime.ServerContext) -> None:
    """Publish the source's events to the broker, which serves the subscribers."""
    args, source = context.args, context.source
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher", clean_session=True
    )
    client.max_inflight_messages_set(INFLIGHT)
    client.max_queued_messages_set(0)  # unlimited: queueing shows as latency, not loss
    tls = context.client_ssl()  # over TLS when the broker's listener is (verifies --tls-ca)
    if tls is not None:
        client.tls_set_context(tls)
    AsyncioMqtt(client)
    connected = asyncio.get_running_loop().create_future()
    client.on_connect = lambda *_args: connected.done() or connected.set_result(True)
    try:
        client.connect(args.broker_host, args.broker_port, keepalive=30)
        await asyncio.wait_for(connected, 10)
    except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
        print(f"cannot connect to the broker on port {args.broker_port}: {exc}", file=sys.stderr)
        sys.exit(1)
    source.listeners.append(lambda event: client.publish(args.topic, event.data, qos=args.qos))
    context.ready(args.broker_port)  # the subscribers' port is the broker's
    await context.stop.wait()
    client.disconnect()


def main() -> None:
    runtime.run_server(__doc__, publish, push=True, add_arguments=add_arguments, bind_socket=False)


if __name__ == "__main__":
    main()
