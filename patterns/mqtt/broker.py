"""MQTT's server side: a real Mosquitto broker on a free port, plus the event publisher.

The broker's configuration is generated per trial. Persistence to disk stays off (the
default): persistent sessions live in the broker's memory, which is what a subscriber
that reconnects needs. Queues for offline QoS 1 subscribers are raised from the default
1000 so a reconnect test measures the protocol, not a default; they stay bounded. Nagle's
algorithm is off (`set_tcp_nodelay`), as on every other server here: Mosquitto leaves it
on by default, and a large QoS 0 message (no acknowledgement flowing back) then waits for
the subscriber's delayed ACK, tens of milliseconds.
The broker stays the runner's own user (`user`): started as root, Mosquitto otherwise
switches to the `mosquitto` user, and the kernel then forgets to stop it when the runner
dies (the parent-death signal is cleared on a change of user). The runner stops it by its
process id in any case, on Ctrl-C, SIGTERM and SIGHUP too.
If Mosquitto is not installed, MQTT points are skipped with the reason, never faked.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import sys
from pathlib import Path

from bench.needs import Requirement
from bench.options import PatternOptions
from bench.resources import ANYWHERE, Place
from bench.serverproc import PatternUnavailable, ServerGroup, ServerProcess
from common.dataset import DatasetSpec
from common.tls import TlsFiles

MAX_QUEUED_MESSAGES = 100_000
CONFIG = """\
listener {port} {host}
{tls}user {user}
allow_anonymous true
persistence false
set_tcp_nodelay true
max_queued_messages {max_queued}
log_dest stdout
log_type error
log_type warning
"""
# MQTT over TLS: the listener takes TLS only, with the run's server certificate; clients
# are not asked for one. TLS 1.3 only, as every pattern (common/tls.py); clients record
# the version negotiated.
TLS_CONFIG = """\
cafile {ca}
certfile {cert}
keyfile {key}
require_certificate false
tls_version tlsv1.3
"""


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if Path(candidate).exists():
            return candidate
    return None


MOSQUITTO = Requirement(
    "Mosquitto (MQTT broker)",
    "on Debian or Ubuntu: apt-get install mosquitto",
    lambda: mosquitto_binary(),  # looked up when asked, so a test can take it away
    program="mosquitto",
    version_args=("-h",),
)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def launch_mosquitto(
    pattern,
    dataset: DatasetSpec,
    options: PatternOptions,
    logs: Path,
    name: str,
    place: Place | None,
    tls: TlsFiles | None = None,
) -> ServerGroup:
    """The broker and the publisher, both in `place` (the servers' place); with `tls` the
    broker listens for MQTT over TLS only, and the publisher connects to it over TLS too."""
    binary = MOSQUITTO.find()
    if binary is None:
        raise PatternUnavailable(f"Mosquitto is not installed ({MOSQUITTO.install})")
    logs.mkdir(parents=True, exist_ok=True)
    place = place or ANYWHERE
    # Free where the broker will listen: in the servers' network namespace, if they have one.
    port = place.call(lambda: free_port(place.bind_host))
    config = logs / f"{name}-mosquitto.conf"
    tls_lines = (
        TLS_CONFIG.format(ca=tls.ca_cert, cert=tls.server_cert, key=tls.server_key) if tls else ""
    )
    config.write_text(
        CONFIG.format(
            port=port,
            host=place.bind_host,
            tls=tls_lines,
            user=pwd.getpwuid(os.geteuid()).pw_name,
            max_queued=MAX_QUEUED_MESSAGES,
        )
    )
    broker = ServerProcess(
        "mosquitto", [binary, "-c", str(config)], logs / f"{name}-broker.log", port, place
    )
    ready = logs / f".{name}.ready"
    publisher = ServerProcess(
        f"{pattern.name} publisher",
        [
            sys.executable,
            "-m",
            pattern.server_module,
            "--ready-file",
            str(ready),
            "--broker-port",
            str(port),
            *(tls.server_args() if tls else ()),
            *dataset.as_args(),
            *options.server_args(),
        ],
        logs / f"{name}.log",
        ready,
        place,
        control=True,
    )
    return ServerGroup([broker, publisher], target=0)
