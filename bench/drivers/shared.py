"""Physical connections shared by several slots.

HTTP/2 (gRPC) and WebSocket carry several requests at once on one TCP connection. The
engine drives slots, each with one request in flight; this pool maps them onto at most
`per_connection` per physical connection, opening and closing physical connections as
slots come and go.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Physical = TypeVar("Physical")


class SharedConnections(Generic[Physical]):
    def __init__(
        self,
        open_physical: Callable[[], Awaitable[Physical]],
        close_physical: Callable[[Physical], Awaitable[None]],
        per_connection: int,
    ) -> None:
        self._open = open_physical
        self._close = close_physical
        self._per_connection = per_connection
        self._users: dict[int, int] = {}  # id(physical) -> slots on it
        self._physical: dict[int, Physical] = {}
        self._broken: set[int] = set()
        self._lock = asyncio.Lock()

    @property
    def open_count(self) -> int:
        """Physical connections open now."""
        return len(self._physical)

    async def acquire(self) -> Physical:
        async with self._lock:
            for key, users in self._users.items():
                if users < self._per_connection and key not in self._broken:
                    self._users[key] = users + 1
                    return self._physical[key]
            physical = await self._open()
            self._physical[id(physical)] = physical
            self._users[id(physical)] = 1
            return physical

    async def release(self, physical: Physical, broken: bool = False) -> None:
        """A slot is done with `physical`; a broken one gets no new users."""
        key = id(physical)
        if key not in self._users:
            return
        if broken:
            self._broken.add(key)
        self._users[key] -= 1
        if self._users[key] == 0:
            del self._users[key]
            del self._physical[key]
            self._broken.discard(key)
            await self._close(physical)

    async def close_all(self) -> None:
        physical, self._physical, self._users = list(self._physical.values()), {}, {}
        for item in physical:
            await self._close(item)
