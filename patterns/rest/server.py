"""REST: resource URLs over HTTP/1.1 with JSON bodies (aiohttp server, orjson).

    GET  /health                      200
    GET  /users/{id}                  200 user with its orders | 400 bad id | 404 no such user
    GET  /users?page=P&per_page=N     200 a page of user summaries | 422 bad parameters
    POST /users/{id}/orders           201 the created order, Location header
                                      400 not JSON | 404 no such user | 413 too large | 422 invalid
    GET  /orders/{id}                 200 an order created earlier | 404

Run it by hand with `python -m patterns.rest.server --port 8080`.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from common import server as runtime
from common.dataset import Dataset, OrderInputError

MAX_PER_PAGE = 100
DATASET = web.AppKey("dataset", Dataset)


def json_response(payload: object, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload), status=status, content_type="application/json", headers=headers
    )


def error(status: int, message: str) -> web.Response:
    return json_response({"error": {"status": status, "message": message}}, status=status)


def _int_or_none(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def get_user(request: web.Request) -> web.Response:
    user_id = _int_or_none(request.match_info["user_id"])
    if user_id is None:
        return error(400, "user id must be a positive integer")
    user = request.app[DATASET].user(user_id)
    if user is None:
        return error(404, f"no user with id {user_id}")
    return json_response(user)


async def list_users(request: web.Request) -> web.Response:
    page = _int_or_none(request.query.get("page", "1"))
    per_page = _int_or_none(request.query.get("per_page", "20"))
    if page is None or page < 1:
        return error(422, "page must be an integer of at least 1")
    if per_page is None or not 1 <= per_page <= MAX_PER_PAGE:
        return error(422, f"per_page must be an integer from 1 to {MAX_PER_PAGE}")
    dataset = request.app[DATASET]
    items = dataset.page(page, per_page)
    return json_response(
        {"page": page, "per_page": per_page, "total": len(dataset.users), "items": items}
    )


async def create_order(request: web.Request) -> web.Response:
    user_id = _int_or_none(request.match_info["user_id"])
    if user_id is None:
        return error(400, "user id must be a positive integer")
    # Reading the body enforces client_max_size and answers 413 beyond it.
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return error(400, f"body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return error(422, "body must be a JSON object with currency and items")
    try:
        order = request.app[DATASET].create_order(user_id, body.get("currency"), body.get("items"))
    except OrderInputError as exc:
        return error(422, str(exc))
    except KeyError:
        return error(404, f"no user with id {user_id}")
    return json_response(order, status=201, headers={"Location": f"/orders/{order['id']}"})


async def get_order(request: web.Request) -> web.Response:
    order_id = _int_or_none(request.match_info["order_id"])
    order = request.app[DATASET].created_orders.get(order_id) if order_id is not None else None
    if order is None:
        return error(404, "no such order")
    return json_response(order)


def build_app(dataset: Dataset, max_request_bytes: int) -> web.Application:
    app = web.Application(client_max_size=max_request_bytes)
    app[DATASET] = dataset
    app.router.add_get("/health", health)
    app.router.add_get("/users", list_users)
    app.router.add_get("/users/{user_id}", get_user)
    app.router.add_post("/users/{user_id}/orders", create_order)
    app.router.add_get("/orders/{order_id}", get_order)
    return app


def main() -> None:
    runtime.run_server(__doc__, runtime.dataset_app_server(build_app))


if __name__ == "__main__":
    main()
