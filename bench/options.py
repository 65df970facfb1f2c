"""Per-pattern options: what a scenario may set for one pattern under `[options.<pattern>]`.

Each pattern that takes options declares a `PatternOptions` model in its driver module and
names it in its registry entry; the scenario loader validates `[options.<pattern>]`
against it, so a typo there is an error like anywhere else.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PatternOptions(BaseModel):
    """No options. Subclasses add fields; `server_args` passes the server's share on."""

    # Strict as the scenario's own sections are: "8" is not a number, 1 is not true, and
    # nan or inf is no rate.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    def server_args(self) -> list[str]:
        """Command-line arguments for the pattern's server process."""
        return []

    def injects_faults(self) -> bool:
        """Push: whether these options make the pattern fail on purpose (a receiver that
        refuses deliveries or loses acknowledgements, forged deliveries): then what the
        faults cause (retries, redeliveries, duplicates) comes after the window, and the
        drain runs its whole length."""
        return False

    def min_drain_s(self) -> float:
        """Push: the least time after the window that events may still take to arrive
        (a polling interval, say); the scenario's drain_s is raised to it."""
        return 0.0


class PushServerOptions(PatternOptions):
    """What every push server takes: per-subscriber queue bound, slow-consumer policy,
    replay buffer."""

    queue_events: int = Field(
        1000, ge=1, le=1_000_000, description="events queued per subscriber before it is slow"
    )
    slow_consumer: Literal["disconnect", "drop"] = Field(
        "disconnect", description="what happens to a subscriber whose queue is full"
    )
    replay_events: int = Field(
        20_000, ge=1, le=10_000_000, description="events kept for subscribers that resume"
    )

    def server_args(self) -> list[str]:
        return [
            "--queue-events",
            str(self.queue_events),
            "--slow-consumer",
            self.slow_consumer,
            "--replay-events",
            str(self.replay_events),
        ]
