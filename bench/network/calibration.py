"""The emulator verified, not trusted: each preset's path built and measured.

`bench calibrate --network PROFILE` (or `all`: every preset but loopback) builds the path,
measures it from inside its namespaces (probes.py) and compares with what was configured:

- round trip: TCP connect time (median) and the kernel's smoothed RTT (`TCP_INFO`) of a
  connection after some echoes. Jitter without reordering raises the delay of packets
  that follow each other closely (each waits for the one before), so a path with jitter
  measures a little above its configured round trip;
- bandwidth, each way: the bottleneck's capacity (UDP sent faster than the link, IP bytes
  per second at the receiver) and bulk TCP goodput after the slow-start ramp (payload
  only: about 1448/1500 of the link, less where loss holds TCP back);
- loss, each way: sequence-numbered UDP datagrams counted at the receiver (N stated, with
  the binomial standard deviation), beside the emulator's own count.

Results go to `results/network-calibration.json`, per profile, with when, where and on
which commit they were measured; `latest_network_calibration` reads one back for a run.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import environment
from bench.network import probes
from bench.network.link import NetworkPath, PathUnavailable, link_config, path_unavailable_reason
from bench.network.spec import PRESETS, NetworkSettings, PathSpec
from bench.resources import plan_placement
from bench.results import utc_now, write_json

PROJECT_DIR = Path(__file__).resolve().parents[2]
NETWORK_CALIBRATION_FILE = "network-calibration.json"
NETWORK_CALIBRATION_FORMAT = 1
CONNECTS = 15
ECHOES = 15
LOSS_DATAGRAMS = 3000  # per direction: at 1 % loss, one standard deviation is 0.18 %
LOSS_PAYLOAD_BYTES = 32  # 60 bytes on the wire with IP and UDP headers
LOSS_RATE_PER_S = 4000.0  # at most; below 40 % of a slow link's packet rate
MEASURE_S = 1.5
CAPACITY_S = 1.0


def calibratable_profiles() -> list[str]:
    """Every preset that builds a path (loopback has none)."""
    return [name for name in PRESETS if NetworkSettings(profile=name).path().emulated]


def _ratio(measured: float | None, configured: float | None) -> float | None:
    if measured is None or not configured:
        return None
    return round(measured / configured, 3)


def _loss_rates(spec: PathSpec) -> dict[str, float]:
    """Datagrams per second each way: at most LOSS_RATE_PER_S, and under 40 % of the
    link's packet rate for these small datagrams, so that no queue ever fills."""
    bits = (LOSS_PAYLOAD_BYTES + probes.IP_UDP_HEADER_BYTES) * 8
    rates = {}
    for direction, mbit in (("up", spec.up_mbit), ("down", spec.down_mbit)):
        rates[direction] = (
            min(LOSS_RATE_PER_S, 0.4 * mbit * 1e6 / bits) if mbit else (LOSS_RATE_PER_S)
        )
    return rates


def measure_path(path: NetworkPath, spec: PathSpec) -> dict:
    """Every measurement of one built path, as stored."""
    round_trip = probes.round_trip(path, CONNECTS, ECHOES)
    # Slow start takes several round trips to fill the link; skip at least ten of them.
    ramp_s = max(0.5, 10 * spec.rtt_ms / 1000)
    bulk = {d: probes.goodput(path, d, ramp_s, MEASURE_S) for d in ("down", "up")}
    limited = {d: m for d, m in (("down", spec.down_mbit), ("up", spec.up_mbit)) if m}
    capacity = probes.capacity(path, limited, CAPACITY_S) if limited else {}
    loss = probes.loss(path, LOSS_DATAGRAMS, _loss_rates(spec), LOSS_PAYLOAD_BYTES)
    configured_mbit = {"down": spec.down_mbit, "up": spec.up_mbit}
    measured: dict = {
        "rtt": {
            "connect_p50_ms": round(round_trip.connect_p50_ms, 3),
            "tcp_info_ms": round_trip.tcp_info_rtt_ms,
            "tcp_info_rttvar_ms": round_trip.tcp_info_rttvar_ms,
            "echo_p50_ms": round(round_trip.echo_p50_ms, 3),
            "connects": CONNECTS,
            "echoes": ECHOES,
        }
    }
    ratios: dict = {
        "rtt_connect": _ratio(round_trip.connect_p50_ms, spec.rtt_ms),
        "rtt_tcp_info": _ratio(round_trip.tcp_info_rtt_ms, spec.rtt_ms),
    }
    for direction in ("down", "up"):
        udp = capacity.get(direction)
        result = loss[direction]
        measured[direction] = {
            "capacity_mbit": udp.receive_mbit if udp else None,
            "tcp_goodput_mbit": bulk[direction].goodput_mbit,
            "tcp_wire_mbit": bulk[direction].wire_mbit,
            "tcp_ramp_s": ramp_s,
            "tcp_measure_s": MEASURE_S,
            "emulator_cpu_share": bulk[direction].emulator_cpu_share,
            "loss_pct": round(result.loss_pct, 3),
            "loss_stderr_pct": round(result.loss_stderr_pct(spec.loss_pct), 3),
            "loss_datagrams": result.sent,
            "path_loss_pct": round(result.path_loss_pct, 3),
        }
        ratios[f"capacity_{direction}"] = _ratio(
            udp.receive_mbit if udp else None, configured_mbit[direction]
        )
        ratios[f"goodput_{direction}"] = _ratio(
            bulk[direction].goodput_mbit, configured_mbit[direction]
        )
        ratios[f"loss_{direction}"] = _ratio(result.loss_pct, spec.loss_pct)
    stats = path.stats()
    measured["emulator_cpu_s"] = round(stats.emulator_cpu_s, 3)
    measured["path"] = stats.to_dict()
    return {"measured": measured, "ratios": ratios}


