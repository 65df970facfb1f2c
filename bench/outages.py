"""Outages on a network path as the subscribers lived them: how long each took to notice
its connection was dead, and how long after the path came back it was subscribed again.

The path (bench/network/link.py) records when each outage began and ended; drivers record
when they themselves found their connection dead and when they were receiving again
(`Subscription.noticed_dead` / `recovered`), or, where the publisher is the one watching
(a webhook provider's attempt timeout), the publisher does, per subscriber, in its tally.
All are monotonic ns from one clock. What was lost, duplicated or delayed meanwhile is
the push engine's ordinary accounting; this adds the detector's side.

For each outage, a watcher's detection time is its first notice at or after the outage
began and before the next one began (or the trial's end): a watcher that notices nothing
in that span never noticed, which is a figure (a detector that is off, or slower than
the outage), not a gap. Its recovery time is from the outage's end to its first recovery
after that notice, in the same span.
"""

from __future__ import annotations

import statistics
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class Watcher:
    """One subscriber's record (or the publisher's record of one subscriber)."""

    noticed_dead_ns: Sequence[int]
    recovered_ns: Sequence[int]


@dataclass(frozen=True)
class OutageOutcome:
    """What one watcher made of one outage: seconds, None where it did not happen."""

    detect_s: float | None
    recover_s: float | None


def _first_in(times: Sequence[int], low: int, high: int) -> int | None:
    """The first of the sorted `times` in [low, high), or None."""
    index = bisect_left(times, low)
    return times[index] if index < len(times) and times[index] < high else None


def outcome(watcher: Watcher, start_ns: int, end_ns: int, until_ns: int) -> OutageOutcome:
    """How `watcher` lived the outage [start_ns, end_ns), watched until `until_ns`."""
    noticed = _first_in(sorted(watcher.noticed_dead_ns), start_ns, until_ns)
    if noticed is None:
        return OutageOutcome(None, None)
    recovered = _first_in(sorted(watcher.recovered_ns), noticed, until_ns)
    return OutageOutcome(
        round((noticed - start_ns) / NS_PER_S, 3),
        round((recovered - end_ns) / NS_PER_S, 3) if recovered is not None else None,
    )


def spread(values: list[float]) -> dict | None:
    """Median, smallest and largest, seconds; None without values."""
    if not values:
        return None
    return {
        "median": round(statistics.median(values), 3),
        "min": min(values),
        "max": max(values),
    }


def outage_figures(
    outages: Sequence[Sequence[int]],
    watchers: Sequence[Watcher],
    horizon_ns: int,
    watched_by: str,
) -> dict:
    """Per outage and pooled over all of them: watchers that noticed or did not, that
    recovered or did not (of those that noticed), with every detection and recovery time
    in seconds and their spread. `horizon_ns` is when the watchers stopped watching."""
    starts = sorted((int(start), int(end)) for start, end in outages if int(start) < horizon_ns)
    per_outage, detect_all, recover_all = [], [], []
    for index, (start, end) in enumerate(starts):
        until = starts[index + 1][0] if index + 1 < len(starts) else horizon_ns
        outcomes = [outcome(watcher, start, end, until) for watcher in watchers]
        detect = [o.detect_s for o in outcomes if o.detect_s is not None]
        recover = [o.recover_s for o in outcomes if o.recover_s is not None]
        detect_all += detect
        recover_all += recover
        per_outage.append(
            {
                "start_ns": start,
                "end_ns": end,
                "for_s": round((end - start) / NS_PER_S, 3),
                "watched_s": round((until - start) / NS_PER_S, 3),
                "noticed": len(detect),
                "not_noticed": len(outcomes) - len(detect),
                "recovered": len(recover),
                "not_recovered": len(detect) - len(recover),
                "detect_s": spread(detect),
                "recover_s": spread(recover),
            }
        )
    return {
        "watched_by": watched_by,
        "watchers": len(watchers),
        "outages": per_outage,
        "noticed": sum(o["noticed"] for o in per_outage),
        "not_noticed": sum(o["not_noticed"] for o in per_outage),
        "recovered": sum(o["recovered"] for o in per_outage),
        "not_recovered": sum(o["not_recovered"] for o in per_outage),
        "detect_s": spread(detect_all),
        "recover_s": spread(recover_all),
        "detect_values_s": detect_all,
        "recover_values_s": recover_all,
    }
