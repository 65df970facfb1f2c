"""Request/response operations, the sequence a generator sends, and the answers it expects.

Operations are the same logical work for every pattern: get one user with its orders,
list a page of users, create an order. Each driver encodes them in its own protocol.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from servers.dataset import DatasetSpec, build_user, sample_order_items

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


@dataclass(frozen=True, slots=True)
class UserDigest:
    """Enough of a user to tell a right answer from a wrong one: a server with other data,
    or one that drops or reorders fields into the wrong place, gets these wrong."""

    order_count: int
    total_cents: int  # over all the user's orders
    email: str


class ExpectedAnswers:
    """What a correct server returns, computed from the same deterministic dataset."""

    def __init__(self, dataset: DatasetSpec) -> None:
        self.dataset = dataset
        self._digests: dict[int, UserDigest] = {}

    def digest(self, user_id: int) -> UserDigest:
        """The figures a driver checks in a get_user answer, whatever its wire format."""
        digest = self._digests.get(user_id)
        if digest is None:
            user = build_user(self.dataset, user_id)
            digest = UserDigest(
                order_count=len(user["orders"]),
                total_cents=sum(order["total_cents"] for order in user["orders"]),
                email=user["email"],
            )
            self._digests[user_id] = digest
        return digest

    def user(self, user_id: int) -> dict:
        return build_user(self.dataset, user_id)

    def page_length(self, page: int, per_page: int) -> int:
        remaining = self.dataset.users - (page - 1) * per_page
        return max(0, min(per_page, remaining))

    def first_id_on_page(self, page: int, per_page: int) -> int:
        return (page - 1) * per_page + 1

    def prepare(self, operations: list[Operation]) -> None:
        """Compute expectations up front, so that validation costs nothing while timed."""
        for operation in operations:
            if operation.name == "get_user":
                self.digest(operation.user_id)
            elif operation.name == "list_users" and self.page_length(
                operation.page, operation.per_page
            ):
                self.digest(self.first_id_on_page(operation.page, operation.per_page))


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
