"""The claims check: published claims about API patterns, judged by rules fixed in advance.

Each claim in claims.toml carries its rule as data: which points (scenario, pattern,
sweep value) and figures it reads, and what they must show. A verdict uses every trial
of every run given: a condition holds only if it holds on the figures pooled over all
trials and in every single repeat; it fails only if it fails pooled and in every repeat;
anything between is inconclusive. A generator-bound figure counts only as the bound it
is (a throughput at least this, a latency at most this), so it cannot fail a claim it
might meet. The report names the rules' file hash and the code's commit.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import operator
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from bench import figures
from bench.environment import describe as describe_environment
from common.histogram import LatencyHistogram, latency_figures

HOLDS, FAILS, INCONCLUSIVE = "holds here", "does not hold here", "inconclusive"
SET_BY_SCENARIO, NOT_MEASURABLE, NOT_MEASURED = (
    "set by the scenario",
    "not measurable",
    "not measured",
)
CLAIMS_FILE = "claims.toml"

# Base figures a rule can name. Per trial each is (numerator, denominator) so that the
# figure pooled over trials is the sum over the sum; "count" figures add up, "level"
# ones take the largest trial.
LATENCY_METRICS = ("p50_us", "p90_us", "p99_us", "p999_us")
GENERATOR_SENSITIVE = {"throughput_per_s", "completeness", "lost", *LATENCY_METRICS}


def _totals(trial: dict, *names: str) -> float:
    return sum((trial.get("totals") or {}).get(name) or 0 for name in names)


def _counter(group: str, name: str) -> Callable[[dict, dict], tuple[float, float]]:
    return lambda point, trial: ((trial.get("extra") or {}).get(group, {}).get(name, 0), 1)


def _delivery(name: str) -> Callable[[dict, dict], tuple[float, float]]:
    return lambda point, trial: ((trial.get("delivery") or {}).get(name) or 0, 1)


def _topic_field_bytes(point: dict, trial: dict) -> tuple[float, float]:
    topic = point["config"]["options"].get("topic")
    # An MQTT PUBLISH carries the topic as a 2-byte length and its UTF-8 bytes.
    return (2 + len(topic.encode()), 1) if topic is not None else (float("nan"), 1)


def _subscriber_seconds(point: dict, trial: dict) -> tuple[float, float]:
    config = point["config"]
    span = config["warmup_s"] + config["duration_s"] + config["workload"].get("drain_s", 0)
    return config.get("subscribers", 0) * span, 1


def _streams_per_connection(point: dict, trial: dict) -> tuple[float, float]:
    connections = trial.get("tcp_connections") or 0
    return (point["config"].get("concurrency") or 0, connections) if connections else (0, 0)


METRICS: dict[str, tuple[str, Callable[[dict, dict], tuple[float, float]]]] = {
    "throughput_per_s": ("ratio", lambda p, t: (t["requests"], t["measured_s"])),
    "wire_bytes_per_message": (
        "ratio",
        lambda p, t: (_totals(t, "wire_sent", "wire_received"), _totals(t, "byte_messages")),
    ),
    "payload_bytes_per_message": (
        "ratio",
        lambda p, t: (_totals(t, "payload"), _totals(t, "byte_messages")),
    ),
    "overhead_bytes_per_message": (
        "ratio",
        lambda p, t: (
            _totals(t, "wire_sent", "wire_received") - _totals(t, "payload"),
            _totals(t, "byte_messages"),
        ),
    ),
    "server_cpu_s_per_1000": (
        "ratio",
        lambda p, t: (_totals(t, "server_cpu_s") * 1000, _totals(t, "messages")),
    ),
    "requests_per_connection": (
        "ratio",
        lambda p, t: (_totals(t, "messages"), _totals(t, "connections_used")),
    ),
    "streams_per_connection": ("ratio", _streams_per_connection),
    "completeness": (
        "ratio",
        lambda p, t: (
            (t.get("delivery") or {}).get("delivered", 0),
            (t.get("delivery") or {}).get("expected", 0),
        ),
    ),
    "lost": ("count", _delivery("lost")),
    "duplicates": ("count", _delivery("duplicates")),
    "delivered": ("count", _delivery("delivered")),
    "deliveries": ("count", lambda p, t: (_totals(t, "byte_messages"), 1)),
    "errors": ("count", lambda p, t: (t["errors"] + t["timeouts"], 1)),
    "reconnects": ("count", lambda p, t: (t["reconnects"], 1)),
    "subscriber_seconds": ("count", _subscriber_seconds),
    "topic_field_bytes": ("level", _topic_field_bytes),
}


@dataclass(frozen=True)
class Value:
    """A figure pooled over every trial, and per repeat; `bound` says which way the
    truth may lie ("at_least", "at_most", "unknown", or "" when exact)."""

    pooled: float | None
    repeats: list[float | None]
    bound: str = ""
    slack: float = 0.0  # the truth may be this much lower (the generator's own delay)
    # A latency measured over an emulated path: that path's configured round trip, so the
    # figure is stated beside it and in round trips (what carries over to another network).
    path_rtt_ms: float | None = None
    path: str = ""

    def spread(self) -> tuple[float, float] | None:
        """The smallest and largest repeat (a sum over the trials, for a count, is no
        repeat of its own), reaching down by the slack."""
        seen = [v for v in self.repeats if v is not None]
        if not seen and self.pooled is not None:
            seen = [self.pooled]
        if not seen:
            return None
        return min(seen) - self.slack, max(seen)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    measured: str
    rule: str = ""


@dataclass(frozen=True)
class ClaimResult:
    id: str
    claim: str
    sources: list[str]
    verdict: str
    measured: str
    rule: str
    measured_on: str  # machine and stack


class Missing(Exception):
    """A point or figure a rule needs is not in the runs."""


def load_claims() -> dict:
    return tomllib.loads(resources.files("bench").joinpath(CLAIMS_FILE).read_text())


def claims_hash(data: bytes | None = None) -> str:
    """SHA-256 of the rules file (or of `data`): changing any rule changes it."""
    if data is None:
        data = resources.files("bench").joinpath(CLAIMS_FILE).read_bytes()
    return hashlib.sha256(data).hexdigest()


# Reading figures from runs --------------------------------------------------------------
class Runs:
    """The runs judged, by scenario: one or more independent runs of each."""

    def __init__(self, documents: dict[str, list[dict]]) -> None:
        self.documents = documents

    def points(self, select: dict) -> list[dict]:
        """The selected point in every run of its scenario (with trials that ran)."""
        runs = self.documents.get(select["scenario"])
        if not runs:
            raise Missing(f"no published run of {select['scenario']}")
        found = [
            point
            for document in runs
            for point in document["points"]
            if point["pattern"] == select["pattern"]
            and ("at" not in select or point["sweep_value"] == select["at"])
        ]
        if len(found) < len(runs):
            raise Missing(f"no results for {where(select)}")
        failed = [p for p in found if p["status"] != "ok"]
        if failed:
            # A trial that did not run is not a repeat that agreed: judge nothing on it.
            raise Missing(f"{where(select)} is {failed[0]['status']}: {failed[0].get('error')}")
        return found

    def environment(self, scenario: str) -> str:
        runs = self.documents.get(scenario) or []
        return describe_environment(runs[0]["environment"]) if runs else ""


def where(select: dict) -> str:
    at = f" at {select['at']:g}" if "at" in select else ""
    return f"{select['pattern']} ({select['scenario']}{at})"


def _ok_trials(points: list[dict]) -> list[tuple[dict, dict]]:
    return [(p, t) for p in points for t in p["trials"] if t["status"] == "ok"]


def base_value(points: list[dict], name: str) -> Value:
    if name in LATENCY_METRICS:
        return _latency_value(points, name)
    if name not in METRICS:
        if "." not in name:
            raise Missing(f"no figure named {name!r}")
        group, counter = name.split(".", 1)
        kind, read = "count", _counter(group, counter)
    else:
        kind, read = METRICS[name]
    pairs = [read(p, t) for p, t in _ok_trials(points)]
    if not pairs:
        raise Missing("no trial ran")
    if kind == "ratio":
        repeats = [a / b if b else None for a, b in pairs]
        total = sum(b for _, b in pairs)
        pooled = sum(a for a, _ in pairs) / total if total else None
    elif kind == "count":
        repeats = [a for a, _ in pairs]
        pooled = sum(repeats)
    else:
        repeats = [a for a, _ in pairs]
        pooled = max(repeats)
    if pooled is not None and pooled != pooled:  # NaN: the figure does not apply here
        raise Missing(f"{name} does not apply to {points[0]['pattern']}")
    bound = ""
    if name in GENERATOR_SENSITIVE and any(figures.client_bound(p) for p in points):
        bound = "at_most" if name == "lost" else "at_least"
    return Value(pooled, repeats, bound)


def _latency_value(points: list[dict], name: str) -> Value:
    trials = _ok_trials(points)
    answered = LatencyHistogram.merge([t["latency_histogram"] for _, t in trials])
    censored = LatencyHistogram.merge([t.get("censored_histogram", "") for _, t in trials])
    pooled = latency_figures(answered, censored)
    if pooled[name] is None:
        raise Missing(
            f"{name[:-3]} of {points[0]['pattern']}: "
            f"{pooled['count'] + pooled['censored']:,} samples are too few"
        )
    repeats = [t["latency_us"].get(name) for _, t in trials]
    censored_bound = name in pooled["lower_bound"]
    generator = any(figures.client_bound(p) for p in points)
    bound = (
        "unknown"
        if censored_bound and generator
        else ("at_least" if censored_bound else "at_most" if generator else "")
    )
    lag = LatencyHistogram.merge(
        [t.get("generator", {}).get("loop_lag_histogram", "") for _, t in trials]
    )
    slack = 0.0
    if lag.count:
        loop = latency_figures(lag)
        slack = loop[name] if loop[name] is not None else (loop["max_us"] or 0)
    network = points[0].get("config", {}).get("network") or {}
    if network.get("emulated"):
        return Value(pooled[name], repeats, bound, slack, network.get("rtt_ms"), network["profile"])
    return Value(pooled[name], repeats, bound, slack)


_COMBINE_BOUNDS = {
    # (left bound, right bound) -> bound of left / right and of left - right (positive
    # figures): a bigger left or a smaller right makes either bigger.
    ("at_least", ""): "at_least",
    ("at_most", ""): "at_most",
    ("", "at_least"): "at_most",
    ("", "at_most"): "at_least",
    ("at_least", "at_most"): "at_least",
    ("at_most", "at_least"): "at_most",
    ("", ""): "",
}


def metric_value(points: list[dict], metric: str) -> Value:
    """A figure, or "A / B" or "A - B" of two figures, of one point."""
    for symbol, function in ((" / ", operator.truediv), (" - ", operator.sub)):
        if symbol in metric:
            left, right = (base_value(points, part.strip()) for part in metric.split(symbol))
            return combine(left, right, function)
    return base_value(points, metric)


def combine(left: Value, right: Value, function) -> Value:
    def apply(a, b):
        if a is None or b is None:
            return None
        try:
            return function(a, b)
        except ZeroDivisionError:
            return None

    if len(left.repeats) != len(right.repeats):
        raise Missing("the two points have different numbers of trials to pair")
    repeats = [apply(a, b) for a, b in zip(left.repeats, right.repeats, strict=True)]
    bound = _COMBINE_BOUNDS.get((left.bound, right.bound), "unknown")
    # A generator's delay on a latency leaves it up to that much lower: carried through
    # a difference whose right side is exact, otherwise the result is left open.
    slack = 0.0
    if left.slack and not right.slack and function is operator.sub:
        slack = left.slack
    elif left.slack or right.slack:
        bound = "unknown"
    return Value(apply(left.pooled, right.pooled), repeats, bound, slack)


# Judging ------------------------------------------------------------------------------
OPERATORS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}


def _compare(
    value: float | None, op: str, target: float, bound: str, slack: float = 0.0
) -> bool | None:
    """True, False, or None when what is known leaves it open: the truth lies in
    [value - slack, value], or beyond `value` in the bound's direction."""
    if value is None or bound == "unknown":
        return None
    low = value - slack
    high = value
    if bound == "at_least":
        high = math.inf
    elif bound == "at_most":
        low = -math.inf
    compare = OPERATORS[op]
    if op == "==":
        if low == high:
            return compare(value, target)
        return False if not low <= target <= high else None
    at_low, at_high = compare(low, target), compare(high, target)
    if at_low and at_high:
        return True
    if not at_low and not at_high:
        return False
    return None