def _environment() -> dict:
    """Where it was measured: enough to tell one machine and commit from another."""
    return {
        "cpu_model": environment.cpu_model(),
        "usable_cpus": sorted(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "git": environment.git_commit(PROJECT_DIR),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
    }


def calibrate_profile(profile: str, log_dir: Path, seed: int = 0) -> dict:
    """Build `profile`'s path, measure it, stop it; the stored entry."""
    spec = NetworkSettings(profile=profile).path()
    started = time.monotonic()
    # Pinned as runs pin it (bench/trialpath.py): with the generators.
    cpus = plan_placement(True).generators.cpus
    with NetworkPath(spec, log_dir / f"emulator-{profile}.log", cpus=cpus, seed=seed) as path:
        found = measure_path(path, spec)
    return {
        "profile": profile,
        "describe": spec.describe(),
        "configured": link_config(spec, seed),
        "tcp_congestion_control": path.tcp_congestion_control,
        "emulator_scheduling": path.scheduling,
        **found,
        "took_s": round(time.monotonic() - started, 2),
        "measured_at": utc_now(),
    }


def calibrate_network(
    results_dir: Path, profiles: list[str], say: Callable[[str], None] = print
) -> dict:
    """Calibrate each profile, print the table, store the record (profiles measured
    before and not now are kept). Raises PathUnavailable when no path can be built."""
    reason = path_unavailable_reason()
    if reason:
        raise PathUnavailable(reason)
    path = results_dir / NETWORK_CALIBRATION_FILE
    record = _read(path) or {"format": NETWORK_CALIBRATION_FORMAT, "profiles": {}}
    record["environment"] = _environment()
    with tempfile.TemporaryDirectory(prefix="network-calibration-") as logs:
        for profile in profiles:
            say(f"calibrating the {profile} path ...")
            entry = calibrate_profile(profile, Path(logs))
            record["profiles"][profile] = {**entry, "environment": record["environment"]}
            say(format_entry(entry))
    results_dir.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
    say(f"stored in {path}")
    return record


def _read(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("format") != NETWORK_CALIBRATION_FORMAT:
        return None
    return record


def latest_network_calibration(results_dir: Path, profile: str) -> dict | None:
    """The stored calibration of `profile` (configured, measured, ratios, measured_at,
    environment), or None if it was never calibrated here."""
    record = _read(Path(results_dir) / NETWORK_CALIBRATION_FILE)
    if record is None:
        return None
    return record["profiles"].get(profile)


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.3g}{unit}" if abs(value) < 100 else f"{value:.0f}{unit}"


def format_entry(entry: dict) -> str:
    """One profile's configured against measured values, as a table."""
    configured, measured, ratios = entry["configured"], entry["measured"], entry["ratios"]
    rows = [
        ("RTT, connect p50", configured["rtt_ms"], measured["rtt"]["connect_p50_ms"], "ms",
         ratios["rtt_connect"]),
        ("RTT, TCP_INFO", configured["rtt_ms"], measured["rtt"]["tcp_info_ms"], "ms",
         ratios["rtt_tcp_info"]),
    ]  # fmt: skip
    for direction in ("down", "up"):
        mbit = configured[f"{direction}_mbit"]
        side = measured[direction]
        rows += [
            (f"capacity {direction} (UDP)", mbit, side["capacity_mbit"], "Mbit/s",
             ratios[f"capacity_{direction}"]),
            (f"TCP goodput {direction}", mbit, side["tcp_goodput_mbit"], "Mbit/s",
             ratios[f"goodput_{direction}"]),
            (f"loss {direction} (N={side['loss_datagrams']})", configured["loss_pct"],
             side["loss_pct"], "%", ratios[f"loss_{direction}"]),
        ]  # fmt: skip
    lines = [
        f"{entry['describe']}; TCP congestion control {entry['tcp_congestion_control']} "
        f"(took {entry['took_s']:g} s)",
        f"  {'measure':<24} {'configured':>14} {'measured':>14} {'ratio':>7}",
    ]
    for name, want, got, unit, ratio in rows:
        want_text = "unlimited" if want is None and unit == "Mbit/s" else _number(want, " " + unit)
        lines.append(
            f"  {name:<24} {want_text:>14} {_number(got, ' ' + unit):>14} "
            f"{'-' if ratio is None else f'{ratio:.2f}':>7}"
        )
    cpu = [measured[d]["emulator_cpu_share"] for d in ("down", "up")]
    lines.append(
        "  emulator CPU during bulk transfers: "
        + ", ".join(f"{d} {_number(c)} s/s" for d, c in zip(("down", "up"), cpu, strict=True))
    )
    return "\n".join(lines)
