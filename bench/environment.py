"""What a run was measured on: machine, kernel, Python, packages, and code version."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import psutil

# The packages whose versions change results; recorded with every run.
# The core's own stack; each pattern's entry adds what its server and driver stand on.
CORE_PACKAGES = (
    "aiohttp",
    "httptools",
    "uvloop",
    "orjson",
    "pydantic",
    "hdrhistogram",
    "psutil",
    "locust",
    "matplotlib",
    "pandas",
)
# Named in a published report's "stack" line, beside what the patterns add.
_STACK_CORE = ("uvloop", "orjson")


def recorded_packages() -> tuple[str, ...]:
    from bench.registry import PATTERNS

    pattern_packages = [name for pattern in PATTERNS.values() for name in pattern.packages]
    return tuple(dict.fromkeys([*CORE_PACKAGES, *pattern_packages]))


def stack_packages() -> tuple[str, ...]:
    """The packages a report names as the stack it measured: what the patterns stand on,
    then the core's event loop and JSON library."""
    from bench.registry import PATTERNS

    pattern_packages = [name for pattern in PATTERNS.values() for name in pattern.packages]
    return tuple(dict.fromkeys([*pattern_packages, *_STACK_CORE]))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_versions() -> dict[str, str]:
    versions = {}
    for name in recorded_packages():
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(directory: Path) -> dict:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=directory, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        # Changes to tracked files change the code that ran; a new scenario file does not,
        # and neither do results (publishing rewrites the tracked results/published/).
        changes = git("diff", "HEAD", "--", ".", ":(exclude)results")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "diff_sha256": None}
    return {
        "commit": commit,
        "dirty": bool(changes),
        "diff_sha256": hashlib.sha256(changes.encode()).hexdigest() if changes else None,
    }


def _version_line(name: str, command: list[str]) -> str | None:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    for line in (completed.stdout + completed.stderr).splitlines():
        if line.lower().startswith(name.lower()) and "usage" not in line.lower():
            return line.split(" Copyright")[0].strip()
    return None


def tool_versions() -> dict[str, str]:
    """Versions of the programs some patterns run (a broker, from their entries' needs)
    and of the tool the generator is calibrated against."""
    from bench.registry import PATTERNS

    commands = {"wrk": ["wrk", "-v"]}
    for pattern in PATTERNS.values():
        for need in pattern.needs:
            if need.version_args:
                commands[need.program] = [need.program, *need.version_args]
    found = {}
    for name, command in commands.items():
        line = _version_line(name, command)
        if line:
            found[name] = line
    return found


def collect(project_dir: Path) -> dict:
    memory = psutil.virtual_memory()
    usable_cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable_cpus,
        "memory_bytes": memory.total,
        "os": platform.system(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "packages": package_versions(),
        "tools": tool_versions(),
        "git": git_commit(project_dir),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
    }


def describe(environment: dict) -> str:
    """One line for chart footers."""
    commit = (environment.get("git") or {}).get("commit") or "unknown"
    return (
        f"{environment.get('cpu_model', '?')}, {len(environment.get('usable_cpus') or [])} CPUs, "
        f"Linux {environment.get('kernel', '?')}, Python {environment.get('python', '?')}, "
        f"commit {commit[:8]}"
    )
