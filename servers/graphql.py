"""GraphQL over HTTP: graphql-core behind aiohttp, `POST /graphql` with a JSON body.

Protected as a production server would be: the request body size is bounded (413), the
document's token count is bounded (a syntax error beyond it), and so is the depth of its
selections (a validation error). Parsed and validated documents are cached by query text,
as Apollo Server and most production servers do, so a repeated query is only executed.

Run it by hand with `python -m servers.graphql --port 8080`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from inspect import isawaitable

import orjson
from aiohttp import web
from graphql import (
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    build_schema,
    execute,
    parse,
    specified_rules,
    validate,
)
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from graphql.validation import ValidationRule

from servers import runtime
from servers.dataset import Dataset, OrderInputError

MAX_DEPTH = 8
MAX_TOKENS = 2000
DOCUMENT_CACHE_SIZE = 256
MAX_PER_PAGE = 100

SDL = """
type Query {
  user(id: Int!): User
  users(page: Int = 1, perPage: Int = 20): UserPage!
}

type Mutation {
  createOrder(userId: Int!, input: OrderInput!): Order!
}

type User {
  id: Int!
  name: String!
  email: String!
  tier: String!
  createdAt: String!
  bio: String!
  orderCount: Int!
  orders: [Order!]!
}

type Order {
  id: Int!
  userId: Int!
  status: String!
  currency: String!
  totalCents: Int!
  createdAt: String!
  items: [OrderItem!]!
  user: User!
}

type OrderItem {
  sku: String!
  quantity: Int!
  priceCents: Int!
}

type UserPage {
  page: Int!
  perPage: Int!
  total: Int!
  items: [User!]!
}

input OrderInput {
  currency: String!
  items: [OrderItemInput!]!
}

input OrderItemInput {
  sku: String!
  quantity: Int!
  priceCents: Int!
}
"""

# The dataset's records use snake_case keys; GraphQL's fields are camelCase.
_KEYS = {
    "createdAt": "created_at",
    "userId": "user_id",
    "totalCents": "total_cents",
    "priceCents": "price_cents",
    "perPage": "per_page",
}


def resolve_field(source, info, **_arguments):
    """Default resolver: read the field from the record dict, mapping camelCase names."""
    name = info.field_name
    if name == "orderCount":
        return len(source["orders"])
    return source[_KEYS.get(name, name)]


def resolve_order_user(order, info):
    return info.context.user(order["user_id"])


def resolve_user(_root, info, id: int):
    return info.context.user(id)


def resolve_users(_root, info, page: int, perPage: int):
    if page < 1:
        raise GraphQLError("page must be at least 1")
    if not 1 <= perPage <= MAX_PER_PAGE:
        raise GraphQLError(f"perPage must be from 1 to {MAX_PER_PAGE}")
    dataset: Dataset = info.context
    return {
        "page": page,
        "per_page": perPage,
        "total": len(dataset.users),
        # Whole records: the client's selection decides what goes on the wire.
        "items": [dataset.users[summary["id"]] for summary in dataset.page(page, perPage)],
    }


def resolve_create_order(_root, info, userId: int, input: dict):
    items = [
        {"sku": item["sku"], "quantity": item["quantity"], "price_cents": item["priceCents"]}
        for item in input["items"]
    ]
    try:
        return info.context.create_order(userId, input["currency"], items)
    except OrderInputError as exc:
        raise GraphQLError(str(exc)) from None
    except KeyError:
        raise GraphQLError(f"no user with id {userId}") from None


def build() -> GraphQLSchema:
    schema = build_schema(SDL)
    schema.query_type.fields["user"].resolve = resolve_user
    schema.query_type.fields["users"].resolve = resolve_users
    schema.mutation_type.fields["createOrder"].resolve = resolve_create_order
    # The relation both ways makes cycles possible, and with them the deep queries the
    # depth limit is there to refuse.
    schema.type_map["Order"].fields["user"].resolve = resolve_order_user
    return schema


def depth_limit(max_depth: int) -> type[ValidationRule]:
    """A validation rule rejecting operations nested deeper than `max_depth` fields."""

    class DepthLimit(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_args):
            depth = self._depth(node.selection_set, set())
            if depth > max_depth:
                self.report_error(
                    GraphQLError(f"query depth {depth} exceeds the limit of {max_depth}", node)
                )

        def _depth(self, selections: SelectionSetNode | None, seen: set[str]) -> int:
            deepest = 0
            for selection in selections.selections if selections else ():
                if isinstance(selection, FieldNode):
                    deepest = max(deepest, 1 + self._depth(selection.selection_set, seen))
                elif isinstance(selection, InlineFragmentNode):
                    deepest = max(deepest, self._depth(selection.selection_set, seen))
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    fragment = self.context.get_fragment(name)
                    if fragment is not None and name not in seen:  # cycles: another rule's job
                        deepest = max(deepest, self._depth(fragment.selection_set, seen | {name}))
            return deepest

    return DepthLimit


class GraphqlEndpoint:
    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.schema = build()
        self.rules = (*specified_rules, depth_limit(MAX_DEPTH))
        self.documents: OrderedDict[str, tuple[DocumentNode | None, list[GraphQLError]]] = (
            OrderedDict()
        )

    def document(self, query: str) -> tuple[DocumentNode | None, list[GraphQLError]]:
        """Parse and validate `query`, or take the result from the bounded cache."""
        cached = self.documents.get(query)
        if cached is not None:
            self.documents.move_to_end(query)
            return cached
        try:
            document = parse(query, max_tokens=MAX_TOKENS)
            result = (document, validate(self.schema, document, self.rules))
        except GraphQLError as error:
            result = (None, [error])
        self.documents[query] = result
        if len(self.documents) > DOCUMENT_CACHE_SIZE:
            self.documents.popitem(last=False)
        return result

    async def handle(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return respond({"errors": [{"message": "the body is not valid JSON"}]}, 400)
        query = body.get("query") if isinstance(body, dict) else None
        variables = body.get("variables") if isinstance(body, dict) else None
        if not isinstance(query, str) or not isinstance(variables, dict | None):
            return respond(
                {"errors": [{"message": "the body needs a query string and optional variables"}]},
                400,
            )
        document, errors = self.document(query)
        if errors:
            return respond({"errors": [error.formatted for error in errors]})
        result = execute(
            self.schema,
            document,
            context_value=self.dataset,
            variable_values=variables,
            operation_name=body.get("operationName"),
            field_resolver=resolve_field,
        )
        if isawaitable(result):
            result = await result
        return respond(formatted(result))


def formatted(result: ExecutionResult) -> dict:
    response: dict = {"data": result.data}
    if result.errors:
        response["errors"] = [error.formatted for error in result.errors]
    return response


def respond(payload: dict, status: int = 200) -> web.Response:
    # GraphQL over HTTP with application/json: 200 for every well-formed request, errors
    # included; 400 only when the request itself is not a GraphQL request.
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


async def health(_request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


def build_app(dataset: Dataset, max_request_bytes: int) -> web.Application:
    app = web.Application(client_max_size=max_request_bytes)
    app.router.add_post("/graphql", GraphqlEndpoint(dataset).handle)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    args = runtime.argument_parser(__doc__.splitlines()[0]).parse_args()
    sock = runtime.bind(args.host, args.port)
    app = build_app(runtime.dataset_from(args), args.max_request_bytes)

    async def run(stop: asyncio.Event) -> None:
        await runtime.serve_aiohttp(app, sock, args.ready_file, stop)

    runtime.serve(run)


if __name__ == "__main__":
    main()
