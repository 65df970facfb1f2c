"""JSON-RPC 2.0 over HTTP: `POST /rpc` (aiohttp), single calls and batches.

Methods: `get_user {id}`, `list_users {page, per_page}`,
`create_order {user_id, currency, items}`. Errors are the specification's own: -32700
parse error, -32600 invalid request, -32601 method not found, -32602 invalid params;
-32004 is this server's "not found". Every answer is HTTP 200, as JSON-RPC over HTTP
conventionally is; a batch of notifications only gets 204, and a body over the
configured size 413.

Run it by hand with `python -m patterns.jsonrpc.server --port 8080`.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from common import server as runtime
from common.dataset import Dataset, OrderInputError

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
NOT_FOUND = -32004
MAX_PER_PAGE = 100
MAX_BATCH = 100


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _param(params: object, name: str, position: int) -> object:
    """By-name or by-position parameters, as the specification allows both."""
    if isinstance(params, dict):
        return params.get(name)
    if isinstance(params, list) and position < len(params):
        return params[position]
    return None


def _integer(params: object, name: str, position: int) -> int:
    value = _param(params, name, position)
    if type(value) is not int:
        raise RpcError(INVALID_PARAMS, f"{name} must be an integer")
    return value


def get_user(dataset: Dataset, params: object) -> dict:
    user_id = _integer(params, "id", 0)
    user = dataset.user(user_id)
    if user is None:
        raise RpcError(NOT_FOUND, f"no user with id {user_id}")
    return user


def list_users(dataset: Dataset, params: object) -> dict:
    page, per_page = _integer(params, "page", 0), _integer(params, "per_page", 1)
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        raise RpcError(INVALID_PARAMS, f"page must be >= 1 and per_page from 1 to {MAX_PER_PAGE}")
    return {
        "page": page,
        "per_page": per_page,
        "total": len(dataset.users),
        "items": dataset.page(page, per_page),
    }


def create_order(dataset: Dataset, params: object) -> dict:
    user_id = _integer(params, "user_id", 0)
    try:
        return dataset.create_order(
            user_id, _param(params, "currency", 1), _param(params, "items", 2)
        )
    except OrderInputError as exc:
        raise RpcError(INVALID_PARAMS, str(exc)) from None
    except KeyError:
        raise RpcError(NOT_FOUND, f"no user with id {user_id}") from None


METHODS = {"get_user": get_user, "list_users": list_users, "create_order": create_order}


def error(code: int, message: str, request_id: object = None) -> dict:
    return {"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": request_id}


def call(dataset: Dataset, request: object) -> dict | None:
    """The response to one request object, or None for a notification (no id)."""
    if not isinstance(request, dict) or request.get("jsonrpc") != "2.0":
        return error(INVALID_REQUEST, "not a JSON-RPC 2.0 request object")
    request_id = request.get("id")
    if not isinstance(request_id, str | int | None) or isinstance(request_id, bool):
        return error(INVALID_REQUEST, "id must be a string, a number or null")
    params = request.get("params", {})
    try:
        # Checked before the lookup: a list or an object as the method cannot be hashed.
        if not isinstance(request.get("method"), str):
            raise RpcError(INVALID_REQUEST, "method must be a string")
        method = METHODS.get(request["method"])
        if method is None:
            raise RpcError(METHOD_NOT_FOUND, f"no method {request['method']!r}")
        if not isinstance(params, dict | list):
            raise RpcError(INVALID_PARAMS, "params must be an object or an array")
        result = method(dataset, params)
    except RpcError as exc:
        response = error(exc.code, str(exc), request_id)
    else:
        response = {"jsonrpc": "2.0", "result": result, "id": request_id}
    return response if "id" in request else None


async def handle(request: web.Request) -> web.Response:
    dataset: Dataset = request.app[DATASET]
    try:
        payload = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return reply(error(PARSE_ERROR, "parse error: the body is not valid JSON"))
    if isinstance(payload, list):
        if not payload:
            return reply(error(INVALID_REQUEST, "an empty batch is not a request"))
        if len(payload) > MAX_BATCH:
            return reply(error(INVALID_REQUEST, f"a batch holds at most {MAX_BATCH} requests"))
        responses = [r for r in (call(dataset, item) for item in payload) if r is not None]
        return reply(responses) if responses else web.Response(status=204)
    response = call(dataset, payload)
    return reply(response) if response is not None else web.Response(status=204)


def reply(payload: object) -> web.Response:
    return web.Response(body=orjson.dumps(payload), content_type="application/json")


async def health(_request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


DATASET = web.AppKey("dataset", Dataset)


def build_app(dataset: Dataset, max_request_bytes: int) -> web.Application:
    app = web.Application(client_max_size=max_request_bytes)
    app[DATASET] = dataset
    app.router.add_post("/rpc", handle)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    runtime.run_server(__doc__, runtime.dataset_app_server(build_app))


if __name__ == "__main__":
    main()
