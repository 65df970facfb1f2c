"""Answer checks shared by every driver, independent of the wire format.

Each driver decodes an answer its own way (JSON, Protobuf, XML) into plain records with
the dataset's field names, and hands them here. The checks compare whole records with
what the deterministic dataset holds, every field of every record (every user of a page,
every order of a user), so a server with other data, or one that drops, repeats,
reorders or misplaces anything, fails them. A wrong answer raises ResponseInvalid.

They run after the clock has stopped (see `Connection.check`).
"""

from __future__ import annotations

import re

from bench.drivers.base import ResponseInvalid
from bench.workload import ExpectedAnswers, Operation
from common.dataset import FIRST_CREATED_ORDER_ID

# Field names in camelCase (GraphQL, SOAP) and the dataset's own snake_case.
CAMEL_TO_SNAKE = {
    "createdAt": "created_at",
    "userId": "user_id",
    "totalCents": "total_cents",
    "priceCents": "price_cents",
    "orderCount": "order_count",
    "perPage": "per_page",
}
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")
USER_FIELDS_FEW = ("id", "name", "email")


def snake_case(value: object) -> object:
    """A decoded answer with camelCase field names turned into the dataset's names."""
    if isinstance(value, dict):
        return {CAMEL_TO_SNAKE.get(key, key): snake_case(item) for key, item in value.items()}
    if isinstance(value, list):
        return [snake_case(item) for item in value]
    return value


def same(expected: object, got: object) -> bool:
    """Equal, and of the same types all the way down: Python's == takes 1.0 or True for
    the integer 1, a JSON answer must not."""
    if type(expected) is not type(got):
        return False
    if isinstance(expected, dict):
        return expected.keys() == got.keys() and all(same(expected[k], got[k]) for k in expected)
    if isinstance(expected, list):
        return len(expected) == len(got) and all(
            same(a, b) for a, b in zip(expected, got, strict=True)
        )
    return expected == got


def difference(expected: object, got: object, path: str = "") -> str:
    """Where two records first differ, for the error message (only built on failure)."""
    if type(expected) is not type(got):
        return f"{path or 'answer'} is {type(got).__name__}, expected {type(expected).__name__}"
    if isinstance(expected, dict):
        for key in expected:
            if key not in got:
                return f"{path}.{key} is missing"
            if not same(expected[key], got[key]):
                return difference(expected[key], got[key], f"{path}.{key}")
        extra = sorted(set(got) - set(expected))
        return f"{path} has unexpected fields {extra}" if extra else f"{path} differs"
    if isinstance(expected, list):
        if len(expected) != len(got):
            return f"{path or 'list'} has {len(got)} items, expected {len(expected)}"
        for index, (want, have) in enumerate(zip(expected, got, strict=True)):
            if not same(want, have):
                return difference(want, have, f"{path}[{index}]")
    shown = repr(got)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return f"{path or 'value'} is {shown}, expected {expected!r}"[:200]


def check_user(
    operation: Operation,
    expected: ExpectedAnswers,
    got: object,
    fields: tuple[str, ...] | None = None,
) -> None:
    """A get_user answer: the whole record, or just `fields` of it when the client asked
    for only those (GraphQL's selection)."""
    want = expected.user(operation.user_id)
    if fields is not None:
        want = {name: want[name] for name in fields}
    if not (got == want and same(want, got)):
        raise ResponseInvalid(f"get_user {operation.user_id}: {difference(want, got)}")


def check_page(
    operation: Operation,
    expected: ExpectedAnswers,
    page: object,
    fields: tuple[str, ...] = ("page", "per_page", "total", "items"),
) -> None:
    """A list_users answer: the page's numbers and every user summary on it, in order.
    `fields` are those the answer carries (GraphQL returns what the query selected)."""
    want_all = {
        "page": operation.page,
        "per_page": operation.per_page,
        "total": expected.dataset.users,
        "items": expected.page(operation.page, operation.per_page),
    }
    want = {name: want_all[name] for name in fields}
    if not (page == want and same(want, page)):
        raise ResponseInvalid(f"list_users page {operation.page}: {difference(want, page)}")


def check_created_order(operation: Operation, order: object) -> None:
    """A create_order answer: the order as requested, pending, with a fresh id."""
    if not isinstance(order, dict):
        raise ResponseInvalid("create_order: the answer is not an order")
    order_id = order.get("id")
    if type(order_id) is not int or order_id < FIRST_CREATED_ORDER_ID:
        raise ResponseInvalid(f"create_order: bad order id {order_id!r}")
    want = {
        "id": order_id,
        "user_id": operation.user_id,
        "status": "pending",
        "currency": operation.currency,
        "total_cents": operation.total_cents,
        "created_at": order.get("created_at"),
        "items": [
            {"sku": sku, "quantity": quantity, "price_cents": price}
            for sku, quantity, price in operation.items
        ],
    }
    if not (order == want and same(want, order)):
        raise ResponseInvalid(f"create_order: {difference(want, order)}")
    if not isinstance(want["created_at"], str) or not _TIMESTAMP.match(want["created_at"]):
        raise ResponseInvalid(f"create_order: created_at {want['created_at']!r} is no timestamp")


class CheckedAnswers:
    """Answers already checked field by field against the dataset, kept as bytes, for
    drivers whose reference encoding would otherwise come from the server's own code
    (Protobuf, XML): the first answer for a record is decoded and compared in full, and a
    later answer byte-identical to it is the same answer. Nothing is taken on trust from
    the server: every entry got here through the full check."""

    def __init__(self) -> None:
        self._answers: dict[object, bytes] = {}

    def known(self, key: object, data: bytes) -> bool:
        return self._answers.get(key) == data

    def remember(self, key: object, data: bytes) -> None:
        self._answers[key] = data
