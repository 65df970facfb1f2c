"""The users-and-orders dataset every pattern serves.

Deterministic: the same (users, payload_bytes, seed) gives the same records in every
process, so a client driver can compute the exact answer it expects from a server and
reject anything else. Records hold only strings and integers (money in cents), so every
wire format (JSON, Protobuf, XML) can carry them without rounding.

`payload_bytes` is the size of one user with its orders, measured as compact JSON. Each
pattern then encodes that same record in its own format; the harness measures what that
costs on the wire.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count

import orjson

MIN_PAYLOAD_BYTES = 256
MAX_PAYLOAD_BYTES = 1024 * 1024
# Created orders are kept so they can be read back, but bounded: a long benchmark of
# create_order must not turn into a test of how much memory the server can fill. About
# 1.3 KB each (measured in a soak: +3.9 MiB/min at 50 orders/s), so the store is full
# (13 MB) within minutes at a moderate rate and a soak's later growth is a leak's, not it.
CREATED_ORDERS_KEPT = 10_000
FIRST_CREATED_ORDER_ID = 1_000_000_000

_TIERS = ("free", "silver", "gold", "platinum")
_STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled")
_CURRENCIES = ("EUR", "USD", "GBP")
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_FILLER = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
_FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia")
_LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Perlman")


@dataclass(frozen=True)
class DatasetSpec:
    """What determines the dataset; passed to servers on their command line."""

    users: int = 1000
    payload_bytes: int = 1024
    seed: int = 42
    work_us: int = 0  # CPU work per request besides encoding it (a handler's business logic)

    def as_args(self) -> list[str]:
        return [
            "--users",
            str(self.users),
            "--payload-bytes",
            str(self.payload_bytes),
            "--seed",
            str(self.seed),
            "--work-us",
            str(self.work_us),
        ]


class OrderInputError(ValueError):
    """A create-order request that does not describe a valid order."""


def _timestamp(rng: random.Random) -> str:
    moment = _EPOCH + timedelta(seconds=rng.randrange(0, 365 * 24 * 3600))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _order(rng: random.Random, user_id: int, index: int) -> dict:
    items = [
        {
            "sku": f"SKU-{rng.randrange(100000):05d}",
            "quantity": rng.randrange(1, 5),
            "price_cents": rng.randrange(100, 20000),
        }
        for _ in range(rng.randrange(1, 4))
    ]
    return {
        "id": user_id * 1000 + index,
        "user_id": user_id,
        "status": rng.choice(_STATUSES),
        "currency": rng.choice(_CURRENCIES),
        "total_cents": sum(item["quantity"] * item["price_cents"] for item in items),
        "created_at": _timestamp(rng),
        "items": items,
    }


def _size(record: dict) -> int:
    return len(orjson.dumps(record))


def build_user(spec: DatasetSpec, user_id: int) -> dict:
    """One user with its orders, padded so that its compact JSON is `payload_bytes` long."""
    rng = random.Random(spec.seed * 1_000_003 + user_id)
    # Every field depends on the seed (the id only on the position), so that a server
    # with other data fails a check on any field a client asks for, even three of them.
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    user = {
        "id": user_id,
        "name": f"{first} {last}",
        "email": f"{first.lower()}.{last.lower()}.{user_id}@example.com",
        "tier": rng.choice(_TIERS),
        "created_at": _timestamp(rng),
        "bio": "",
        "orders": [],
    }
    # Track the size as orders are added instead of re-encoding the whole user each time:
    # every order adds its own JSON plus one comma (none for the first).
    size = _size(user)
    while len(user["orders"]) < 999:
        candidate = _order(rng, user_id, len(user["orders"]) + 1)
        added = _size(candidate) + (1 if user["orders"] else 0)
        if size + added > spec.payload_bytes:
            break
        user["orders"].append(candidate)
        size += added
    shortfall = spec.payload_bytes - size
    if shortfall > 0:
        offset = rng.randrange(len(_FILLER))
        filler = (_FILLER * (shortfall // len(_FILLER) + 2))[offset : offset + shortfall]
        user["bio"] = filler
    return user


def user_summary(user: dict) -> dict:
    """The list view of a user: its own fields and how many orders it has."""
    return {
        "id": user["id"],
        "name": user["name"],
        "email": user["email"],
        "tier": user["tier"],
        "created_at": user["created_at"],
        "order_count": len(user["orders"]),
    }


class Dataset:
    """The records a server holds, built once at start-up."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        self.users: dict[int, dict] = {i: build_user(spec, i) for i in range(1, spec.users + 1)}
        self.summaries: list[dict] = [user_summary(self.users[i]) for i in sorted(self.users)]
        self.created_orders: OrderedDict[int, dict] = OrderedDict()
        self._next_order_id = count(FIRST_CREATED_ORDER_ID)

    def work(self) -> None:
        """Spend `work_us` of CPU, as a handler with business logic would: the same for
        every pattern, since every server answers through these methods. It holds the
        event loop, as real CPU-bound work does."""
        if self.spec.work_us:
            deadline = time.perf_counter_ns() + self.spec.work_us * 1000
            while time.perf_counter_ns() < deadline:
                pass

    def user(self, user_id: int) -> dict | None:
        self.work()
        return self.users.get(user_id)

    def page(self, page: int, per_page: int) -> list[dict]:
        """Users `per_page` at a time; page numbers start at 1."""
        self.work()
        start = (page - 1) * per_page
        return self.summaries[start : start + per_page]

    def create_order(self, user_id: int, currency: str, items: list[dict]) -> dict:
        """Store a new order; raises OrderInputError for invalid input, KeyError for no user."""
        self.work()
        check_order_input(currency, items)
        if user_id not in self.users:
            raise KeyError(user_id)
        order = {
            "id": next(self._next_order_id),
            "user_id": user_id,
            "status": "pending",
            "currency": currency,
            "total_cents": sum(item["quantity"] * item["price_cents"] for item in items),
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "items": [
                {"sku": i["sku"], "quantity": i["quantity"], "price_cents": i["price_cents"]}
                for i in items
            ],
        }
        self.created_orders[order["id"]] = order
        if len(self.created_orders) > CREATED_ORDERS_KEPT:
            self.created_orders.popitem(last=False)
        return order


def check_order_input(currency: object, items: object) -> None:
    """Validate a create-order request the same way in every server."""
    if currency not in _CURRENCIES:
        raise OrderInputError(f"currency must be one of {', '.join(_CURRENCIES)}")
    if not isinstance(items, list) or not 1 <= len(items) <= 100:
        raise OrderInputError("items must be a list of 1 to 100 items")
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise OrderInputError(f"items[{position}] must be an object")
        sku, quantity, price = item.get("sku"), item.get("quantity"), item.get("price_cents")
        if not isinstance(sku, str) or not 1 <= len(sku) <= 64:
            raise OrderInputError(f"items[{position}].sku must be a string of 1 to 64 characters")
        if type(quantity) is not int or not 1 <= quantity <= 1000:
            raise OrderInputError(f"items[{position}].quantity must be an integer from 1 to 1000")
        if type(price) is not int or not 0 <= price <= 10_000_000:
            raise OrderInputError(
                f"items[{position}].price_cents must be an integer from 0 to 10000000"
            )


def sample_order_items(rng: random.Random) -> list[dict]:
    """Items for a create-order request, as a client would send them."""
    return [
        {
            "sku": f"SKU-{rng.randrange(100000):05d}",
            "quantity": rng.randrange(1, 5),
            "price_cents": rng.randrange(100, 20000),
        }
        for _ in range(rng.randrange(1, 4))
    ]
