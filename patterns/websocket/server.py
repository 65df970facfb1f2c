"""WebSocket request/response: JSON messages with correlation ids on long-lived connections.

A client sends `{"id": 7, "op": "get_user", "params": {"id": 3}}` and may send more before
the answers arrive; each answer carries its request's id: `{"id": 7, "result": {...}}` or
`{"id": 7, "error": {"code": 404, "message": "..."}}`. A message that is not such a request
(not JSON, no id, a binary frame) closes the connection with 1008 (policy violation);
invalid UTF-8 closes it with 1007 and an oversized message with 1009 (the library does both).

Compression (permessage-deflate, on by default in the library) is off, so that its cost
does not hide in the comparison; pings keep idle connections alive.

Run it by hand with `python -m patterns.websocket.server --port 8765`.
"""

from __future__ import annotations

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from common import server as runtime
from common.dataset import Dataset, OrderInputError

MAX_PER_PAGE = 100


class RequestError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _int(params: dict, name: str) -> int:
    value = params.get(name)
    if type(value) is not int:
        raise RequestError(422, f"params.{name} must be an integer")
    return value


def answer(dataset: Dataset, operation: object, params: dict) -> object:
    """The result of one request, or RequestError with an HTTP-like code."""
    if operation == "get_user":
        user = dataset.user(_int(params, "id"))
        if user is None:
            raise RequestError(404, f"no user with id {params['id']}")
        return user
    if operation == "list_users":
        page, per_page = _int(params, "page"), _int(params, "per_page")
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            raise RequestError(422, f"page must be >= 1 and per_page from 1 to {MAX_PER_PAGE}")
        return {
            "page": page,
            "per_page": per_page,
            "total": len(dataset.users),
            "items": dataset.page(page, per_page),
        }
    if operation == "create_order":
        try:
            return dataset.create_order(
                _int(params, "user_id"), params.get("currency"), params.get("items")
            )
        except OrderInputError as exc:
            raise RequestError(422, str(exc)) from None
        except KeyError:
            raise RequestError(404, f"no user with id {params['user_id']}") from None
    raise RequestError(400, f"unknown op {operation!r}")


async def handle(connection: ServerConnection, dataset: Dataset) -> None:
    try:
        async for message in connection:
            if isinstance(message, bytes):
                await connection.close(CloseCode.POLICY_VIOLATION, "send requests as text")
                return
            try:
                request = orjson.loads(message)
                correlation = request["id"]
            except (orjson.JSONDecodeError, TypeError, KeyError):
                await connection.close(CloseCode.POLICY_VIOLATION, "not a request")
                return
            params = request.get("params")
            try:
                if not isinstance(params, dict):
                    raise RequestError(422, "params must be an object")
                reply = {"id": correlation, "result": answer(dataset, request.get("op"), params)}
            except RequestError as exc:
                reply = {"id": correlation, "error": {"code": exc.code, "message": str(exc)}}
            await connection.send(orjson.dumps(reply), text=True)
    except ConnectionClosed:
        pass


async def serve_requests(context: runtime.ServerContext) -> None:
    dataset = context.dataset()
    async with serve(
        lambda connection: handle(connection, dataset),
        sock=context.sock,
        compression=None,
        max_size=context.args.max_request_bytes,
        server_header=None,
        ssl=context.server_ssl(),  # wss only, when the run gave a certificate
    ):
        context.ready()
        await context.stop.wait()


def main() -> None:
    runtime.run_server(__doc__, serve_requests)


if __name__ == "__main__":
    main()
