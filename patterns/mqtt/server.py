"""The MQTT event source: publishes the event schedule to a broker topic (paho-mqtt).

MQTT's server is the broker (Mosquitto, started by the runner); this process is the
publisher that puts the events on the topic, at QoS 0 or 1. paho allows 20 QoS 1
messages in flight by default, which would cap a publisher at about 20 per round trip;
it is raised here so the broker, not the client library, sets the pace.

Run it by hand with `python -m patterns.mqtt.server --broker-port 1883`; start
publishing by writing a plan to its stdin (see common/events.py).
"""

from __future__ import annotations

import asyncio
import sys

import paho.mqtt.client as mqtt

from common import server as runtime
from common.events import EventSource, add_push_arguments, control_loop
from patterns.mqtt.loop import AsyncioMqtt
from patterns.mqtt.protocol import DEFAULT_TOPIC, INFLIGHT


def main() -> None:
    parser = runtime.argument_parser(__doc__.splitlines()[0])
    add_push_arguments(parser)
    parser.add_argument("--broker-port", type=int, required=True)
    parser.add_argument("--qos", type=int, choices=(0, 1), default=0)
    parser.add_argument("--topic", default=DEFAULT_TOPIC)
    args = parser.parse_args()

    async def run(stop: asyncio.Event) -> None:
        source = EventSource(args.payload_bytes, args.replay_events)
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher", clean_session=True
        )
        client.max_inflight_messages_set(INFLIGHT)
        client.max_queued_messages_set(0)  # unlimited: queueing shows as latency, not loss
        AsyncioMqtt(client)
        connected = asyncio.get_running_loop().create_future()
        client.on_connect = lambda *_args: connected.done() or connected.set_result(True)
        try:
            client.connect(args.host, args.broker_port, keepalive=30)
            await asyncio.wait_for(connected, 10)
        except (OSError, TimeoutError) as exc:
            print(
                f"cannot connect to the broker on port {args.broker_port}: {exc}", file=sys.stderr
            )
            sys.exit(1)
        source.listeners.append(lambda event: client.publish(args.topic, event.data, qos=args.qos))
        control = asyncio.create_task(control_loop(source))
        runtime.announce_ready(args.ready_file, args.broker_port)
        await stop.wait()
        control.cancel()
        client.disconnect()

    runtime.serve(run)


if __name__ == "__main__":
    main()
