"""The network one trial runs on: loopback, or an emulated path between two namespaces.

A trial asks its network where its processes go (`placement`), what address the clients
dial (`target`), and, around the measured window, to start the path's outages and to say
what the path did (`window_opened`, `window_closed`, `record`). On loopback each answer
is today's: nothing to build, nothing to record. Over an emulated path (a `[network]`
table that asks for delay, bandwidth, loss or outages) the servers run in one network
namespace and the generators, their subscribers and webhook receivers in the other,
every packet between them passing through the emulator (bench/network/link.py); the
path is stopped, namespaces and all, when the trial ends, however it ends.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from bench import signals
from bench.drivers.base import Target
from bench.generator_bound import PathLoad, judge_path
from bench.resources import Place, Placement

if TYPE_CHECKING:
    from bench.metrics import TrialResult
    from bench.network.link import PathStats
    from bench.network.spec import PathSpec
    from common.tls import TlsFiles

LOOPBACK_HOST = "127.0.0.1"


class PathSkipped(Exception):
    """This machine cannot build the path a point asks for (not root, no CAP_NET_ADMIN,
    no /dev/net/tun): the point is skipped with this reason, as a pattern whose broker is
    missing is; loopback points still run."""


class TrialNetwork(ABC):
    """The network of one trial (a context manager: whatever it built is gone on exit)."""

    @abstractmethod
    def placement(self, plan: Placement) -> Placement:
        """The run's CPU plan with each side put where this network puts it."""

    @abstractmethod
    def target(self, port: int, tls: TlsFiles | None) -> Target:
        """What the generators dial to reach the server listening on `port`."""

    def window_opened(self, measure_from_ns: int, end_ns: int) -> None:
        """The window's times are set: from `measure_from_ns` to `end_ns` (monotonic)."""
        return  # nothing to start on loopback

    def window_started(self) -> None:
        """The measured window opens now."""
        return  # nothing to count on loopback

    def window_closed(self) -> dict | None:
        """The measured window has just closed: what the path did, for Window.path."""
        return None  # no path

    def record(self, trial: TrialResult) -> None:
        """Add what the path did to the trial, and flag it if the path was the limit."""
        return  # nothing to add on loopback

    def stop(self) -> None:
        return  # nothing was built

    def __enter__(self) -> TrialNetwork:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class Loopback(TrialNetwork):
    """Everyone in the runner's namespace, talking over 127.0.0.1: today's behaviour."""

    def placement(self, plan: Placement) -> Placement:
        return plan

    def target(self, port: int, tls: TlsFiles | None) -> Target:
        return Target(LOOPBACK_HOST, port, tls=tls)


class EmulatedPath(TrialNetwork):
    """Servers in one namespace, clients in the other, the emulator between them."""

    def __init__(self, spec: PathSpec, log_path: Path, cpus: tuple[int, ...] | None, seed: int):
        # Imported here: a loopback run needs none of the namespace machinery.
        from bench.network import link

        why = link.path_unavailable_reason()
        if why is not None:
            raise PathSkipped(f"needs a network path ({spec.describe()}): {why}")
        self.link = link
        self.spec = spec
        self.path = link.NetworkPath(spec, log_path, cpus=cpus, seed=seed)
        self._opened: PathStats | None = None  # the counters as the window opened
        self._closed: PathStats | None = None  # ...and as it closed
        self.failure: str | None = None  # the emulator stopped answering mid-trial
        try:
            self.path.start()
        except link.PathUnavailable as exc:
            self.stop()
            raise PathSkipped(f"needs a network path ({spec.describe()}): {exc}") from None
        except BaseException:
            self.stop()  # Ctrl-C while it was being built: nothing of it stays
            raise

    def placement(self, plan: Placement) -> Placement:
        # The run's Placement stays the CPU plan; this trial's places add the namespaces.
        return replace(
            plan,
            servers=Place(plan.servers.cpus, netns=self.path.server_netns),
            generators=Place(plan.generators.cpus, netns=self.path.client_netns),
        )

    def target(self, port: int, tls: TlsFiles | None) -> Target:
        link = self.link
        return Target(link.SERVER_ADDRESS, port, tls=tls, callback_host=link.CLIENT_ADDRESS)

    def window_opened(self, measure_from_ns: int, end_ns: int) -> None:
        with self._answering():
            self.path.begin_outages(measure_from_ns)
            # Outages are the window's: the drain after it (push) sees the path as it is.
            self.path.end_outages(end_ns)

    def window_started(self) -> None:
        with self._answering():
            self._opened = self.path.stats()

    def window_closed(self) -> dict | None:
        with self._answering():
            self._closed = self.path.stats()
        return self._closed.to_dict() if self._closed else None

    @contextlib.contextmanager
    def _answering(self) -> Iterator[None]:
        """An emulator that has died fails the trial (in `record`), not the run."""
        try:
            yield
        except self.link.PathUnavailable as exc:
            self.failure = self.failure or str(exc)

    def record(self, trial: TrialResult) -> None:
        closed = self._closed
        if closed is None:  # the window never closed (Ctrl-C): what the path did so far
            with self._answering():
                closed = self.path.stats()
        if self.failure and trial.status == "ok":
            trial.status, trial.error = "failed", f"the network path failed: {self.failure}"
        if closed is None:
            return
        record = path_record(self.spec, self._opened, closed)
        # What decides TCP's answer to loss (BBR barely slows for it, Reno halves): the
        # kernel's, as the path's namespaces had it.
        record["tcp_congestion_control"] = self.path.tcp_congestion_control
        record["emulator_scheduling"] = self.path.scheduling
        trial.extra["path"] = record
        if record["path_bound_reasons"] and trial.status == "ok":
            trial.client_bound = True
            trial.client_bound_reasons = [
                *trial.client_bound_reasons,
                *record["path_bound_reasons"],
            ]

    def stop(self) -> None:
        # Never cut short by a second signal: namespaces and the emulator go with it.
        with signals.deferred():
            self.path.stop()


