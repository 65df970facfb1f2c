"""The workload kinds, each a `WorkloadKind` (base.py): request/response, push, and cold
start (new clients of either, timed to their first answer or event).

The core asks a run's kind (`kind_of`, `kind_for`) how to split a point, drive it,
measure it and show it, and never branches on a kind's name. Adding a kind is adding a
module here and listing it in KINDS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.kinds.base import Measurement, Words, WorkloadKind
from bench.kinds.cold_start import ColdStart
from bench.kinds.push import Push
from bench.kinds.request_response import RequestResponse

if TYPE_CHECKING:
    from bench.scenario import Scenario

# In the order published reports and listings show them.
KINDS: dict[str, WorkloadKind] = {
    kind.name: kind for kind in (RequestResponse(), Push(), ColdStart())
}
# A scenario that names no kind, and a results.json written before runs recorded one.
DEFAULT_KIND = RequestResponse.name

__all__ = [
    "DEFAULT_KIND",
    "KINDS",
    "Measurement",
    "Words",
    "WorkloadKind",
    "kind_for",
    "kind_for_plan",
    "kind_named",
    "kind_of",
]


def kind_named(name: str) -> WorkloadKind:
    """The kind called `name`; KeyError naming the known ones for any other."""
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"unknown workload kind {name!r}; known: {', '.join(KINDS)}") from None


def kind_of(document) -> WorkloadKind:
    """The kind of a run, from its results.json (typed, bench.results_model.RunDocument,
    or as a dict)."""
    if isinstance(document, dict):
        return kind_named(document["run"].get("workload") or DEFAULT_KIND)
    return kind_named(document.run.workload or DEFAULT_KIND)


def kind_for(scenario: Scenario) -> WorkloadKind:
    """The kind of a scenario's workload."""
    return kind_named(scenario.workload.kind)


def kind_for_plan(plan: object) -> WorkloadKind:
    """The kind whose generators drive `plan` (a generator job's)."""
    for kind in KINDS.values():
        if isinstance(plan, kind.plan_type):
            return kind
    raise TypeError(f"no workload kind drives a {type(plan).__name__}")
