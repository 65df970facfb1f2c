"""What each process of a trial holds over time: resident memory and open file descriptors.

Every trial records it, at a few samples per trial; a soak (`bench run --soak MINUTES`)
runs the scenarios in `scenarios/soak/` for minutes, where a leak shows as growth: memory
that keeps rising after the first minute, descriptors that are never given back. Growth is
judged on the second half of the window, after start-up allocations and caches have
settled, as a least-squares slope per minute.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from bench.results_model import Trial, as_trial

# Shorter trials hold a few samples each: nothing a reader could call a trend.
MIN_SOAK_S = 60.0
# At least one sample a second, at most about this many per process over a trial.
MAX_SAMPLES = 600
MIN_INTERVAL_S = 1.0


def _open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None  # gone, or not ours to look at


@dataclass
class ProcessSeries:
    pid: int
    t_s: list[float] = field(default_factory=list)
    rss_bytes: list[int] = field(default_factory=list)
    open_fds: list[int] = field(default_factory=list)


class ProcessTimeline:
    """Samples named processes (a server, a broker, each generator) from one start time."""

    def __init__(
        self,
        processes: dict[str, int],
        expected_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.series = {name: ProcessSeries(pid) for name, pid in processes.items()}
        self.interval_s = max(MIN_INTERVAL_S, expected_s / MAX_SAMPLES)
        self._clock = clock
        self._started = clock()
        self._next = self._started

    def maybe_sample(self) -> None:
        """Sample if the interval has passed since the last sample (call it often)."""
        now = self._clock()
        if now < self._next:
            return
        self._next = now + self.interval_s
        for series in self.series.values():
            try:
                rss = psutil.Process(series.pid).memory_info().rss
            except psutil.Error:
                continue
            fds = _open_fds(series.pid)
            if fds is None:
                continue
            series.t_s.append(round(now - self._started, 3))
            series.rss_bytes.append(rss)
            series.open_fds.append(fds)

    def to_dict(self) -> dict:
        return {
            "interval_s": self.interval_s,
            "processes": {
                name: {
                    "pid": s.pid,
                    "t_s": s.t_s,
                    "rss_bytes": s.rss_bytes,
                    "open_fds": s.open_fds,
                }
                for name, s in self.series.items()
            },
        }


@dataclass(frozen=True)
class Growth:
    """How one quantity moved over a trial: first and last samples, and the slope per
    minute over the second half (None with too few samples there to fit a line)."""

    first: float
    last: float
    peak: float
    per_minute_late: float | None

    @classmethod
    def of(cls, t_s: list[float], values: list[float]) -> Growth:
        half = [(t, v) for t, v in zip(t_s, values, strict=True) if t >= t_s[-1] / 2]
        return cls(values[0], values[-1], max(values), _slope_per_minute(half))


def _slope_per_minute(samples: list[tuple[float, float]]) -> float | None:
    if len(samples) < 3:
        return None
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    spread = sum((t - mean_t) ** 2 for t, _ in samples)
    if spread == 0:
        return None
    return 60 * sum((t - mean_t) * (v - mean_v) for t, v in samples) / spread


def growth_lines(trial: Trial | dict) -> list[str]:
    """One line per process of a trial (results.json's trial): memory and descriptors,
    first -> last, and their late slope."""
    timeline = as_trial(trial).extra.process_resources
    if not timeline:
        return []
    lines = []
    for name, series in timeline.processes.items():
        if len(series.t_s) < 2:
            continue
        mib = [b / 2**20 for b in series.rss_bytes]
        rss, fds = Growth.of(series.t_s, mib), Growth.of(series.t_s, series.open_fds)
        lines.append(
            f"{name:24} RSS {rss.first:7.1f} -> {rss.last:7.1f} MiB "
            f"(peak {rss.peak:.1f}, {_per_minute(rss.per_minute_late, 'MiB', 2)}); "
            f"fds {fds.first:.0f} -> {fds.last:.0f} "
            f"({_per_minute(fds.per_minute_late, '', 1)}) over {series.t_s[-1] / 60:.1f} min"
        )
    return lines


def _per_minute(slope: float | None, unit: str, digits: int) -> str:
    if slope is None:
        return "too short to fit a slope"
    return f"{slope:+.{digits}f}{' ' + unit if unit else ''}/min over the second half"
