"""Servers that one request cannot stall (issue 10): GraphQL refuses a query that would
hold its event loop before executing any of it, and SSE gives a defined answer to a
`Last-Event-ID` it never issued. Real servers on free ports, real HTTP."""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from pathlib import Path

import orjson
import pytest
from graphql import parse

from bench.drivers.base import PushContext, Target
from bench.registry import get_pattern
from bench.serverproc import ServerGroup
from common.dataset import DatasetSpec, build_user
from patterns.graphql import driver as graphql_driver
from patterns.graphql import server as graphql_server
from patterns.sse.driver import SseDriver, SseOptions, SseSubscription
from tests.conftest import SMALL_DATASET

WAIT_S = 10.0  # every wait on the servers below ends by then, passed or failed

# GraphQL -----------------------------------------------------------------------------------
ORDER_FIELDS = "id userId status currency totalCents createdAt items { sku quantity priceCents }"
FULL_USER = f"id name email tier createdAt bio orderCount orders {{ {ORDER_FIELDS} }}"


def many_aliases_of_full_pages(aliases: int) -> str:
    """The issue's query: `aliases` copies of the costliest field the schema has, a page
    of 100 users with all their orders, in a document within the token limit."""
    copies = " ".join(
        f"a{i}: users(page: 1, perPage: 100) {{ total items {{ ...FullUser }} }}"
        for i in range(aliases)
    )
    return f"query Hostile {{ {copies} }} fragment FullUser on User {{ {FULL_USER} }}"


