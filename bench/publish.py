"""Publishing: from stored results.json files only, a report people can read and cite.

The published folder (results/published/ by default, meant to be committed) holds:

    runs/<run id>/results.json, scenario.toml   the sources; `make publish` re-renders from them
    charts/overview.png                         every scenario's patterns, ranked, ties marked
    charts/<scenario>/*.png, *.svg              each run's charts
    README.md                                   the summary, with the charts as image files
    report.html                                 one self-contained file: every chart embedded

Nothing is measured here: `bench publish --latest` adopts the newest complete run of each
scenario from results/, and `bench publish` alone re-renders what is already adopted.
"""

from __future__ import annotations

import base64
import html
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.charts import overview_chart, rank, render_charts
from bench.charts.overview import HEADLINE_LABELS, HIGHER_IS_BETTER
from bench.charts.style import FORMATS
from bench.claims import ClaimResult, check_claims
from bench.environment import describe as describe_environment
from bench.results import RESULTS_FILE, ResultsUnreadable, load_run

RUNS_DIR = "runs"
CHARTS_DIR = "charts"
HEADLINE_CHARTS = {
    "request_response": ("throughput", "latency"),
    "push": ("latency", "completeness"),
}
OTHER_CHARTS = ("latency-distribution", "cost", "wire-bytes")


@dataclass(frozen=True)
class Published:
    markdown: Path
    html: Path
    charts: list[Path]
    claims: list[ClaimResult]


def latest_runs(results_dir: Path) -> list[Path]:
    """The newest complete run of each scenario in `results_dir`."""
    newest: dict[str, Path] = {}
    for candidate in sorted(results_dir.glob(f"*/{RESULTS_FILE}")):
        run_dir = candidate.parent
        if run_dir.is_symlink() or run_dir.name == "published":
            continue
        try:
            document = load_run(run_dir)
        except ResultsUnreadable:
            continue
        if document["run"]["status"] == "complete" and not document["run"].get("quick"):
            newest[document["run"]["scenario"]] = run_dir  # sorted by timestamp: last wins
    return [newest[name] for name in sorted(newest)]


def adopt(run_dirs: list[Path], out: Path) -> None:
    """Copy runs into the published folder, replacing older runs of the same scenarios."""
    runs = out / RUNS_DIR
    runs.mkdir(parents=True, exist_ok=True)
    for run_dir in run_dirs:
        document = load_run(run_dir)
        scenario = document["run"]["scenario"]
        for existing in runs.glob(f"*/{RESULTS_FILE}"):
            if load_run(existing.parent)["run"]["scenario"] == scenario:
                shutil.rmtree(existing.parent)
        target = runs / run_dir.name
        target.mkdir()
        for name in (RESULTS_FILE, "scenario.toml"):
            if (run_dir / name).exists():
                shutil.copy2(run_dir / name, target / name)


def _ordered(documents: list[dict]) -> list[dict]:
    """Request/response scenarios first, then push; by name within each."""
    return sorted(
        documents, key=lambda d: (d["run"].get("workload") == "push", d["run"]["scenario"])
    )


def publish(out: Path) -> Published:
    """Render the published folder from the runs it holds."""
    run_files = sorted((out / RUNS_DIR).glob(f"*/{RESULTS_FILE}"))
    if not run_files:
        raise ResultsUnreadable(
            f"{out / RUNS_DIR}: no runs to publish; adopt some with `bench publish --latest` "
            "or `bench publish RUN_DIR...`"
        )
    documents = _ordered([load_run(path.parent) for path in run_files])
    charts_dir = out / CHARTS_DIR
    if charts_dir.exists():
        shutil.rmtree(charts_dir)
    formats = FORMATS.set(("png",))  # SVGs stay with the runs: `bench report` renders them
    try:
        charts = overview_chart(documents, charts_dir)
        for document in documents:
            charts += render_charts(document, charts_dir / document["run"]["scenario"])
    finally:
        FORMATS.reset(formats)
    claims = check_claims({d["run"]["scenario"]: d for d in documents})
    markdown = out / "README.md"
    markdown.write_text(render_markdown(documents, claims))
    report = out / "report.html"
    report.write_text(render_html(documents, claims, charts_dir))
    return Published(markdown, report, charts, claims)


# Shared pieces ---------------------------------------------------------------------------
def _stack(documents: list[dict]) -> str:
    environment = documents[0]["environment"]
    packages = environment.get("packages", {})
    names = (
        "aiohttp",
        "grpcio",
        "protobuf",
        "websockets",
        "graphql-core",
        "paho-mqtt",
        "uvloop",
        "orjson",
    )
    parts = [f"Python {environment.get('python')}"]
    parts += [f"{name} {packages[name]}" for name in names if name in packages]
    parts += list((environment.get("tools") or {}).values())
    return ", ".join(parts)


