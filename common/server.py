"""What every server process shares, written once: its command line, its socket, its event
loop, how it says it is ready, its control channel (push) and its clean stop.

A pattern's `server.py` is its protocol only: `main()` calls `run_server` with the
coroutine that serves until `context.stop` is set. The runtime parses the common
arguments (and the push ones for a push server), binds the listening socket (port 0 picks
a free one, so two runs never race for a port), runs the loop on uvloop until SIGTERM or
SIGINT, and for a push server starts the event source's control channel (the runner's
publish plan arrives on stdin; see common/events.py). A server calls `context.ready(port)`
once it accepts connections: that writes `{"port": N, "pid": P}` to `--ready-file`, and
the runner then checks health with a real, validated request.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import signal
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import uvloop

from common.dataset import Dataset, DatasetSpec
from common.tls import client_context, server_context

if TYPE_CHECKING:
    from common.events import EventSource

EXIT_PORT_IN_USE = 3
DEFAULT_MAX_REQUEST_BYTES = 256 * 1024


def argument_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--ready-file", type=Path, help="where to write the bound port once ready")
    parser.add_argument("--users", type=int, default=DatasetSpec.users)
    parser.add_argument("--payload-bytes", type=int, default=DatasetSpec.payload_bytes)
    parser.add_argument("--seed", type=int, default=DatasetSpec.seed)
    parser.add_argument(
        "--work-us", type=int, default=0, help="CPU work per request besides encoding it"
    )
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        default=DEFAULT_MAX_REQUEST_BYTES,
        help="larger requests are refused with the protocol's 'too large' error",
    )
    # TLS (common/tls.py): with a certificate the server speaks its protocol's TLS form
    # only; the CA is for what the server itself connects to (a webhook receiver, a broker).
    parser.add_argument("--tls-cert", help="PEM certificate to present; serve TLS only")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--tls-ca", help="PEM CA certificate to verify the servers it calls")
    return parser


def dataset_from(args: argparse.Namespace) -> Dataset:
    return Dataset(
        DatasetSpec(
            users=args.users, payload_bytes=args.payload_bytes, seed=args.seed, work_us=args.work_us
        )
    )


def bind(host: str, port: int) -> socket.socket:
    """Bind a listening TCP socket, or exit with a sentence that names the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=1024)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(
                f"port {port} on {host} is already in use; pass --port 0 to pick a free one",
                file=sys.stderr,
            )
            sys.exit(EXIT_PORT_IN_USE)
        raise


def announce_ready(ready_file: Path | None, port: int) -> None:
    """Tell the runner which port we listen on; written atomically so it is never half-read."""
    print(f"ready on port {port}", flush=True)
    if ready_file is None:
        return
    partial = ready_file.with_suffix(".partial")
    partial.write_text(json.dumps({"port": port, "pid": os.getpid()}))
    partial.rename(ready_file)


