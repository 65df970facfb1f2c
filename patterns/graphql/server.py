"""GraphQL over HTTP: graphql-core behind aiohttp, `POST /graphql` with a JSON body.

Protected as a production server would be: the request body size is bounded (413), the
document's token count is bounded (a syntax error beyond it), and so are the depth of its
selections, their static cost and their aliases (see `limit_errors`). Each limit is
judged on the parsed document before it is validated or executed, so that no request
holds the event loop for long: a refusal is a GraphQL error with HTTP 200, like any
validation error, with its code and figures in `extensions`:

    {"errors": [{"message": "query cost 2508300 exceeds the limit of 5000", ...,
                 "extensions": {"code": "QUERY_TOO_COSTLY", "cost": 2508300, "limit": 5000}}]}

Parsed and validated documents are cached by query text, as Apollo Server and most
production servers do, so a repeated query is only executed.

Run it by hand with `python -m patterns.graphql.server --port 8080`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from inspect import isawaitable

import orjson
from aiohttp import web
from graphql import (
    ExecutionResult,
    GraphQLError,
    GraphQLField,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    build_schema,
    execute,
    get_named_type,
    get_nullable_type,
    is_list_type,
    parse,
    validate,
)
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)

from common import server as runtime
from common.dataset import Dataset, OrderInputError

MAX_DEPTH = 8
MAX_TOKENS = 2000
# The costliest query the harness sends, list_users at 100 a page, costs 604 (its
# variable perPage counts as 100); full get_user 378, create_order 38. 5,000 leaves eight
# times that room and bounds what one request can ask: at about 0.8 us of event loop per
# unit measured with 1 KiB users, a few milliseconds.
MAX_COST = 5000
# GraphQL Armor's default: the harness's queries use none, and aliases are how one
# request repeats an expensive field.
MAX_ALIASES = 15
# Field selections as written: the harness's largest query (a user with every field and
# its orders) has 18; 909 cheap ones (`orders { id }` 454 times) cost under MAX_COST and
# held validation 0.75 s. At 100, validation takes about 12 ms at worst here.
MAX_FIELDS = 100
# What a list without a size argument (a user's orders, an order's items) counts as:
# above the dataset's few orders per user and 1 to 3 items per order at 1 KiB.
ASSUMED_LIST_SIZE = 10
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


@dataclass(frozen=True, slots=True)
class SelectionMeasure:
    """What a selection asks of the server, known from the document alone."""

    depth: int  # fields nested on its deepest path
    cost: int  # see limit_errors
    aliases: int  # aliased fields, each fragment counted every time it is spread
    fields: int  # field selections as written, each fragment counted every time it is spread

    def __add__(self, sibling: SelectionMeasure) -> SelectionMeasure:
        return SelectionMeasure(
            max(self.depth, sibling.depth),
            self.cost + sibling.cost,
            self.aliases + sibling.aliases,
            self.fields + sibling.fields,
        )


NOTHING = SelectionMeasure(0, 0, 0, 0)


class SelectionMeasurer:
    """Measures a document's selections by walking them with the schema's types.

    It runs before validation, so it copes with anything that parses: a field the schema
    does not have counts 1 with what it selects, an unknown fragment nothing, and a
    fragment spread inside itself (which validation then refuses) nothing the second
    time. The walk stops one field below MAX_DEPTH: a deeper query is refused for that
    alone, and a document of 2,000 tokens could otherwise nest fields (through fragments)
    beyond Python's recursion limit. A fragment is measured once per page size and level
    it is spread at and remembered: a document that spreads each fragment twice into the
    next takes a walk as long as the document, not two to the power of its fragments
    (as the depth limit's walk once did).
    """

    def __init__(self, schema: GraphQLSchema, document: DocumentNode) -> None:
        self.schema = schema
        self.definitions = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        self.fragments: dict[tuple[str, int | None, int], SelectionMeasure] = {}
        self.measuring: set[str] = set()

    def operation(self, node: OperationDefinitionNode) -> SelectionMeasure:
        root = {
            OperationType.QUERY: self.schema.query_type,
            OperationType.MUTATION: self.schema.mutation_type,
            OperationType.SUBSCRIPTION: self.schema.subscription_type,
        }[node.operation]
        return self.selections(node.selection_set, root, None, 0)

    def selections(
        self,
        node: SelectionSetNode | None,
        parent: GraphQLNamedType | None,
        page_size: int | None,
        level: int,  # fields above these selections
    ) -> SelectionMeasure:
        total = NOTHING
        for selection in node.selections if node else ():
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, page_size, level + 1)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(selection.selection_set, inner, page_size, level)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value, page_size, level)
        return total

    def fragment(self, name: str, page_size: int | None, level: int) -> SelectionMeasure:
        key = (name, page_size, level)
        known = self.fragments.get(key)
        if known is not None:
            return known
        definition = self.definitions.get(name)
        if definition is None or name in self.measuring:
            return NOTHING
        self.measuring.add(name)
        parent = self.schema.get_type(definition.type_condition.name.value)
        measure = self.selections(definition.selection_set, parent, page_size, level)
        self.measuring.discard(name)
        self.fragments[key] = measure
        return measure

    def field(
        self, node: FieldNode, parent: GraphQLNamedType | None, page_size: int | None, level: int
    ) -> SelectionMeasure:
        alias = 1 if node.alias else 0
        if level > MAX_DEPTH:  # too deep already: what it selects changes nothing
            return SelectionMeasure(1, 1, alias, 1)
        fields = parent.fields if isinstance(parent, GraphQLObjectType) else {}
        definition = fields.get(node.name.value)
        if definition is None:
            # Introspection (its answer is bounded by this small schema) or a field that
            # validation refuses: 1 a field, no list sizes, depth and aliases all the same.
            inner = self.selections(node.selection_set, None, None, level)
            return SelectionMeasure(
                1 + inner.depth, 1 + inner.cost, alias + inner.aliases, 1 + inner.fields
            )
        items = 1
        if is_list_type(get_nullable_type(definition.type)):
            items = page_size if page_size is not None else ASSUMED_LIST_SIZE
        named = get_named_type(definition.type)
        inner = self.selections(node.selection_set, named, self.page_size(node, definition), level)
        return SelectionMeasure(
            1 + inner.depth, 1 + items * inner.cost, alias + inner.aliases, 1 + inner.fields
        )

    @staticmethod
    def page_size(node: FieldNode, definition: GraphQLField) -> int | None:
        """The page size a field asks for with `perPage`, for the lists in what it returns.
        A variable counts as the largest page served: the cost is known before the
        variables are, and is cached with the document."""
        if "perPage" not in definition.args:
            return None
        for argument in node.arguments:
            if argument.name.value == "perPage":
                value = argument.value
                # A literal beyond four digits is beyond the largest page anyway (and int()
                # refuses literals of more than 4,300 digits).
                if isinstance(value, IntValueNode) and len(value.value) <= 4:
                    return min(max(int(value.value), 1), MAX_PER_PAGE)
                return MAX_PER_PAGE
        default = definition.args["perPage"].default_value
        return default if isinstance(default, int) else MAX_PER_PAGE


LIMITS = {
    "QUERY_TOO_DEEP": MAX_DEPTH,
    "QUERY_TOO_COSTLY": MAX_COST,
    "TOO_MANY_ALIASES": MAX_ALIASES,
    "TOO_MANY_FIELDS": MAX_FIELDS,
}


def refusal(message: str, node: OperationDefinitionNode, code: str, **figures: int) -> GraphQLError:
    """A limit's error: its code, the operation's figure and the limit in `extensions`."""
    return GraphQLError(message, node, extensions={"code": code, **figures, "limit": LIMITS[code]})


def limit_errors(schema: GraphQLSchema, document: DocumentNode) -> list[GraphQLError]:
    """Errors for each operation of `document` that would hold the server too long,
    judged on the parsed document before it is validated or executed (validating a
    hostile document is itself several times the work of measuring it).

    Depth: fields nested on the deepest path; a query too deep is refused for that alone.
    Cost, a static upper bound on the work and the answer's size: every field costs 1,
    and a list field multiplies the cost of what it selects by the items it can return,
    the `perPage` of the page it is in (20 unless given, 100 for a variable) or
    ASSUMED_LIST_SIZE for a list without a size argument. Every selection counts as
    written (aliases, repeated fragments, even selections the executor would merge), so
    asking for the same list sixty times costs sixty times. Aliases: counted apart as
    well, as they are how one request repeats a field. Fields: every field selection as
    written, since validation compares same-named fields pairwise (its time grows with
    the square of their number, whatever they cost to execute).
    """
    measurer = SelectionMeasurer(schema, document)
    errors = []
    for node in document.definitions:
        if not isinstance(node, OperationDefinitionNode):
            continue
        measure = measurer.operation(node)
        if measure.depth > MAX_DEPTH:  # measured no deeper: its cost and aliases are partial
            message = f"query depth exceeds the limit of {MAX_DEPTH}"
            errors.append(refusal(message, node, "QUERY_TOO_DEEP"))
            continue
        if measure.cost > MAX_COST:
            # JSON numbers beyond 2**53 lose precision in most parsers (RFC 8259, 6).
            cost = min(measure.cost, 2**53)
            message = f"query cost {cost} exceeds the limit of {MAX_COST}"
            errors.append(refusal(message, node, "QUERY_TOO_COSTLY", cost=cost))
        if measure.aliases > MAX_ALIASES:
            message = f"query has {measure.aliases} aliases, more than the limit of {MAX_ALIASES}"
            errors.append(refusal(message, node, "TOO_MANY_ALIASES", aliases=measure.aliases))
        if measure.fields > MAX_FIELDS:
            message = f"query selects {measure.fields} fields, more than the limit of {MAX_FIELDS}"
            errors.append(refusal(message, node, "TOO_MANY_FIELDS", fields=measure.fields))
    return errors


class GraphqlEndpoint:
    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.schema = build()
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
            errors = limit_errors(self.schema, document) or validate(self.schema, document)
            result = (document, errors)
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
    runtime.run_server(__doc__, runtime.dataset_app_server(build_app))


if __name__ == "__main__":
    main()
