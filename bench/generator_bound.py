"""Is the load generator (or the network emulator), not the pattern, what a point measured?

A point is generator-bound (client-bound) when the harness's own generator processes
were at their limit: then its throughput is only a lower bound on what the pattern can
do, and its latency includes time the answers spent waiting for the generator. Such a
point is shown, with the reasons, but never ranked and never allowed to fail a claim.

Four symptoms, any one of which is enough:

- **Total CPU.** The generator processes together used nearly all the CPUs they were
  given. Judging each process against one CPU misses two processes sharing one CPU (each
  at 50%, the CPU at 100%).
- **One event loop.** A single generator process (one event loop, one thread of Python)
  used nearly a whole CPU.
- **Loop lag.** The generator's event loop woke a probe late (bench/looplag.py): work
  waited for the loop, whatever the CPU share says (a loop blocked in system calls is
  saturated below 100%).
- **Send lag** (open loop). Requests went out late although a connection was free: the
  generator could not keep its own schedule.

The thresholds below are set from measurements on the reference machine; the README
("When is a point generator-bound?") has them with the evidence.

A point over an emulated network path (bench/network/link.py) is **path-bound** when the
emulator, one process that carries every packet of the trial, was the limit: its CPU, or
its own queue dropping packets the path's settings do not explain. It is flagged like a
generator-bound point: a lower bound on the pattern, never a loss.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Thresholds, set from a full `make bench` on the reference machine (2 vCPUs: servers on
# one, generators on the other; 300 trials), before the runs they now judge:
# - generators that were the limit (the server had headroom, 0.2-0.8 of its CPU) ran at
#   0.98-1.00 of their CPU, which was 0.99-1.00 busy, and their loops woke 0.4-84 ms late
#   (median);
# - generators with headroom (the server at 0.99-1.00, or a light load) ran at 0.03-0.88
#   of a CPU, their CPU at most 0.91 busy, and their loops woke at most 0.31 ms late.
LOOP_CPU_SATURATED = 0.95
TOTAL_CPU_SATURATED = 0.95
CPUS_BUSY_SATURATED = 0.97
LOOP_LAG_P50_US = 500
# Open loop, with a connection free: 0.06-0.13 ms late at p90 with headroom.
SEND_LAG_P90_US = 1_000
# How the loop-lag probe samples (bench/looplag.py), recorded with the thresholds so that a
# comparison of runs says when it changed: 1, a wake-up of its own every 2 ms; 2, riding
# on the timer's other wake-ups (an open loop's sends), a wake-up of its own only when none
# comes within its interval.
LOOP_LAG_PROBE_VERSION = 2


@dataclass(frozen=True)
class GeneratorLoad:
    """What the generator processes of one trial used and showed."""

    cpu_s: list[float]  # per process, in the measured window
    measured_s: float
    cpus_held: int  # CPUs the generators were pinned to (or could use)
    loop_lag_p50_us: int | None  # None: too few probe samples
    send_lag_p90_us: int | None = None  # open loop only
    cpus_busy: float | None = None  # the generators' CPUs, busy by anyone (pinned only)

    @property
    def total_cpu_share(self) -> float:
        """Generator CPU over what the processes could use: at most one CPU each, and no
        more than the CPUs they were given."""
        capacity = min(len(self.cpu_s), self.cpus_held) * self.measured_s
        return sum(self.cpu_s) / capacity if capacity > 0 else 0.0

    @property
    def loop_cpu_shares(self) -> list[float]:
        return [cpu / self.measured_s if self.measured_s else 0.0 for cpu in self.cpu_s]


def judge(load: GeneratorLoad) -> list[str]:
    """Why the generator was the limit at this trial; empty if it was not."""
    reasons = []
    if load.total_cpu_share >= TOTAL_CPU_SATURATED:
        reasons.append(
            f"generators used {load.total_cpu_share:.0%} of the {load.cpus_held} CPU(s) they held"
        )
    busiest = max(load.loop_cpu_shares, default=0.0)
    if busiest >= LOOP_CPU_SATURATED and not reasons:
        reasons.append(f"a generator's event loop used {busiest:.0%} of a CPU")
    if load.cpus_busy is not None and load.cpus_busy >= CPUS_BUSY_SATURATED and not reasons:
        reasons.append(f"the generators' CPU(s) were {load.cpus_busy:.0%} busy")
    if load.loop_lag_p50_us is not None and load.loop_lag_p50_us >= LOOP_LAG_P50_US:
        reasons.append(f"its event loop woke {load.loop_lag_p50_us / 1000:.2f} ms late (median)")
    if load.send_lag_p90_us is not None and load.send_lag_p90_us >= SEND_LAG_P90_US:
        reasons.append(
            f"it sent requests {load.send_lag_p90_us / 1000:.1f} ms late (p90) with a "
            "connection free"
        )
    return reasons


def thresholds() -> dict:
    """The thresholds in force, recorded with every run so a reader knows what judged it."""
    return {
        "loop_cpu_share": LOOP_CPU_SATURATED,
        "total_cpu_share": TOTAL_CPU_SATURATED,
        "cpus_busy": CPUS_BUSY_SATURATED,
        "loop_lag_p50_us": LOOP_LAG_P50_US,
        "send_lag_p90_us": SEND_LAG_P90_US,
        "loop_lag_probe": LOOP_LAG_PROBE_VERSION,
    }


def merged_reasons(per_trial: list[list[str]]) -> list[str]:
    """The reasons of several trials, one line per kind of symptom: the trial figures
    as a range, and in how many trials it showed ("its event loop woke 1.40 to 1.47 ms
    late (median), 3 of 3 trials")."""
    kinds: dict[str, list[str]] = {}
    for reasons in per_trial:
        for reason in reasons:
            kinds.setdefault(re.sub(r"\d[\d.,]*", "#", reason), []).append(reason)
    merged = []
    for kind, seen in kinds.items():
        numbers = [[float(n.replace(",", "")) for n in re.findall(r"\d[\d.,]*", r)] for r in seen]
        text = kind
        for column in zip(*numbers, strict=True):
            low, high = min(column), max(column)
            shown = f"{low:g}" if low == high else f"{low:g} to {high:g}"
            text = text.replace("#", shown, 1)
        merged.append(f"{text}, {len(seen)} of {len(per_trial)} trials")
    return merged


# The network emulator: one process, one event loop releasing every packet on a timer.
# It counts the packets it writes more than 0.5 ms after their release time (delay the
# path was not asked for: it was descheduled or busy); more than 1 % of them, and at
# least 10 (one late packet among 63 in a window mostly dark moves no percentile),
# flags the trial. A loop busy most of the time falls behind too: flagged well before a
# full CPU.
EMULATOR_LATE_SHARE = 0.01
EMULATOR_LATE_MIN = 10
EMULATOR_CPU_SATURATED = 0.8


@dataclass(frozen=True)
class PathLoad:
    """What the network emulator of one trial used and dropped over the measured window,
    per direction ("up": client to server, "down": server to client)."""

    emulator_cpu_share: float | None  # of one CPU; None when not measured
    packets: dict[str, int]  # packets that entered the emulator
    queue_drops: dict[str, int]  # dropped by its queue
    limited: dict[str, bool]  # whether the path's settings limit that direction's rate
    late: dict[str, int] = field(default_factory=dict)  # released > 0.5 ms after due
    delivered: dict[str, int] = field(default_factory=dict)
    write_drops: dict[str, int] = field(default_factory=dict)  # refused by the device


def judge_path(load: PathLoad) -> list[str]:
    """Why the network emulator was the limit at this trial; empty if it was not. Queue
    drops in a direction the settings limit are the bottleneck doing its job (a router's
    tail drop); in an unlimited direction, only the emulator falling behind explains them."""
    reasons = []
    share = load.emulator_cpu_share
    if share is not None and share >= EMULATOR_CPU_SATURATED:
        reasons.append(f"the network emulator used {share:.0%} of a CPU")
    for direction, drops in load.queue_drops.items():
        if drops and not load.limited.get(direction, False):
            packets = load.packets.get(direction, 0)
            reasons.append(
                f"the network emulator's queue dropped {drops:,} of {packets:,} packets "
                f"{direction}, a direction with no rate limit"
            )
    for direction, late in load.late.items():
        delivered = load.delivered.get(direction, 0)
        if delivered and late >= EMULATOR_LATE_MIN and late / delivered > EMULATOR_LATE_SHARE:
            reasons.append(
                f"the network emulator released {late:,} of {delivered:,} packets {direction} "
                "more than 0.5 ms late"
            )
    for direction, drops in load.write_drops.items():
        if drops:
            reasons.append(
                f"the receiving side refused {drops:,} packets {direction} from the emulator"
            )
    return reasons


def path_thresholds() -> dict:
    """The path-bound thresholds in force, recorded with every run over a path."""
    return {
        "emulator_cpu_share": EMULATOR_CPU_SATURATED,
        "unlimited_queue_drops": 0,
        "late_share": EMULATOR_LATE_SHARE,
        "late_min": EMULATOR_LATE_MIN,
        "write_drops": 0,
    }
