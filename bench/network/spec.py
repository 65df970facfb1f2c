"""What a scenario's `[network]` table asks of the path between clients and servers.

A profile names a preset; any field written beside it overrides the preset's value. The
presets and where their values come from are in the README ("Network paths"); a path is
symmetric in delay (half the round trip each way) and may differ in bandwidth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Profile = Literal["loopback", "lan", "wan", "mobile", "lossy"]


class Outages(BaseModel):
    """Every `every_s` seconds the path drops every packet, both ways, for `for_s`
    seconds; the first outage starts `first_at_s` after the measured window opens."""

    model_config = ConfigDict(extra="forbid")

    every_s: float = Field(gt=0, description="seconds from the start of one outage to the next")
    for_s: float = Field(gt=0, description="how long each outage lasts, seconds")
    first_at_s: float = Field(0.5, ge=0, description="seconds into the measured window")

    @model_validator(mode="after")
    def _shorter_than_period(self) -> Outages:
        if self.for_s >= self.every_s:
            raise ValueError(
                f"outages.for_s ({self.for_s:g}) must be shorter than outages.every_s "
                f"({self.every_s:g}): the path has to come back between outages"
            )
        return self


@dataclass(frozen=True)
class Preset:
    rtt_ms: float
    jitter_ms: float
    down_mbit: float | None  # None: not limited (the emulator's own ceiling applies)
    up_mbit: float | None
    loss_pct: float
    source: str  # where the values come from, for the README


PRESETS: dict[str, Preset] = {
    "loopback": Preset(0.0, 0.0, None, None, 0.0, "no path: today's loopback, in one namespace"),
    "lan": Preset(
        1.0,
        0.1,
        100.0,
        100.0,
        0.0,
        "a switched office LAN: sub-millisecond to 1 ms round trips; 100 Mbit/s rather than "
        "1 Gbit/s because the userspace emulator tops out near 400 Mbit/s here",
    ),
    "wan": Preset(
        50.0,
        2.0,
        50.0,
        20.0,
        0.0,
        "a fixed-line internet path across a continent: about 50 ms round trip (the path "
        "the L1 claim's 'REST ~50 ms' implies), 50/20 Mbit/s like a typical broadband line",
    ),
    "mobile": Preset(
        80.0,
        10.0,
        5.0,
        2.0,
        1.0,
        "a mid-quality 4G phone connection: about 80 ms round trip with jitter, a few "
        "Mbit/s down and less up, 1 % loss",
    ),
    "lossy": Preset(
        50.0,
        2.0,
        None,
        None,
        5.0,
        "the wan round trip with 5 % random loss each way and no bandwidth limit: what loss "
        "alone does to each transport",
    ),
}


class NetworkSettings(BaseModel):
    """The `[network]` table of a scenario file."""

    model_config = ConfigDict(extra="forbid")

    profile: Profile = Field("loopback", description="a preset: " + ", ".join(PRESETS))
    rtt_ms: float | None = Field(None, ge=0, le=10_000, description="round trip, ms")
    jitter_ms: float | None = Field(
        None, ge=0, le=10_000, description="spread of one-way delay, ms"
    )
    down_mbit: float | None = Field(None, gt=0, le=10_000, description="server to client, Mbit/s")
    up_mbit: float | None = Field(None, gt=0, le=10_000, description="client to server, Mbit/s")
    loss_pct: float | None = Field(None, ge=0, lt=100, description="random loss each way, %")
    outages: Outages | None = None
    tls: bool = Field(False, description="every pattern over TLS, certificates verified")

    def path(self) -> PathSpec:
        """The preset with this table's overrides applied."""
        preset = PRESETS[self.profile]

        def pick(value, default):
            return default if value is None else value

        return PathSpec(
            profile=self.profile,
            rtt_ms=pick(self.rtt_ms, preset.rtt_ms),
            jitter_ms=pick(self.jitter_ms, preset.jitter_ms),
            down_mbit=pick(self.down_mbit, preset.down_mbit),
            up_mbit=pick(self.up_mbit, preset.up_mbit),
            loss_pct=pick(self.loss_pct, preset.loss_pct),
            outages=self.outages,
            tls=self.tls,
        )


@dataclass(frozen=True)
class PathSpec:
    """A resolved path: what the emulator is asked to do, per direction."""

    profile: str
    rtt_ms: float
    jitter_ms: float
    down_mbit: float | None  # server -> client
    up_mbit: float | None  # client -> server
    loss_pct: float  # each way
    outages: Outages | None
    tls: bool

    @property
    def emulated(self) -> bool:
        """Whether clients and servers need namespaces and the emulator between them:
        anything but plain loopback does (TLS alone does not)."""
        return bool(
            self.rtt_ms
            or self.jitter_ms
            or self.down_mbit
            or self.up_mbit
            or self.loss_pct
            or self.outages
        )

    def describe(self) -> str:
        """One line, for progress output and chart footers."""
        if not self.emulated:
            return f"loopback{', TLS' if self.tls else ''}"
        name = self.profile if self.profile != "loopback" else "custom path"
        parts = [f"{name}: RTT {self.rtt_ms:g} ms"]
        if self.jitter_ms:
            parts.append(f"jitter {self.jitter_ms:g} ms")
        if self.down_mbit or self.up_mbit:
            down = f"{self.down_mbit:g}" if self.down_mbit else "unlimited"
            up = f"{self.up_mbit:g}" if self.up_mbit else "unlimited"
            parts.append(f"{down}/{up} Mbit/s down/up")
        if self.loss_pct:
            parts.append(f"loss {self.loss_pct:g} %")
        if self.outages:
            parts.append(f"outage {self.outages.for_s:g} s every {self.outages.every_s:g} s")
        if self.tls:
            parts.append("TLS")
        return ", ".join(parts)
