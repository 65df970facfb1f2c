"""Request/response operations, the sequence a generator sends, and the answers it expects.

Operations are the same logical work for every pattern: get one user with its orders,
list a page of users, create an order. Each driver encodes them in its own protocol.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

import orjson

from common.dataset import DatasetSpec, build_user, sample_order_items, user_summary

OperationName = Literal["get_user", "list_users", "create_order"]
OPERATION_NAMES: tuple[OperationName, ...] = ("get_user", "list_users", "create_order")
CYCLE_LENGTH = 2048


@dataclass(frozen=True, slots=True)
class Operation:
    """One request's worth of work; only the fields its `name` needs are set."""

    name: OperationName
    user_id: int = 0
    page: int = 0
    per_page: int = 0
    currency: str = ""
    items: tuple[tuple[str, int, int], ...] = ()  # (sku, quantity, price_cents)

    @property
    def total_cents(self) -> int:
        return sum(quantity * price for _, quantity, price in self.items)


class ExpectedAnswers:
    """What a correct server returns, computed from the same deterministic dataset.

    Drivers compare whole answers with these, every field: a server with other data, or
    one that drops, repeats, reorders or misplaces records or fields, fails the check.
    Expectations are built before the clock starts (`prepare`), so checking costs a
    comparison, not a rebuild.
    """

    def __init__(self, dataset: DatasetSpec) -> None:
        self.dataset = dataset
        self._users: dict[int, dict] = {}
        self._json: dict[int, bytes] = {}
        self._pages: dict[tuple[int, int], list[dict]] = {}

    def user(self, user_id: int) -> dict:
        """The whole record of one user with its orders."""
        user = self._users.get(user_id)
        if user is None:
            user = self._users[user_id] = build_user(self.dataset, user_id)
        return user

    def user_json(self, user_id: int) -> bytes:
        """The record as compact JSON, as the JSON servers encode it: its length is the
        payload of a get_user answer, and a body equal to it needs no decoding to check."""
        encoded = self._json.get(user_id)
        if encoded is None:
            encoded = self._json[user_id] = orjson.dumps(self.user(user_id))
        return encoded

    def page(self, page: int, per_page: int) -> list[dict]:
        """The user summaries on a page, in order (empty past the last page)."""
        key = (page, per_page)
        summaries = self._pages.get(key)
        if summaries is None:
            first = (page - 1) * per_page + 1
            last = min(self.dataset.users, first + per_page - 1)
            summaries = [user_summary(self.user(i)) for i in range(first, last + 1)]
            self._pages[key] = summaries
        return summaries

    def prepare(self, operations: list[Operation]) -> None:
        """Compute expectations up front, so that validation costs nothing while timed."""
        for operation in operations:
            if operation.name == "get_user":
                self.user_json(operation.user_id)
            elif operation.name == "list_users":
                self.page(operation.page, operation.per_page)


def operation_cycle(
    mix: dict[str, float],
    dataset: DatasetSpec,
    per_page: int,
    seed: int,
    length: int = CYCLE_LENGTH,
) -> list[Operation]:
    """A deterministic sequence of operations drawn from `mix` (name -> weight)."""
    rng = random.Random(seed)
    names = [name for name in OPERATION_NAMES if mix.get(name, 0) > 0]
    weights = [mix[name] for name in names]
    pages = max(1, -(-dataset.users // per_page))
    cycle = []
    for name in rng.choices(names, weights=weights, k=length):
        if name == "get_user":
            cycle.append(Operation("get_user", user_id=rng.randint(1, dataset.users)))
        elif name == "list_users":
            cycle.append(Operation("list_users", page=rng.randint(1, pages), per_page=per_page))
        else:
            items = tuple(
                (item["sku"], item["quantity"], item["price_cents"])
                for item in sample_order_items(rng)
            )
            cycle.append(
                Operation(
                    "create_order",
                    user_id=rng.randint(1, dataset.users),
                    currency=rng.choice(("EUR", "USD", "GBP")),
                    items=items,
                )
            )
    return cycle


HEALTH_CHECK = Operation("get_user", user_id=1)
