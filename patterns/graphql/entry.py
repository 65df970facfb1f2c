"""The registry entry of the `graphql` folder: the pattern(s) it offers."""

from __future__ import annotations

from bench.pattern import REQUEST_RESPONSE, Pattern

HERE = __package__

GRAPHQL = Pattern(
    name="graphql",
    label="GraphQL (graphql-core, all fields)",
    kind=REQUEST_RESPONSE,
    server_module=f"{HERE}.server",
    driver_path=f"{HERE}.driver:GraphqlDriver",
    options_path=f"{HERE}.driver:GraphqlOptions",
    color="#e377c2",
    promises="a GraphQL errors list; depth, alias, field and cost limits",
    packages=("graphql-core", "aiohttp"),
    tool_probe_path=f"{HERE}.calibration:TOOL_PROBE",
)

PATTERNS = [
    GRAPHQL,
    GRAPHQL.variant(
        name="graphql-fields",
        label="GraphQL (graphql-core, 3 fields)",
        fixed_options={"selection": "few"},
        color="#f7b6d2",
        promises="a GraphQL errors list; only the fields asked for",
    ),
]
