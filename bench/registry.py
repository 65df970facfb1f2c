"""The registry of API patterns: every folder under `patterns/` with an `entry.py` that
lists its `PATTERNS`. Adding a pattern is adding a folder; nothing in the core names one
(tests/test_layout.py checks).
"""

from __future__ import annotations

import importlib
import pkgutil

import patterns as pattern_folders
from bench.pattern import Pattern

__all__ = ["PATTERNS", "Pattern", "get_pattern", "pattern_folder"]


def _discover() -> dict[str, Pattern]:
    found: dict[str, Pattern] = {}
    for folder in sorted(pkgutil.iter_modules(pattern_folders.__path__), key=lambda m: m.name):
        if not folder.ispkg:
            continue
        entry = importlib.import_module(f"{pattern_folders.__name__}.{folder.name}.entry")
        for pattern in entry.PATTERNS:
            if pattern.name in found:
                raise ValueError(f"pattern {pattern.name!r} is registered twice")
            found[pattern.name] = pattern
    return found


PATTERNS: dict[str, Pattern] = _discover()


def get_pattern(name: str) -> Pattern:
    return PATTERNS[name]


def pattern_folder(pattern: Pattern) -> str:
    """The folder under patterns/ a pattern's entry lives in."""
    return pattern.server_module.split(".")[1]