def post_graphql(port: int, query: str, variables: dict | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_S)
    try:
        body = json.dumps({"query": query, "variables": variables})
        connection.request("POST", "/graphql", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def graphql_still_serves(port: int) -> None:
    status, body = post_graphql(port, "{ user(id: 2) { id email } }")
    assert status == 200
    assert body == {"data": {"user": {"id": 2, "email": build_user(SMALL_DATASET, 2)["email"]}}}


@pytest.fixture(scope="module")
def graphql_port(shared_servers):
    return shared_servers.port("graphql")


def test_graphql_refuses_sixty_aliases_of_full_pages_before_executing_them(graphql_port):
    status, body = post_graphql(graphql_port, many_aliases_of_full_pages(60))
    assert status == 200  # a GraphQL error, as every validation error is
    assert "data" not in body  # refused before execution: nothing was resolved
    costly, aliases, fields = body["errors"]
    assert costly["extensions"] == {
        "code": "QUERY_TOO_COSTLY",
        "cost": 60 * (1 + 1 + 1 + 100 * (7 + 1 + 10 * (6 + 1 + 10 * 3))),
        "limit": graphql_server.MAX_COST,
    }
    assert costly["message"].startswith("query cost ")
    assert aliases["extensions"] == {"code": "TOO_MANY_ALIASES", "aliases": 60, "limit": 15}
    assert fields["extensions"]["code"] == "TOO_MANY_FIELDS"
    graphql_still_serves(graphql_port)


def test_graphql_refuses_many_cheap_fields_that_would_hold_its_validation(graphql_port):
    # 454 cheap lists cost 4,995, under the cost limit, but validation compares same-named
    # fields pairwise: 0.75 s of the server's event loop, refused before it starts.
    many = "{ user(id: 1) { " + "orders { id } " * 454 + "} }"
    status, body = post_graphql(graphql_port, many)
    assert status == 200 and "data" not in body
    assert [error["extensions"] for error in body["errors"]] == [
        {"code": "TOO_MANY_FIELDS", "fields": 909, "limit": graphql_server.MAX_FIELDS}
    ]
    within = "{ user(id: 1) { " + "orders { id } " * 49 + "} }"  # 99 fields: answered
    status, body = post_graphql(graphql_port, within)
    assert status == 200 and body["data"]["user"]["orders"] and "errors" not in body
    graphql_still_serves(graphql_port)


def test_graphql_refuses_more_aliases_than_the_limit_even_of_a_cheap_field(graphql_port):
    cheap = " ".join(f"a{i}: user(id: 1) {{ id }}" for i in range(16))
    status, body = post_graphql(graphql_port, f"{{ {cheap} }}")
    assert status == 200
    assert [error["extensions"]["code"] for error in body["errors"]] == ["TOO_MANY_ALIASES"]
    status, body = post_graphql(graphql_port, "{ " + cheap.rpartition(" a15:")[0] + " }")
    assert len(body["data"]) == 15 and "errors" not in body


def test_graphql_refuses_a_query_too_deep_with_its_own_code(graphql_port):
    nested = "{ user(id: 1) { orders { user { orders { user { orders { user { orders { id "
    status, body = post_graphql(graphql_port, nested + "} } } } } } } } }")
    assert status == 200
    assert body["errors"][0]["extensions"] == {"code": "QUERY_TOO_DEEP", "limit": 8}


def test_graphql_refuses_fields_nested_through_fragments_past_the_recursion_limit(graphql_port):
    # 52 fragments nesting 10 fields each, within the token limit: 520 levels, deeper
    # than a walk of the document one Python call per level could go.
    nested = "orders { user { " * 5
    fragments = " ".join(
        f"fragment F{k} on User {{ {nested}...F{k + 1}{' } }' * 5} }}" for k in range(52)
    )
    query = f"{{ user(id: 1) {{ ...F0 }} }} {fragments} fragment F52 on User {{ id }}"
    status, body = post_graphql(graphql_port, query)
    assert status == 200
    assert body["errors"][0]["extensions"] == {"code": "QUERY_TOO_DEEP", "limit": 8}
    graphql_still_serves(graphql_port)


def test_graphql_measures_fragments_spread_twice_into_the_next_in_linear_time(graphql_port):
    # Each fragment spreads the next twice: 2**60 fields as written. Walking them one by
    # one (as the depth limit once did) would hold the server for ever.
    fragments = " ".join(f"fragment F{k} on User {{ ...F{k + 1} ...F{k + 1} }}" for k in range(60))
    query = f"{{ user(id: 1) {{ ...F0 }} }} {fragments} fragment F60 on User {{ id }}"
    started = time.monotonic()
    status, body = post_graphql(graphql_port, query)
    assert time.monotonic() - started < WAIT_S
    assert status == 200
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert body["errors"][0]["extensions"]["cost"] == 2**53  # capped: JSON's exact integers
    graphql_still_serves(graphql_port)


@pytest.mark.parametrize(
    ("query", "cost"),
    [
        (graphql_driver.USER_FULL, 1 + 6 + 1 + 10 * (6 + 1 + 10 * 3)),
        (graphql_driver.USER_FEW, 1 + 3),
        (graphql_driver.LIST_USERS, 1 + 2 + 1 + 100 * 6),  # $perPage counts as 100
        (graphql_driver.CREATE_ORDER, 1 + 6 + 1 + 10 * 3),
    ],
)
def test_every_query_the_harness_sends_costs_a_fraction_of_the_limit(query, cost):
    schema = graphql_server.build()
    document = parse(query)
    (operation,) = document.definitions
    measure = graphql_server.SelectionMeasurer(schema, document).operation(operation)
    assert measure.cost == cost
    assert measure.cost * 8 <= graphql_server.MAX_COST  # room to spare, not a near miss
    assert measure.aliases == 0
    assert graphql_server.limit_errors(schema, document) == []


def test_the_harness_queries_at_their_largest_are_answered(graphql_port):
    status, body = post_graphql(
        graphql_port, graphql_driver.LIST_USERS, {"page": 1, "perPage": 100}
    )
    assert status == 200 and "errors" not in body
    assert len(body["data"]["users"]["items"]) == SMALL_DATASET.users  # 50: all of them
    status, body = post_graphql(graphql_port, graphql_driver.USER_FULL, {"id": 7})
    assert status == 200 and body["data"]["user"]["id"] == 7


# SSE ---------------------------------------------------------------------------------------
REPLAY_EVENTS = 5


class EventStream:
    """A bare `GET /events`, read block by block (comments skipped), each wait bounded."""

    def __init__(self, port: int, last_event_id: str | None = None) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_S)
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.connection.request("GET", "/events", headers=headers)
        self.response = self.connection.getresponse()

    def blocks(self, count: int) -> list[dict[str, str]]:
        """The next `count` blocks (events, retry hints) as {field: value}."""
        found: list[dict[str, str]] = []
        fields: dict[str, str] = {}
        while len(found) < count:
            line = self.response.readline().decode().rstrip("\n")
            if line == "":
                if fields:
                    found.append(fields)
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
        return found

    def close(self) -> None:
        self.connection.close()


def start_sse(tmp_path: Path, publish_events: int) -> tuple[ServerGroup, int]:
    """An SSE server keeping REPLAY_EVENTS for replay, that has published `publish_events`
    events; returns (its server group, the last id it issued)."""
    pattern = get_pattern("sse")
    options = pattern.options({"replay_events": REPLAY_EVENTS})
    dataset = DatasetSpec(users=10, payload_bytes=256)
    servers = pattern.servers(dataset, options, tmp_path, "sse", None)
    try:
        servers.start()
        return servers, publish(servers, tmp_path, publish_events)
    except BaseException:
        servers.stop()
        raise


def publish(servers: ServerGroup, tmp_path: Path, events: int) -> int:
    """Have the server publish `events` events at 1,000/s; the last id once it is done."""
    if not events:
        return 0
    rate = 1000
    start = {"start_ns": time.monotonic_ns(), "rate_per_s": rate, "warmup_s": 0}
    servers.controller.send_control({**start, "duration_s": events / rate})
    # The tally is written once the plan has been published to its end.
    tally_file = tmp_path / "sse.tally"
    servers.controller.send_control({"tally_file": str(tally_file)})
    deadline = time.monotonic() + WAIT_S
    while not tally_file.exists():
        assert time.monotonic() < deadline, "the SSE server did not finish publishing"
        time.sleep(0.01)
    return json.loads(tally_file.read_text())["published"]


