"""What the servers cost: CPU time measured finer than the kernel's 10 ms ticks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.resources import ServerMonitor

# Burns 30 ms of CPU in a thread of its own, says so, and ends the thread when told.
BURNER = """
import sys, threading, time
release = threading.Event()
def burn():
    end = time.thread_time() + 0.03
    while time.thread_time() < end:
        pass
    print("burnt", flush=True)
    release.wait()
sys.stdin.readline()
worker = threading.Thread(target=burn)
worker.start()
sys.stdin.readline()
release.set()
worker.join()
print("ended", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def burner():
    process = subprocess.Popen(
        [sys.executable, "-c", BURNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    yield process
    process.kill()
    process.wait(timeout=10)


def tell(process: subprocess.Popen, expect: str | None = None) -> None:
    process.stdin.write("go\n")
    process.stdin.flush()
    if expect is not None:
        assert process.stdout.readline().strip() == expect


def test_server_cpu_counts_a_thread_that_ended_in_the_window_below_tick_resolution(burner):
    monitor = ServerMonitor([burner.pid])
    if not monitor.precise:
        pytest.skip("this kernel has no per-thread scheduler statistics")
    monitor.start_window()
    tell(burner, "burnt")
    monitor.sample()  # as the runner does every 100 ms, while the thread is alive
    tell(burner, "ended")
    usage = monitor.end_window()
    assert 0.029 <= usage.cpu_s < 0.5, usage
    # Ticks would give a multiple of 10 ms; the scheduler's clock gives nanoseconds.
    assert round(usage.cpu_s, 6) != round(usage.cpu_s, 2), usage
    assert usage.peak_rss_bytes > 0
