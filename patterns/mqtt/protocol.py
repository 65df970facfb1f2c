"""What MQTT's publisher and subscribers agree on."""

DEFAULT_TOPIC = "bench/events"
# Messages in flight (QoS 1, unacknowledged) per client, on both sides: paho's default
# of 20 would cap the rate a subscriber can acknowledge, not the protocol.
INFLIGHT = 1000