def _machines(documents: list[dict]) -> str:
    return "; ".join(sorted({describe_environment(d["environment"]) for d in documents}))


def _fmt_ms(point: dict, field: str) -> str:
    spread = ((point.get("summary") or {}).get("latency_us") or {}).get(field)
    return f"{spread['median'] / 1000:,.3g}" if spread else "-"


def _summary_rows(document: dict) -> list[list[str]]:
    push = document["run"].get("workload") == "push"
    rows = []
    for point in document["points"]:
        summary = point.get("summary") or {}
        throughput = (summary.get("throughput_per_s") or {}).get("median")
        cpu = (summary.get("server_cpu_s_per_1000") or {}).get("median")
        wire = (summary.get("wire_bytes_per_message") or {}).get("median")
        if push:
            completeness = ((summary.get("delivery") or {}).get("completeness") or {}).get("median")
            outcome = f"{completeness:.2%}" if completeness is not None else point["status"]
        else:
            faults = summary.get("errors", 0) + summary.get("timeouts", 0)
            outcome = f"{faults:,}" if point["status"] == "ok" else point["status"]
        rows.append(
            [
                point["label"] or "-",
                point["pattern"],
                f"{throughput:,.0f}" if throughput else "-",
                _fmt_ms(point, "p50_us"),
                _fmt_ms(point, "p99_us"),
                outcome + (" (client-bound)" if summary.get("client_bound") else ""),
                f"{cpu * 1000:,.1f}" if cpu else "-",
                f"{wire:,.0f}" if wire else "-",
            ]
        )
    return rows


def _summary_header(document: dict) -> list[str]:
    push = document["run"].get("workload") == "push"
    return [
        "point",
        "pattern",
        "deliveries/s" if push else "requests/s",
        "p50 ms",
        "p99 ms",
        "delivered" if push else "errors",
        "server CPU ms per 1k",
        "bytes per event" if push else "bytes per exchange",
    ]


def _ranking_text(document: dict) -> str:
    field, at, ranked = rank(document)
    if not ranked:
        return ""
    better = "higher is better" if field in HIGHER_IS_BETTER else "lower is better"
    where = f" at {document['points'][0]['label'].split('=')[0]} = {at:g}" if at is not None else ""
    order = ", ".join(f"{r.rank}{'=' if r.tied else ''}. {r.pattern}" for r in ranked)
    return f"Ranked on {HEADLINE_LABELS[field]}{where} ({better}): {order}."


# Markdown -------------------------------------------------------------------------------
def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(documents: list[dict], claims: list[ClaimResult]) -> str:
    first = documents[0]
    parts = [
        "# Published results",
        "",
        f"Measured on {_machines(documents)}.  ",
        f"Stack: {_stack(documents)}.  ",
        f"Runs: {', '.join(d['run']['id'] for d in documents)} "
        f"(from {min(d['run']['started_at'] for d in documents)}).",
        "",
        "Generated by `bench publish` from the `results.json` files in [runs/](runs/); "
        "`make publish` regenerates it. The same report, with every chart, is in "
        "[report.html](report.html) (one file, opens offline).",
        "",
        "![Which pattern leads on each question](charts/overview.png)",
        "",
        "## The published claims, checked here",
        "",
        "Each claim from popular guides to these patterns (sources in `bench/claims.toml`), "
        "what this machine measured, and whether the claim holds *here*: on this machine and "
        "this stack, not in general.",
        "",
        _md_table(
            ["id", "claim", "measured here", "verdict"],
            [[c.id, c.claim, c.measured, f"**{c.verdict}**"] for c in claims],
        ),
        "",
    ]
    calibration = (first.get("calibration") or {}).get("ratios")
    if calibration:
        parts += [
            f"The generator reached {calibration['rate_at_32']:.2f}x wrk's request rate at "
            f"concurrency 32 and {calibration['p50_at_1']:.2f}x wrk's median latency at "
            "concurrency 1 (`bench calibrate`).",
            "",
        ]
    for document in documents:
        scenario = document["run"]["scenario"]
        kind = document["run"].get("workload", "request_response")
        parts += [f"## {document['run']['title']}", "", document["run"]["description"].strip(), ""]
        for chart in HEADLINE_CHARTS[kind]:
            parts += [f"![{chart}](charts/{scenario}/{chart}.png)", ""]
        parts += [
            _ranking_text(document),
            "",
            _md_table(_summary_header(document), _summary_rows(document)),
            "",
            "More: " + ", ".join(f"[{c}](charts/{scenario}/{c}.png)" for c in OTHER_CHARTS),
            "",
        ]
    parts += [
        "## How to read these",
        "",
        "Medians over the repeats (at least three), with the smallest and largest repeat as "
        "whiskers; patterns whose ranges overlap are ranked as ties. Latency is measured from "
        "the intended send time in open loop (coordinated omission corrected) and from when "
        "each event was due for push. Hollow markers flag points where the load generator "
        "was at 90% CPU or more: their throughput is a lower bound. Every figure is measured "
        "on one machine in one run; the measurement rules are in the project README.",
        "",
    ]
    return "\n".join(parts)


