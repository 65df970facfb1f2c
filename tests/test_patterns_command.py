"""`bench patterns`: every registered pattern, its kind, what it promises, and whether
this machine has what it needs."""

from __future__ import annotations

import patterns.mqtt.broker
from bench.cli import main
from bench.registry import PATTERNS


def test_every_pattern_is_listed_with_its_kind_and_promise(capsys):
    assert main(["patterns"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line}
    for pattern in PATTERNS.values():
        assert pattern.promises, f"{pattern.name} says nothing of what it promises"
        row = rows[pattern.name]
        assert pattern.kind in row and pattern.promises in row
    assert "(ablation)" in rows["webhooks-no-retry"] and "(ablation)" not in rows["webhooks"]
    assert rows["rest"].endswith("nothing")


def test_a_missing_broker_is_named_with_how_to_install_it(capsys, monkeypatch):
    monkeypatch.setattr(patterns.mqtt.broker, "mosquitto_binary", lambda: None)
    assert main(["patterns"]) == 0
    out = capsys.readouterr().out
    mqtt = next(line for line in out.splitlines() if line.startswith("mqtt-qos1 "))
    assert mqtt.endswith(
        "Mosquitto (MQTT broker): missing (on Debian or Ubuntu: apt-get install mosquitto)"
    )
    assert "not runnable on this machine (skipped with the reason): mqtt-qos0, mqtt-qos1" in out
