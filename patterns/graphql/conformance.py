"""A request GraphQL refuses, for the conformance suite (tests/test_conformance.py): a
query for a field the schema does not have, refused at validation with a GraphQL errors
list and no data (GraphQL over HTTP: still HTTP 200, as a JSON response)."""

from __future__ import annotations

import aiohttp
import orjson

from bench.drivers.base import Target

EXPECTED_ERROR = "HTTP 200 with a GraphQL errors list and no data"


async def bad_request(target: Target) -> str:
    """Ask for a user's field `nope`; describe the answer."""
    url = f"http://{target.host}:{target.port}/graphql"
    query = {"query": "{ user(id: 1) { id nope } }"}
    async with aiohttp.ClientSession() as session, session.post(url, json=query) as response:
        body = await response.read()
    try:
        answer = orjson.loads(body)
        errors = answer["errors"]
        listed = isinstance(errors, list) and all(isinstance(e["message"], str) for e in errors)
        shape = "a GraphQL errors list" if listed and errors else f"errors {errors!r}"
        shape += " and no data" if answer.get("data") is None else " and data"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        shape = f"the body {body[:80]!r}"
    return f"HTTP {response.status} with {shape}"