def judge_value(value: Value, op: str, target: float) -> str:
    pooled = _compare(value.pooled, op, target, value.bound, value.slack)
    repeats = [_compare(v, op, target, value.bound, value.slack) for v in value.repeats]
    if pooled is True and all(r is True for r in repeats):
        return HOLDS
    if pooled is False and all(r is False for r in repeats):
        return FAILS
    return INCONCLUSIVE


def show(name: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if name.split(" ")[0] in LATENCY_METRICS:
        return figures.format_ms(value / 1000)
    if name == "completeness":
        return f"{value:.2%}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def describe_value(metric: str, value: Value) -> str:
    prefix = {"at_least": ">= ", "at_most": "<= ", "unknown": "~"}.get(value.bound, "")
    text = prefix + show(metric, value.pooled)
    spread = value.spread()
    if spread and len(value.repeats) > 1 and spread[0] != spread[1]:
        text += f" (repeats {show(metric, spread[0])} to {show(metric, spread[1])})"
    if value.bound in ("at_least", "at_most"):
        text += " [a bound: generator-bound or losses counted]"
    if value.path_rtt_ms and value.pooled is not None:
        trips = value.pooled / 1000 / value.path_rtt_ms
        text += f" [over {value.path}, RTT {value.path_rtt_ms:g} ms: {trips:.2f} round trips]"
    return text


@dataclass(frozen=True)
class Outcome:
    status: str  # HOLDS, FAILS, INCONCLUSIVE, SET_BY_SCENARIO
    text: str


def condition(runs: Runs, item: dict) -> Outcome:
    metric = item["metric"]
    subject = metric_value(runs.points(item["select"]), metric)
    if "than" in item:
        other = item["than"]
        reference = metric_value(runs.points(other), other.get("metric", metric))
        difference = combine(subject, reference, operator.sub)
        status = judge_value(difference, item["op"], 0)
        text = (
            f"{where(item['select'])} {metric} {describe_value(metric, subject)} "
            f"{item['op']} {where(other)} {describe_value(metric, reference)}"
        )
    else:
        status = judge_value(subject, item["op"], item["value"])
        text = (
            f"{where(item['select'])} {metric} {describe_value(metric, subject)}, "
            f"rule {item['op']} {show(metric, item['value'])}"
        )
    if item.get("role"):
        text = f"{item['role']}: {text}"
    if item.get("set_by"):
        return Outcome(SET_BY_SCENARIO, f"{text} (set by {item['set_by']})")
    return Outcome(status, f"{text}: {status}")


def _combine_outcomes(outcomes: list[Outcome]) -> str:
    judged = [o.status for o in outcomes if o.status != SET_BY_SCENARIO]
    if not judged:
        return SET_BY_SCENARIO
    if FAILS in judged:
        return FAILS
    if all(status == HOLDS for status in judged):
        return HOLDS
    return INCONCLUSIVE


def _shown(runs: Runs, rule: dict) -> list[str]:
    lines = []
    for item in rule.get("show", []):
        try:
            value = metric_value(runs.points(item["select"]), item["metric"])
            lines.append(
                f"{where(item['select'])} {item['metric']} {describe_value(item['metric'], value)}"
            )
        except Missing as exc:
            lines.append(f"{where(item['select'])} {item['metric']}: {exc}")
    return lines


def judge_conditions(runs: Runs, rule: dict) -> Verdict:
    outcomes = [condition(runs, item) for item in rule["conditions"]]
    return Verdict(_combine_outcomes(outcomes), "; ".join(o.text for o in outcomes))


def judge_ratio(runs: Runs, rule: dict) -> Verdict:
    metric = rule["metric"]
    of = metric_value(runs.points(rule["of"]), metric)
    to = metric_value(runs.points(rule["to"]), metric)
    ratio = combine(of, to, operator.truediv)
    if "at_least" in rule:
        status, target = judge_value(ratio, ">=", rule["at_least"]), f">= {rule['at_least']:g}"
    else:
        status, target = judge_value(ratio, "<=", rule["at_most"]), f"<= {rule['at_most']:g}"
    text = (
        f"{where(rule['of'])} / {where(rule['to'])} {metric}: "
        f"{describe_value(metric, of)} / {describe_value(metric, to)} = "
        f"{describe_value('ratio', ratio)}x, rule {target}: {status}"
    )
    return Verdict(status, text)


def judge_order(runs: Runs, rule: dict) -> Verdict:
    metric = rule["metric"]
    higher = rule.get("better", "higher") == "higher"
    values = [(item, metric_value(runs.points(item), metric)) for item in rule["items"]]
    outcomes = []
    for (first, a), (second, b) in itertools.pairwise(values):
        ahead, behind = _interval(a), _interval(b)
        if not higher:
            ahead, behind = (-ahead[1], -ahead[0]), (-behind[1], -behind[0])
        if ahead[0] > behind[1]:
            status = HOLDS
        elif behind[0] > ahead[1]:
            status = FAILS
        else:
            status = INCONCLUSIVE
        word = {HOLDS: "ahead of", FAILS: "BEHIND", INCONCLUSIVE: "within noise of"}[status]
        outcomes.append(
            Outcome(
                status,
                f"{first['pattern']} {describe_value(metric, a)} {word} "
                f"{second['pattern']} {describe_value(metric, b)}",
            )
        )
    return Verdict(_combine_outcomes(outcomes), "; ".join(o.text for o in outcomes))


def _interval(value: Value) -> tuple[float, float]:
    low, high = value.spread() or (float("nan"), float("nan"))
    if value.bound == "at_least":
        high = float("inf")
    elif value.bound == "at_most":
        low = float("-inf")
    elif value.bound == "unknown":
        low, high = float("-inf"), float("inf")
    return low, high


def judge_not_measurable(runs: Runs, rule: dict) -> Verdict:
    return Verdict(NOT_MEASURABLE, rule["reason"])


JUDGES: dict[str, Callable[[Runs, dict], Verdict]] = {
    "conditions": judge_conditions,
    "ablation": judge_conditions,
    "ratio": judge_ratio,
    "order": judge_order,
    "not_measurable": judge_not_measurable,
}


def rule_text(rule: dict) -> str:
    """The rule as a sentence for the report (the data itself is in claims.toml)."""
    kind = rule["kind"]
    if kind == "ratio":
        target = f">= {rule['at_least']:g}" if "at_least" in rule else f"<= {rule['at_most']:g}"
        text = f"{rule['metric']} of {where(rule['of'])} / {where(rule['to'])} {target}"
    elif kind == "order":
        better = "higher" if rule.get("better", "higher") == "higher" else "lower"
        chain = " > ".join(item["pattern"] for item in rule["items"])
        text = f"{rule['metric']} ({better} is better): {chain}, each clearly ahead of the next"
    elif kind in ("conditions", "ablation"):
        parts = []
        for item in rule["conditions"]:
            target = where(item["than"]) if "than" in item else show(item["metric"], item["value"])
            part = f"{item['metric']} of {where(item['select'])} {item['op']} {target}"
            if item.get("set_by"):
                part += " [set by the scenario, not judged]"
            parts.append(f"{item['role']}: {part}" if item.get("role") else part)
        text = "; ".join(parts)
    else:
        text = "none: not measurable"
    return text + (f". {rule['note']}" if rule.get("note") else "")


def needed_scenarios(rule: dict) -> set[str]:
    found: set[str] = set()

    def visit(value: object) -> None:
        if isinstance(value, dict):
            if "scenario" in value:
                found.add(value["scenario"])
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    visit(rule)
    return found


def check_claims(documents: dict[str, dict | list[dict]]) -> list[ClaimResult]:
    """Every claim with its verdict on these runs (scenario -> results.json, or a list
    of independent runs of it)."""
    runs = Runs({k: v if isinstance(v, list) else [v] for k, v in documents.items()})
    table = load_claims()
    results = []
    for claim in table["claims"]:
        rule = claim["rule"]
        try:
            verdict = JUDGES[rule["kind"]](runs, rule)
        except Missing as exc:
            verdict = Verdict(NOT_MEASURED, str(exc))
        shown = _shown(runs, rule)
        measured = "; ".join([verdict.measured, *shown]) if shown else verdict.measured
        machines = {runs.environment(name) for name in needed_scenarios(rule)}
        results.append(
            ClaimResult(
                id=claim["id"],
                claim=claim["claim"],
                sources=[_source(table, s) for s in claim["sources"]],
                verdict=verdict.verdict,
                measured=measured,
                rule=rule_text(rule),
                measured_on="; ".join(sorted(m for m in machines if m)),
            )
        )
    return results


def _source(table: dict, reference: str) -> str:
    key, _, section = reference.partition(": ")
    title = table["sources"].get(key, key)
    return f"{title}, section '{section}'" if section else title
