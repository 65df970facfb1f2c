"""Entering a network namespace, for processes that start in one the runner built (a
trial's path: bench/network/link.py). Small on purpose, with no third-party import: a
server forked from its template (bench/templates.py) enters its namespace through this
before it runs, and carries whatever this imports in its measured memory."""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNET = 0x40000000


def enter_netns(path: str) -> None:
    """Move the calling thread into the network namespace `path` names (a file whose
    descriptor is a namespace: /proc/PID/ns/net, or /proc/PID/fd/N of a process holding
    one). A process's later threads and children follow it. Python 3.11 has no os.setns."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"cannot enter network namespace {path}: {os.strerror(error)}")
    finally:
        os.close(fd)