def open_network(spec: PathSpec, log_path: Path, plan: Placement, seed: int) -> TrialNetwork:
    """The trial's network, built and running; PathSkipped when this machine cannot build
    the path it asks for. The emulator is pinned with the generators: it is client-side
    work, and the servers' CPUs stay the servers'."""
    if not spec.emulated:
        return Loopback()
    return EmulatedPath(spec, log_path, plan.generators.cpus, seed)


def path_record(spec: PathSpec, opened: PathStats | None, closed: PathStats) -> dict:
    """A trial's `extra.path` (results_model.TrialPath): the emulator's counters from the
    path's start to the end of the window, the same over the window alone, what that makes
    of loss and the emulator's CPU, and whether the path was the limit. Stopped before the
    window opened, the trial has counters but no window."""
    window = closed.minus(opened) if opened is not None else None
    seconds = (closed.at_ns - opened.at_ns) / 1e9 if opened is not None else 0.0
    directions = {"up": window.up, "down": window.down} if window else {}
    cpu_share = round(window.emulator_cpu_s / seconds, 3) if window and seconds > 0 else None
    limits = {"up": spec.up_mbit, "down": spec.down_mbit}
    reasons = []
    if window and seconds > 0:
        reasons = judge_path(
            PathLoad(
                emulator_cpu_share=cpu_share,
                packets={d: counts.packets for d, counts in directions.items()},
                queue_drops={d: counts.dropped_queue for d, counts in directions.items()},
                limited={d: limits[d] is not None for d in directions},
                late={d: counts.late for d, counts in directions.items()},
                delivered={d: counts.delivered for d, counts in directions.items()},
                write_drops={d: counts.dropped_write for d, counts in directions.items()},
            )
        )
    return {
        "stats": closed.to_dict(),
        "window": window.to_dict() if window else None,
        "window_s": round(seconds, 6),
        "emulator_cpu_share": cpu_share,
        "loss_pct": {d: round(c.loss_pct, 3) for d, c in directions.items() if c.packets},
        "carried_mbit_per_s": {
            d: round(c.delivered_bytes * 8 / seconds / 1e6, 3)
            for d, c in directions.items()
            if seconds > 0
        },
        "path_bound": bool(reasons),
        "path_bound_reasons": reasons,
    }


def plain_loopback(spec: PathSpec) -> bool:
    """Today's network: no path, no TLS. Runs on it record nothing about their network."""
    return not (spec.emulated or spec.tls)


def path_config(spec: PathSpec) -> dict:
    """A path as results.json records it (results_model.PathConfig): what was asked of it,
    and the line charts and tables print for it."""
    return {
        "profile": spec.profile,
        "rtt_ms": spec.rtt_ms,
        "jitter_ms": spec.jitter_ms,
        "down_mbit": spec.down_mbit,
        "up_mbit": spec.up_mbit,
        "loss_pct": spec.loss_pct,
        "outages": spec.outages.model_dump() if spec.outages else None,
        "tls": spec.tls,
        "emulated": spec.emulated,
        "description": spec.describe(),
    }
