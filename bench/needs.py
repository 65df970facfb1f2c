"""What a pattern needs beyond the Python packages `make` installs (a broker, say), and
whether this machine has it: `bench patterns` lists it, and a pattern whose needs are
missing is skipped with the reason, never faked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Requirement:
    what: str  # "Mosquitto (MQTT broker)"
    install: str  # how to get it, for the message when it is missing
    find: Callable[[], str | None]  # where it is on this machine, or None
    program: str = ""  # its command's name, for the run's record of tool versions
    version_args: tuple[str, ...] = ()  # what makes it print its version line

    def status(self) -> str:
        found = self.find()
        return f"{self.what}: {found}" if found else f"{self.what}: missing ({self.install})"
