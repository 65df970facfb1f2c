"""docs/results-schema.md, generated from the models of bench.results_model: every part of
`results.json` with its fields, their types, defaults and meaning, and the format version.

    python -m bench.results_schema > docs/results-schema.md

A test checks that the committed document is what this prints, so the two cannot drift.
"""

from __future__ import annotations

import inspect
import json
import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from bench.results import summary_frame
from bench.results_model import RESULTS_FORMAT, RETIRED_FORMATS, RunDocument

GENERATE = "python -m bench.results_schema > docs/results-schema.md"
SCALARS = {int: "integer", float: "number", str: "string", bool: "boolean", Any: "any"}

INTRO = f"""\
# `results.json`, format version {RESULTS_FORMAT}

<!-- Generated from bench/results_model.py by `{GENERATE}`: edit the models, not this. -->

Every run writes `results/<UTC timestamp>-<scenario>/results.json`. It is the one source
of truth: `summary.csv` and every chart are derived from it (`bench report RUN_DIR`
re-renders them without rerunning). The file is rewritten atomically after every trial,
so after a crash or a Ctrl-C it holds everything measured until then.

Units are in the field names: `_us` microseconds, `_s` seconds, `_bytes` bytes,
`_per_s` per second. Latencies come from HDR histograms (1 µs to 1 h, 3 significant
figures); the histograms themselves are stored, HdrHistogram-encoded (compressed, base64),
so any percentile can be computed later and histograms can be merged exactly.

This format pools a point's repeats instead of taking medians of them, reports a
percentile only where the samples support it, counts losses into latency as censored
values, and judges the generator.

## Reading it

`bench.results_model.load(RUN_DIR)` reads a run into a typed `RunDocument` (the parts
below); `bench.results.load_run(RUN_DIR)` gives the same checked document as plain dicts.
A file of another format is refused in one sentence naming the file and its version; a
newer format asks for a newer bench. Refused formats:

{"".join(f"- format {version}: {why}.{chr(10)}" for version, why in RETIRED_FORMATS.items())}
Within format {RESULTS_FORMAT}, a field an older file lacks reads as its default (the
column below: nothing measured), unknown fields are kept, and a missing required field or
a wrong type is refused, naming the field.
"""

CSV = """\
## `summary.csv`

One row per pattern and point, written with pandas: `status`, `trials_ok`, `trials` and
`trials_total` (the same count), `partial_note`; the pooled figures above, the throughput
spread, each latency percentile (empty where unsupported) with whether it is a lower
bound, the sample count, `requests`, `errors`, `timeouts`, `unsent` and `unsent_fraction`
(of the requests due; empty for push); push points' `completeness`, `delivered`,
`expected`, `lost`, `duplicates` and `out_of_order` (empty for request/response);
`client_bound` and its reasons, the cost figures and the point's error. The columns, in
order:
"""


def type_name(annotation: object) -> str:
    """A field's type as a reader of the JSON sees it: `integer or null`, `list of Trial`."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        present = [arg for arg in args if arg is not type(None)]
        text = (
            "number"
            if set(present) == {int, float}
            else " or ".join(type_name(arg) for arg in present)
        )
        return f"{text} or null" if len(present) < len(args) else text
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is dict:
        return f"table of {type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    return SCALARS.get(annotation, str(annotation))


def default_text(field: FieldInfo) -> str:
    """What a file without the field reads as: "required" when it must have it."""
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    return "empty" if isinstance(value, BaseModel) else f"`{json.dumps(value)}`"


def models_in(annotation: object) -> list[type[BaseModel]]:
    """The models a field's type refers to, through lists, tables and unions."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in models_in(arg)]


def sections(root: type[BaseModel] = RunDocument) -> dict[type[BaseModel], list[str]]:
    """Every model the document holds, depth first in field order, with the paths where
    it appears."""
    found: dict[type[BaseModel], list[str]] = {}

    def visit(model: type[BaseModel], path: str) -> None:
        if model in found:
            found[model].append(path)
            return
        found[model] = [path] if path else []
        for name, field in model.model_fields.items():
            suffix = "[]" if get_origin(field.annotation) is list else ""
            suffix = ".*" if get_origin(field.annotation) is dict else suffix
            for nested in models_in(field.annotation):
                visit(nested, f"{path}.{name}{suffix}" if path else f"{name}{suffix}")

    visit(root, "")
    return found


def own_fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """The fields a model declares itself, not those of the model it extends."""
    inherited = {name for base in model.__mro__[1:] for name in getattr(base, "model_fields", {})}
    return {name: f for name, f in model.model_fields.items() if name not in inherited}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def section(model: type[BaseModel], paths: list[str]) -> str:
    lines = [f"## `{model.__name__}`", ""]
    if paths:
        elsewhere = f" and {len(paths) - 1} more places" if len(paths) > 2 else ""
        shown = paths[:1] if elsewhere else paths
        lines += [f"At {' and '.join(f'`{path}`' for path in shown)}{elsewhere}.", ""]
    lines += [inspect.cleandoc(model.__doc__ or ""), ""]
    for base in model.__bases__:
        if base.model_fields:  # a part that extends another (Part itself has no fields)
            lines += [f"Every field of [{base.__name__}](#{base.__name__.lower()}), and:", ""]
    lines += ["| field | type | default | meaning |", "|---|---|---|---|"]
    for name, field in own_fields(model).items():
        cells = [f"`{name}`", type_name(field.annotation), default_text(field)]
        cells.append(field.description or "")
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def csv_columns() -> list[str]:
    """summary.csv's columns, as bench.results writes them (for a run of one point)."""
    point = {
        "point": 0,
        "label": "",
        "sweep_parameter": None,
        "sweep_value": None,
        "pattern": "pattern",
        "pattern_label": "pattern",
        "config": {},
        "status": "pending",
        "trials": [],
    }
    run = {"id": "run", "scenario": "scenario", "title": "", "status": "running"}
    document = RunDocument(schema_version=RESULTS_FORMAT, run=run, environment={}, points=[point])
    return list(summary_frame(document).columns)


def render() -> str:
    parts = [INTRO]
    parts += [section(model, paths) for model, paths in sections().items()]
    parts.append(CSV + "\n" + ", ".join(f"`{column}`" for column in csv_columns()) + ".\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
