"""The footer lines of a chart whose run crossed a network path: the path as configured,
and as measured (its calibration's round trip and goodput; the loss the emulator's
counters saw in the trials; the emulator's CPU). A loopback run has none.

Every figure comes from the run's results.json: `run.network` (the configured paths, the
latest `bench calibrate --network` record of the profile) and each trial's `extra.path`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.results_model import RunDocument, TrialPath

DIRECTIONS = ("down", "up")  # server to client, client to server: as presets say them


def network_footer(document: RunDocument) -> list[str]:
    """One line for the path as configured, one for what was measured; none on loopback."""
    network = document.run.network
    if network is None or not network.paths:
        return []
    lines = [f"network path: {_configured(document)}"]
    measured = [
        part
        for part in (
            calibration_text(network.calibration) if _emulated(document) else "",
            _observed_loss(document),
            _emulator_cpu(document),
        )
        if part
    ]
    if measured:
        lines.append("measured: " + "; ".join(measured))
    elif _emulated(document):
        lines.append("measured: nothing yet (no trial crossed the path, no calibration)")
    return lines


def _emulated(document: RunDocument) -> bool:
    return any(path.emulated for path in document.run.network.paths)


def _configured(document: RunDocument) -> str:
    """The path in one line; a network sweep says what it varied."""
    paths = document.run.network.paths
    parameter = document.run.sweep_parameter or ""
    if len({path.description for path in paths}) == 1 or not parameter.startswith("network."):
        return paths[0].description
    from bench.charts.style import SWEEP_AXIS_LABELS

    values = ", ".join(f"{point.sweep_value:g}" for point in _first_pattern_points(document))
    swept = SWEEP_AXIS_LABELS.get(parameter, parameter)
    return f"{paths[-1].description}; swept: {swept} {values}"


def _first_pattern_points(document: RunDocument) -> list:
    first = document.points[0].pattern if document.points else None
    return [p for p in document.points if p.pattern == first and p.sweep_value is not None]


def _trial_paths(document: RunDocument) -> dict[int, list[TrialPath]]:
    """Each sweep point's trials' path records, over every pattern."""
    found: dict[int, list[TrialPath]] = {}
    for point in document.points:
        for trial in point.trials:
            if trial.extra.path is not None and trial.extra.path.window_s:
                found.setdefault(point.point, []).append(trial.extra.path)
    return found


def _loss_pct(paths: list[TrialPath]) -> str:
    """Random loss the emulator applied, pooled over trials (dropped over packets sent),
    down/up."""
    shares = []
    for key in DIRECTIONS:
        packets = sum(getattr(p.window, key).packets for p in paths)
        dropped = sum(getattr(p.window, key).dropped_loss for p in paths)
        shares.append(f"{100 * dropped / packets:.2f}" if packets else "-")
    return "/".join(shares) + " %"


def _observed_loss(document: RunDocument) -> str:
    by_point = _trial_paths(document)
    if not by_point:
        return ""
    trials = sum(len(paths) for paths in by_point.values())
    where = f"emulator counters, {trials} trial(s)"
    if len({point.point for point in document.points}) == 1:  # no sweep
        (paths,) = by_point.values()
        return f"trials' loss down/up {_loss_pct(paths)} ({where})"
    labels = {point.point: point.label for point in document.points}
    shown = [f"{labels[index]} {_loss_pct(paths)}" for index, paths in sorted(by_point.items())]
    return f"trials' loss down/up ({where}): " + ", ".join(shown)


def _emulator_cpu(document: RunDocument) -> str:
    paths = [path for paths in _trial_paths(document).values() for path in paths]
    shares = [p.emulator_cpu_share for p in paths if p.emulator_cpu_share is not None]
    if not shares:
        return ""
    bound = sum(p.path_bound for p in paths)
    text = f"emulator CPU up to {max(shares):.0%} of one"
    return text + (f", {bound} trial(s) path-bound" if bound else "")


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class _RoundTrip(_Loose):
    connect_p50_ms: float | None = None
    tcp_info_ms: float | None = None


class _Direction(_Loose):
    tcp_goodput_mbit: float | None = None
    loss_pct: float | None = None


class _Measured(_Loose):
    rtt: _RoundTrip = Field(default_factory=_RoundTrip)
    down: _Direction = Field(default_factory=_Direction)
    up: _Direction = Field(default_factory=_Direction)


class NetworkCalibration(_Loose):
    """The parts of a `bench calibrate --network` entry (bench/network/calibration.py,
    its own format) a footer shows."""

    profile: str = ""
    describe: str = ""
    measured_at: str = ""
    measured: _Measured = Field(default_factory=_Measured)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def calibration_text(calibration: dict | None) -> str:
    """The profile's calibration in a few words: the preset it measured (a run's own
    overrides may differ from it), and its measured round trip, TCP goodput and loss."""
    if not calibration:
        return "no network calibration of this profile (`bench calibrate --network`)"
    try:
        found = NetworkCalibration.model_validate(calibration)
    except ValidationError:
        return "a network calibration this bench cannot read (run.network.calibration)"
    measured = found.measured
    rtt = measured.rtt.tcp_info_ms or measured.rtt.connect_p50_ms
    goodput = f"{_figure(measured.down.tcp_goodput_mbit)}/{_figure(measured.up.tcp_goodput_mbit)}"
    loss = f"{_figure(measured.down.loss_pct)}/{_figure(measured.up.loss_pct)}"
    when = found.measured_at[:10]
    return (
        f"calibration of {found.describe or found.profile} ({when}): RTT {_figure(rtt)} ms, "
        f"TCP goodput down/up {goodput} Mbit/s, loss down/up {loss} %"
    )