# HTML -----------------------------------------------------------------------------------
STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1, h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; margin: .5em 0; }
table { border-collapse: collapse; margin: 1em 0; font-size: .88em; width: 100%; }
th, td { border: 1px solid #ccc; padding: .3em .5em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
.holds { color: #1a7f37; font-weight: bold; }
.fails { color: #b00020; font-weight: bold; }
.unknown { color: #777; font-weight: bold; }
.meta { color: #555; font-size: .9em; }
nav ul { columns: 2; }
"""


def _img(path: Path, alt: str) -> str:
    if not path.exists():
        return f"<p><em>{html.escape(alt)}: not rendered</em></p>"
    encoded = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(alt)}">'


def _html_table(header: list[str], rows: list[list[str]], raw_last: bool = False) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = []
    for row in rows:
        cells = [f"<td>{html.escape(cell)}</td>" for cell in row]
        if raw_last:
            cells[-1] = f"<td>{row[-1]}</td>"
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _verdict_html(verdict: str) -> str:
    css = {"holds here": "holds", "does not hold here": "fails"}.get(verdict, "unknown")
    return f'<span class="{css}">{html.escape(verdict)}</span>'


def render_html(documents: list[dict], claims: list[ClaimResult], charts_dir: Path) -> str:
    sections = []
    toc = ['<li><a href="#claims">The published claims, checked here</a></li>']
    for document in documents:
        scenario = document["run"]["scenario"]
        kind = document["run"].get("workload", "request_response")
        toc.append(f'<li><a href="#{scenario}">{html.escape(document["run"]["title"])}</a></li>')
        figures = "".join(
            _img(charts_dir / scenario / f"{chart}.png", f"{scenario} {chart}")
            for chart in HEADLINE_CHARTS[kind] + OTHER_CHARTS
        )
        sections.append(
            f'<section id="{scenario}"><h2>{html.escape(document["run"]["title"])}</h2>'
            f"<p>{html.escape(document['run']['description'].strip())}</p>"
            f'<p class="meta">run {html.escape(document["run"]["id"])}</p>'
            f"<p>{html.escape(_ranking_text(document))}</p>"
            f"{figures}{_html_table(_summary_header(document), _summary_rows(document))}"
            "</section>"
        )
    claim_rows = [
        [c.id, c.claim, c.measured, " ".join(c.sources), _verdict_html(c.verdict)] for c in claims
    ]
    calibration = (documents[0].get("calibration") or {}).get("ratios")
    calibration_text = (
        f"<p>The generator reached {calibration['rate_at_32']:.2f}x wrk's request rate at "
        f"concurrency 32 and {calibration['p50_at_1']:.2f}x wrk's median latency at "
        "concurrency 1.</p>"
        if calibration
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API patterns bench: published results</title><style>{STYLE}</style></head>
<body>
<h1>API patterns bench: published results</h1>
<p class="meta">Measured on {html.escape(_machines(documents))}.<br>
Stack: {html.escape(_stack(documents))}.<br>
Runs: {html.escape(", ".join(d["run"]["id"] for d in documents))}.</p>
{calibration_text}
<nav><ul>{"".join(toc)}</ul></nav>
{_img(charts_dir / "overview.png", "overview: patterns ranked per scenario")}
<section id="claims"><h2>The published claims, checked here</h2>
<p>Each claim from popular guides to these patterns, what this machine measured, and whether
it holds <em>here</em>: on this machine and this stack, not in general.</p>
{_html_table(["id", "claim", "measured here", "source", "verdict"], claim_rows, raw_last=True)}
</section>
{"".join(sections)}
<p class="meta">Medians over at least three repeats, whiskers from the smallest to the largest;
overlapping ranges are ranked as ties. Generated by <code>bench publish</code> from stored
results; nothing in this page was typed in by hand.</p>
</body></html>
"""
