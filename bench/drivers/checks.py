"""Answer checks shared by every driver, independent of the wire format.

Each driver decodes an answer its own way (JSON, Protobuf, XML) and hands the decoded
values here; a wrong answer raises ResponseInvalid. The checks are cheap (no full
comparison of large records) but a server with other data, or one that drops, repeats
or misplaces records, fails them.
"""

from __future__ import annotations

from collections.abc import Iterable

from bench.drivers.base import ResponseInvalid
from bench.workload import ExpectedAnswers, Operation
from servers.dataset import FIRST_CREATED_ORDER_ID


def check_user(
    operation: Operation,
    expected: ExpectedAnswers,
    user_id: object,
    email: object,
    order_totals: Iterable[int] | None,
) -> None:
    """A get_user answer; `order_totals` None when the client did not ask for orders."""
    if user_id != operation.user_id:
        raise ResponseInvalid(f"get_user: id {user_id!r}, expected {operation.user_id}")
    digest = expected.digest(operation.user_id)
    if email != digest.email:
        raise ResponseInvalid("get_user: email differs from the dataset's")
    if order_totals is None:
        return
    totals = list(order_totals)
    if len(totals) != digest.order_count:
        raise ResponseInvalid(f"get_user: {len(totals)} orders, expected {digest.order_count}")
    if sum(totals) != digest.total_cents:
        raise ResponseInvalid("get_user: order totals differ from the dataset's")


def check_page(
    operation: Operation,
    expected: ExpectedAnswers,
    user_ids: list[object],
    first_order_count: object,
) -> None:
    """A list_users answer: the right users, in order, and the first one's order count."""
    length = expected.page_length(operation.page, operation.per_page)
    if len(user_ids) != length:
        raise ResponseInvalid(f"list_users: {len(user_ids)} users, expected {length}")
    if not length:
        return
    first = expected.first_id_on_page(operation.page, operation.per_page)
    if user_ids[0] != first or user_ids[-1] != first + length - 1:
        raise ResponseInvalid("list_users: wrong users on the page")
    if first_order_count != expected.digest(first).order_count:
        raise ResponseInvalid("list_users: order count differs from the dataset's")


def check_created_order(
    operation: Operation, order_id: object, user_id: object, total_cents: object, items: int
) -> None:
    if not isinstance(order_id, int) or order_id < FIRST_CREATED_ORDER_ID:
        raise ResponseInvalid(f"create_order: bad order id {order_id!r}")
    if user_id != operation.user_id:
        raise ResponseInvalid("create_order: the order belongs to another user")
    if total_cents != operation.total_cents or items != len(operation.items):
        raise ResponseInvalid("create_order: total or items differ from the request")
