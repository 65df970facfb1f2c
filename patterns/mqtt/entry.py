"""The registry entry of the `mqtt` folder: the pattern(s) it offers."""

from __future__ import annotations

from bench.pattern import PUSH, Pattern
from patterns.mqtt.broker import MOSQUITTO

HERE = __package__

MQTT = Pattern(
    name="mqtt-qos0",
    label="MQTT QoS 0 (Mosquitto, paho)",
    kind=PUSH,
    server_module=f"{HERE}.server",
    driver_path=f"{HERE}.driver:MqttDriver",
    options_path=f"{HERE}.driver:MqttOptions",
    fixed_options={"qos": 0},
    launcher_path=f"{HERE}.broker:launch_mosquitto",
    color="#d62728",
    promises="at most once: events sent while away are lost",
    needs=(MOSQUITTO,),
    packages=("paho-mqtt",),
    tool_probe_path=f"{HERE}.calibration:TOOL_PROBE",
)

PATTERNS = [
    MQTT,
    MQTT.variant(
        name="mqtt-qos1",
        label="MQTT QoS 1 (Mosquitto, paho, persistent session)",
        fixed_options={"qos": 1},
        color="#ff9896",
        promises="at least once: the broker queues for the persistent session",
        # Calibrated on its own: its subscribers acknowledge every message (PUBACK).
        tool_probe_path=MQTT.tool_probe_path,
    ),
]
