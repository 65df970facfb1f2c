"""What every server process shares: its command line, its socket, and how it says it is ready.

A server binds its own listening socket (port 0 picks a free one, so two runs never race
for a port), then writes `{"port": N, "pid": P}` to the file given by `--ready-file`. The
runner waits for that file and then checks health with a real, validated request.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

from common.dataset import Dataset, DatasetSpec

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
    app, sock: socket.socket, ready_file: Path | None, stop: asyncio.Event, streaming: bool = False
) -> None:
    """Serve an aiohttp application on `sock` until `stop` is set.

    `streaming`: handlers hold requests open (event streams, long polls); they are
    cancelled when their client goes away instead of lingering until they next write.
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
    await web.SockSite(runner, sock).start()
    announce_ready(ready_file, sock.getsockname()[1])
    await stop.wait()
    await runner.cleanup()


def grpc_port(server, host: str, port: int) -> int:
    """Add an insecure port to a grpc.aio server; exit with a clear sentence if it is taken.

    Callers must pass ("grpc.so_reuseport", 0) as a server option: grpcio sets SO_REUSEPORT
    by default, which lets a second server share a port silently.
    """
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        print(
            f"port {port} on {host} is already in use; pass --port 0 to pick a free one",
            file=sys.stderr,
        )
        sys.exit(EXIT_PORT_IN_USE)
    return bound


def serve(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)` on uvloop until SIGTERM or SIGINT sets `stop`."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await main(stop)

    uvloop.run(runner())