async def serve_aiohttp(
    app,
    sock: socket.socket,
    ready_file: Path | None,
    stop: asyncio.Event,
    streaming: bool = False,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Serve an aiohttp application on `sock` until `stop` is set.

    `streaming`: handlers hold requests open (event streams, long polls); they are
    cancelled when their client goes away instead of lingering until they next write.
    `ssl_context`: serve HTTPS only (no plain listener beside it).
    """
    from aiohttp import web

    # No access log: formatting a line per request would be measured as the pattern's cost.
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=1.0,
        handler_cancellation=streaming,
    )
    await runner.setup()
    await web.SockSite(runner, sock, ssl_context=ssl_context).start()
    announce_ready(ready_file, sock.getsockname()[1])
    await stop.wait()
    await runner.cleanup()


def grpc_port(server, host: str, port: int, credentials=None) -> int:
    """Add a port to a grpc.aio server; exit with a clear sentence if it is taken. With
    server `credentials` (ServerContext.tls_key_pair() makes them) the port speaks gRPC
    over TLS only.

    Callers must pass ("grpc.so_reuseport", 0) as a server option: grpcio sets SO_REUSEPORT
    by default, which lets a second server share a port silently.
    """
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError:
        bound = 0
    if not bound:
        print(
            f"port {port} on {host} is already in use; pass --port 0 to pick a free one",
            file=sys.stderr,
        )
        sys.exit(EXIT_PORT_IN_USE)
    return bound


def grpc_tls_description(servicer_context) -> str | None:
    """The TLS a gRPC call came over ("TLSv1.3, key exchange X25519MLKEM768"), from the
    server's auth context, or None in the clear. grpcio's client side does not expose it,
    so gRPC servers write it to their log for the reader."""
    properties = servicer_context.auth_context()
    if properties.get("transport_security_type") != [b"ssl"]:
        return None
    version = b"".join(properties.get("ssl_tls_version", [b"unknown version"])).decode()
    group = b"".join(properties.get("ssl_negotiated_key_exchange_group", [b"unknown"])).decode()
    return f"{version}, key exchange {group}"


def serve(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)` on uvloop until SIGTERM or SIGINT sets `stop`."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await main(stop)

    uvloop.run(runner())


@dataclass
class ServerContext:
    """What the runtime hands a pattern's serving coroutine."""

    args: argparse.Namespace
    stop: asyncio.Event  # set on SIGTERM or SIGINT: serve until then, then return
    sock: socket.socket | None = None  # the bound listening socket, unless it binds its own
    source: EventSource | None = None  # a push server's events, with its control channel running
    _dataset: Dataset | None = field(default=None, repr=False)

    def dataset(self) -> Dataset:
        """The request/response dataset the arguments describe, built once."""
        if self._dataset is None:
            self._dataset = dataset_from(self.args)
        return self._dataset

    def ready(self, port: int | None = None) -> None:
        """Accepting connections (on `port`, by default the bound socket's)."""
        announce_ready(self.args.ready_file, port if port is not None else self.port)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    @property
    def tls(self) -> bool:
        return bool(self.args.tls_cert)

    def server_ssl(self) -> ssl.SSLContext | None:
        """The listener's TLS context, or None when serving in the clear."""
        if not self.args.tls_cert:
            return None
        return server_context(self.args.tls_cert, self.args.tls_key)

    def tls_key_pair(self) -> tuple[bytes, bytes] | None:
        """(private key, certificate chain) as PEM bytes, for a library that takes them
        rather than files (grpcio's server credentials), or None in the clear."""
        if not self.args.tls_cert:
            return None
        return Path(self.args.tls_key).read_bytes(), Path(self.args.tls_cert).read_bytes()

    def client_ssl(self) -> ssl.SSLContext | None:
        """A verifying context for what this server connects to, or None without TLS."""
        return client_context(self.args.tls_ca) if self.args.tls_ca else None

    async def serve_aiohttp(self, app, streaming: bool = False) -> None:
        """Serve an aiohttp application on the bound socket until stopped: HTTPS when the
        run gave a certificate."""
        await serve_aiohttp(
            app, self.sock, self.args.ready_file, self.stop, streaming, self.server_ssl()
        )


def run_server(
    doc: str,
    serve_until_stopped: Callable[[ServerContext], Awaitable[None]],
    *,
    push: bool = False,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    bind_socket: bool = True,
) -> None:
    """A pattern server's whole `main()`: `doc` is its module docstring (its first line is
    the --help description); `push` adds the push arguments and the event source with its
    control channel; `bind_socket=False` for a server whose library binds (gRPC) or that
    listens on nothing itself (a broker's publisher)."""
    parser = argument_parser(doc.splitlines()[0])
    if push:
        # Imported for push servers only: the event source brings numpy and the HDR
        # histogram with it (about 11 MB and a BLAS thread), which a request/response
        # server must not carry into its measured memory.
        from common.events import EventSource, add_push_arguments, control_loop

        add_push_arguments(parser)
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args()
    # Bound before the loop starts, so a port in use exits with its sentence at once.
    sock = bind(args.host, args.port) if bind_socket else None

    async def main(stop: asyncio.Event) -> None:
        context = ServerContext(args, stop, sock)
        control = None
        if push:
            context.source = EventSource(args.payload_bytes, args.replay_events)
            control = asyncio.create_task(control_loop(context.source))
        try:
            await serve_until_stopped(context)
        finally:
            if control is not None:
                control.cancel()

    serve(main)


def dataset_app_server(build_app: Callable[[Dataset, int], object]):
    """The serving coroutine of a request/response server on aiohttp: `build_app(dataset,
    max_request_bytes)` makes its application."""

    async def serve_app(context: ServerContext) -> None:
        app = build_app(context.dataset(), context.args.max_request_bytes)
        await context.serve_aiohttp(app)

    return serve_app