@pytest.fixture(scope="module")
def sse_published(tmp_path_factory):
    """An SSE server that has published more events than it keeps for replay."""
    servers, last_id = start_sse(tmp_path_factory.mktemp("sse"), publish_events=12)
    assert last_id > REPLAY_EVENTS
    yield servers.processes[0].port, last_id
    servers.stop()


def test_sse_answers_an_id_it_never_issued_with_a_reset_then_its_whole_buffer(sse_published):
    port, last_id = sse_published
    oldest = last_id - REPLAY_EVENTS + 1
    stream = EventStream(port, str(last_id + 1000))
    try:
        assert stream.response.status == 200
        retry, reset, *replayed = stream.blocks(2 + REPLAY_EVENTS)
    finally:
        stream.close()
    assert retry == {"retry": "500"}
    assert reset["event"] == "reset"
    assert reset["id"] == str(oldest - 1)  # the client's Last-Event-ID, corrected
    assert orjson.loads(reset["data"]) == {
        "last_event_id": str(last_id + 1000),
        "oldest_id": oldest,
        "last_id": last_id,
    }
    assert [int(event["id"]) for event in replayed] == list(range(oldest, last_id + 1))
    assert all("event" not in event for event in replayed)


def test_sse_resumes_an_id_it_issued_without_a_reset(sse_published):
    port, last_id = sse_published
    stream = EventStream(port, str(last_id - 2))
    try:
        retry, first, second = stream.blocks(3)
    finally:
        stream.close()
    assert retry == {"retry": "500"}
    assert [first["id"], second["id"]] == [str(last_id - 1), str(last_id)]
    assert "event" not in first and orjson.loads(first["data"])["seq"] == last_id - 1


@pytest.fixture(scope="module")
def sse_unpublished_port(shared_servers) -> int:
    """An SSE server that has published nothing (the shared one: nothing publishes there)."""
    return shared_servers.port("sse")


def test_sse_with_nothing_published_resets_to_now(sse_unpublished_port):
    stream = EventStream(sse_unpublished_port, "41")
    try:
        _, reset = stream.blocks(2)
    finally:
        stream.close()
    assert reset["event"] == "reset" and reset["id"] == "0"
    assert orjson.loads(reset["data"]) == {"last_event_id": "41", "oldest_id": None, "last_id": 0}


@pytest.mark.parametrize("last_event_id", ["-1", "abc", "1.5", "0x10", "+3", "1 2", "²"])
def test_sse_refuses_a_last_event_id_that_is_not_a_number_with_400(sse_published, last_event_id):
    port, last_id = sse_published
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_S)
    try:
        # Sent as bytes: "²" is not ASCII, as a header value it is its UTF-8 bytes.
        connection.putrequest("GET", "/events")
        connection.putheader("Last-Event-ID", last_event_id.encode())
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 400
        assert b"Last-Event-ID" in response.read()
    finally:
        connection.close()
    stream = EventStream(port, str(last_id - 1))  # and the next subscriber is served
    try:
        assert stream.blocks(2)[1]["id"] == str(last_id)
    finally:
        stream.close()


def test_sse_treats_an_empty_last_event_id_as_none(sse_published):
    port, _ = sse_published
    stream = EventStream(port, "")
    try:
        assert stream.response.status == 200
        assert stream.blocks(1) == [{"retry": "500"}]
    finally:
        stream.close()


def test_the_harness_subscriber_takes_a_reset_as_neither_data_nor_error(sse_published):
    port, last_id = sse_published
    oldest = last_id - REPLAY_EVENTS + 1

    async def resume_beyond_the_counter() -> tuple[list[int], SseDriver, SseSubscription]:
        received: list[int] = []
        everything = asyncio.Event()

        def on_event(_arrived_ns, seq, _published_ns, _payload, _size) -> bool:
            received.append(seq)
            if seq == last_id:
                everything.set()
            return True

        driver = SseDriver(Target("127.0.0.1", port), PushContext(SseOptions(), 256))
        subscription = SseSubscription(driver, on_event)
        subscription.last_event_id = b"%d" % (last_id + 1000)  # as if the server restarted
        await subscription.connect()
        try:
            await asyncio.wait_for(everything.wait(), WAIT_S)
        finally:
            await subscription.close()
        return received, driver, subscription

    received, driver, subscription = asyncio.run(resume_beyond_the_counter())
    assert received == list(range(oldest, last_id + 1))
    assert subscription.problem_count == 0
    assert driver.counters()["resume_resets"] == 1
    assert subscription.last_event_id == b"%d" % last_id
