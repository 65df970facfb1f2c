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

from bench import figures
from bench.calibrate import describe_latency
from bench.charts import overview_chart, render_charts
from bench.charts.style import FORMATS, calibration_line
from bench.claims import ClaimResult, check_claims, claims_hash
from bench.environment import describe as describe_environment
from bench.environment import git_commit, stack_packages
from bench.generator_bound import merged_reasons
from bench.kinds import KINDS, WorkloadKind, kind_of
from bench.ranking import HEADLINE_LABELS, HIGHER_IS_BETTER, rank_runs, ranking_text
from bench.results import RESULTS_FILE, ResultsUnreadable, read_run
from bench.results_model import GitState, Point, RunDocument

PROJECT_DIR = Path(__file__).resolve().parent.parent
REPLICATES = 2  # independent runs per scenario: the published order is what they agree on

RUNS_DIR = "runs"
CHARTS_DIR = "charts"
OTHER_CHARTS = ("latency-distribution", "cost", "wire-bytes")


@dataclass(frozen=True)
class Published:
    markdown: Path
    html: Path
    charts: list[Path]
    claims: list[ClaimResult]


def latest_runs(results_dir: Path, per_scenario: int = REPLICATES) -> list[Path]:
    """The newest complete, full runs of each scenario in `results_dir`, up to
    `per_scenario` of them."""
    newest: dict[str, list[Path]] = {}
    for candidate in sorted(results_dir.glob(f"*/{RESULTS_FILE}")):
        run_dir = candidate.parent
        if run_dir.is_symlink() or run_dir.name == "published":
            continue
        try:
            run = read_run(run_dir).run
        except ResultsUnreadable:
            continue
        if run.status == "complete" and not run.quick:
            newest.setdefault(run.scenario, []).append(run_dir)
    return [path for name in sorted(newest) for path in newest[name][-per_scenario:]]


def adopt(run_dirs: list[Path], out: Path) -> None:
    """Copy runs into the published folder; the runs given for a scenario replace the
    ones published for it before."""
    runs = out / RUNS_DIR
    runs.mkdir(parents=True, exist_ok=True)
    adopted = {read_run(run_dir).run.scenario for run_dir in run_dirs}
    for existing in runs.glob(f"*/{RESULTS_FILE}"):
        if read_run(existing.parent).run.scenario in adopted:
            shutil.rmtree(existing.parent)
    for run_dir in run_dirs:
        target = runs / run_dir.name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir()
        for name in (RESULTS_FILE, "scenario.toml"):
            if (run_dir / name).exists():
                shutil.copy2(run_dir / name, target / name)


def _ordered(documents: list[RunDocument]) -> list[RunDocument]:
    """In the order of the workload kinds (bench/kinds/), by name within each."""
    order = list(KINDS)
    return sorted(documents, key=lambda d: (order.index(kind_of(d).name), d.run.scenario))


def _by_scenario(
    documents: list[RunDocument],
) -> tuple[list[RunDocument], dict[str, list[RunDocument]]]:
    """The newest run of each scenario (its charts and tables are shown), and the other,
    independent runs of it (the published order is the one they all agree on)."""
    groups: dict[str, list[RunDocument]] = {}
    for document in sorted(documents, key=lambda d: d.run.started_at):
        groups.setdefault(document.run.scenario, []).append(document)
    primary = _ordered([runs[-1] for runs in groups.values()])
    replicates = {name: runs[:-1] for name, runs in groups.items()}
    return primary, replicates


def publish(out: Path) -> Published:
    """Render the published folder from the runs it holds."""
    run_files = sorted((out / RUNS_DIR).glob(f"*/{RESULTS_FILE}"))
    if not run_files:
        raise ResultsUnreadable(
            f"{out / RUNS_DIR}: no runs to publish; adopt some with `bench publish --latest` "
            "or `bench publish RUN_DIR...`"
        )
    documents, replicates = _by_scenario([read_run(path.parent) for path in run_files])
    charts_dir = out / CHARTS_DIR
    if charts_dir.exists():
        shutil.rmtree(charts_dir)
    formats = FORMATS.set(("png",))  # SVGs stay with the runs: `bench report` renders them
    try:
        charts = overview_chart(documents, charts_dir, replicates)
        for document in documents:
            charts += render_charts(document, charts_dir / document.run.scenario)
    finally:
        FORMATS.reset(formats)
    # Claims read runs as plain dicts: exactly what the files hold.
    claims = check_claims(
        {d.run.scenario: [r.to_dict() for r in (*replicates[d.run.scenario], d)] for d in documents}
    )
    report = Report(documents, replicates, claims)
    markdown = out / "README.md"
    markdown.write_text(render_markdown(report))
    page = out / "report.html"
    page.write_text(render_html(report, charts_dir))
    return Published(markdown, page, charts, claims)


@dataclass(frozen=True)
class Report:
    documents: list[RunDocument]  # the newest run of each scenario
    replicates: dict[str, list[RunDocument]]  # scenario -> its other runs
    claims: list[ClaimResult]

    @property
    def every_run(self) -> list[RunDocument]:
        return [r for d in self.documents for r in (*self.replicates[d.run.scenario], d)]

    def ranking(self, document: RunDocument) -> str:
        runs = [*self.replicates[document.run.scenario], document]
        field, at, ranked = rank_runs(runs)
        if not ranked:
            return ""
        better = "higher is better" if field in HIGHER_IS_BETTER else "lower is better"
        where = f" at {document.points[0].label.split('=')[0]} = {at:g}" if at is not None else ""
        agreed = f", the order {len(runs)} independent runs agree on" if len(runs) > 1 else ""
        return (
            f"Ranked on {HEADLINE_LABELS[field]}{where} ({better}{agreed}): {ranking_text(ranked)}."
        )

    def rules_line(self) -> str:
        rules = claims_hash()
        judged_by = _commit(GitState.model_validate(git_commit(PROJECT_DIR)))
        made_at = sorted({_commit(d.environment.git) for d in self.every_run})
        text = (
            f"Verdicts computed from every trial of {len(self.every_run)} runs by the rules in "
            f"`bench/claims.toml` (sha256 {rules[:16]}), judged by the code at commit "
            f"{judged_by}; the runs were made at commit(s) "
            f"{', '.join(made_at)}."
        )
        older = sorted(d.run.id for d in self.every_run if d.run.claims_sha256 != rules)
        if older:
            text += (
                f" The rules changed after runs {', '.join(older)} were made: those runs are "
                "judged by rules written after them."
            )
        return text

    def replicate_warnings(self) -> list[str]:
        """What makes a scenario's runs something other than repeats of the same thing."""
        found = []
        for document in self.documents:
            name = document.run.scenario
            runs = [*self.replicates[name], document]
            commits = {_commit(d.environment.git) for d in runs}
            configs = {str([p.config.to_dict() for p in d.points]) for d in runs}
            if len(commits) > 1:
                found.append(f"{name}: its runs were made at different commits")
            if len(configs) > 1:
                found.append(f"{name}: its runs were made with different settings")
        return found


# Shared pieces ---------------------------------------------------------------------------
def _commit(git: GitState) -> str:
    commit = (git.commit or "unknown")[:12]
    return commit + (" with uncommitted changes" if git.dirty else "")


def _stack(documents: list[RunDocument]) -> str:
    environment = documents[0].environment
    packages = environment.packages
    names = stack_packages()
    parts = [f"Python {environment.python}"]
    parts += [f"{name} {packages[name]}" for name in names if name in packages]
    parts += list(environment.tools.values())
    return ", ".join(parts)


def _machines(documents: list[RunDocument]) -> str:
    return "; ".join(sorted({describe_environment(d.environment.to_dict()) for d in documents}))


def _rate(point: Point) -> str:
    found = figures.throughput(point)
    if found is None:
        return "-"
    return (">= " if found.bound else "") + f"{found.value:,.0f}"


def _per_1000(point: Point, name: str) -> str:
    found = figures.value(point, name)
    return f"{found * 1000:,.1f}" if found is not None else "-"


def _summary_rows(document: RunDocument) -> list[list[str]]:
    push = kind_of(document).counts_deliveries
    rows = []
    for point in document.points:
        summary = point.summary
        wire = figures.value(point, "wire_bytes_per_message")
        if push:
            completeness = figures.completeness(point)
            outcome = f"{completeness.value:.2%}" if completeness else point.status
            outcome += f", {figures.delivery(point).lost:,} lost"
        else:
            faults = figures.faults(point) + summary.unsent
            outcome = f"{faults:,}" if point.status == "ok" else point.status
        rows.append(
            [
                point.label or "-",
                point.pattern,
                _rate(point),
                figures.latency(point, "p50_us").text(),
                figures.latency(point, "p99_us").text(),
                figures.latency(point, "p999_us").text(),
                outcome,
                _per_1000(point, "server_cpu_s_per_1000"),
                _per_1000(point, "generator_cpu_s_per_1000"),
                f"{wire:,.0f}" if wire else "-",
                "yes: " + "; ".join(summary.client_bound_reasons) if summary.client_bound else "no",
            ]
        )
    return rows


def _summary_header(document: RunDocument) -> list[str]:
    words = kind_of(document).words
    return [
        "point",
        "pattern",
        words.rate_column,
        "p50",
        "p99",
        "p99.9",
        words.outcome_column,
        "server CPU ms per 1k",
        "generator CPU ms per 1k",
        words.wire_column,
        "generator-bound",
    ]


def _generator_bound(report: Report) -> list[str]:
    found = []
    for document in report.every_run:
        for point in document.points:
            if figures.client_bound(point):
                where = f" at {point.label}" if point.label else ""
                trials = [t.client_bound_reasons for t in point.trials if t.status == "ok"]
                found.append(
                    f"{document.run.scenario} {point.pattern}{where} (run "
                    f"{document.run.id}): " + "; ".join(merged_reasons(trials))
                )
    return found


def _calibration_lines(report: Report) -> list[str]:
    """Each distinct calibration the runs used (each run's own `bench calibrate`)."""
    lines = []
    seen = set()
    for document in report.every_run:
        calibration = document.calibration or {}  # bench.calibrate's own record
        key = calibration.get("measured_at") or document.run.id
        if key in seen:
            continue
        seen.add(key)
        when = f"calibration of {calibration['measured_at']}: " if calibration else ""
        lines.append(when + calibration_line(document))
        if calibration and describe_latency(calibration):
            lines.append(when + describe_latency(calibration))
    return lines


READING = (
    "Every figure is pooled over all repeats of a point (latency percentiles from the "
    "merged HDR histograms, rates and costs from the totals), with the smallest and "
    "largest repeat as the spread. A percentile is shown only when at least ten samples "
    "lie beyond it (p99 needs 1,000, p99.9 10,000); otherwise n/a with the count. Lost "
    "events, timed-out and unsent requests enter the latency at the time waited for them: "
    "a percentile they reach is a lower bound (>=). A generator-bound point (the load "
    "generator, not the pattern, was the limit) shows its throughput as at least and its "
    "latency as at most the figure, and is never ranked. Ties are judged against each "
    "group's leader; on latency a point with losses never ranks ahead of a complete one. "
    "Open-loop latency runs from the intended send time; push latency from when each "
    "event was due. The measurement rules are in the project README."
)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: Report) -> str:
    documents = report.documents
    runs = report.every_run
    parts = [
        "# Published results",
        "",
        f"Measured on {_machines(runs)}.  ",
        f"Stack: {_stack(documents)}.  ",
        f"Runs: {', '.join(d.run.id for d in runs)} (from {min(d.run.started_at for d in runs)}).",
        "",
        "Generated by `bench publish` from the `results.json` files in [runs/](runs/); "
        "`make publish` regenerates it. The same report, with every chart, is in "
        "[report.html](report.html) (one page with the headline charts, opens offline).",
        "",
        "![Which pattern leads on each question](charts/overview.png)",
        "",
        "## The published claims, checked here",
        "",
        "Each claim from popular guides to these patterns (sources in `bench/claims.toml`), "
        "the rule that judges it (written before the runs), what was measured, and whether "
        "the claim holds *here*: on this machine and this stack, not in general. "
        + report.rules_line(),
        "",
        _md_table(
            ["id", "claim", "rule", "measured here", "verdict"],
            [[c.id, c.claim, c.rule, c.measured, f"**{c.verdict}**"] for c in report.claims],
        ),
        "",
        "## The load generator",
        "",
        *[f"- {line}" for line in _calibration_lines(report)],
        "",
        "Generator-bound points (shown, never ranked; see the README):",
        "",
        *([f"- {line}" for line in _generator_bound(report)] or ["- none"]),
        "",
        *[f"Warning: {line}.  " for line in report.replicate_warnings()],
        "",
    ]
    for document in documents:
        scenario = document.run.scenario
        kind = kind_of(document)
        parts += [f"## {document.run.title}", "", document.run.description.strip(), ""]
        for chart in _headline_charts(document, kind):
            parts += [f"![{chart}](charts/{scenario}/{chart}.png)", ""]
        parts += [
            report.ranking(document),
            "",
            f"Figures of run {document.run.id}:",
            "",
            _md_table(_summary_header(document), _summary_rows(document)),
            "",
            "More: " + ", ".join(f"[{c}](charts/{scenario}/{c}.png)" for c in OTHER_CHARTS),
            "",
        ]
    parts += ["## How to read these", "", READING, ""]
    return "\n".join(parts)


def _headline_charts(document: RunDocument, kind: WorkloadKind) -> tuple[str, ...]:
    charts = kind.headline_charts
    points = document.points
    if points and points[0].config.model == "open":
        charts = (*charts, "coordinated-omission")
    return charts


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


def _links(scenario: str, charts: tuple[str, ...]) -> str:
    """Links to charts kept as files beside the page, relative, so they open offline."""
    links = ", ".join(
        f'<a href="charts/{html.escape(scenario)}/{chart}.png">{chart}</a>' for chart in charts
    )
    return f"<p>More charts: {links}</p>"


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


CLAIM_COLUMNS = ["id", "claim", "rule", "measured here", "source", "verdict"]


def render_html(report: Report, charts_dir: Path) -> str:
    documents = report.documents
    runs = report.every_run
    sections = []
    toc = [
        '<li><a href="#claims">The published claims, checked here</a></li>',
        '<li><a href="#generator">The load generator</a></li>',
    ]
    for document in documents:
        scenario = document.run.scenario
        kind = kind_of(document)
        toc.append(f'<li><a href="#{scenario}">{html.escape(document.run.title)}</a></li>')
        # The headline charts travel inside the page; the others are linked beside it
        # (charts/, in the same folder): every chart embedded made the page over 5 MiB.
        images = "".join(
            _img(charts_dir / scenario / f"{chart}.png", f"{scenario} {chart}")
            for chart in _headline_charts(document, kind)
        ) + _links(scenario, OTHER_CHARTS)
        sections.append(
            f'<section id="{scenario}"><h2>{html.escape(document.run.title)}</h2>'
            f"<p>{html.escape(document.run.description.strip())}</p>"
            f'<p class="meta">run {html.escape(document.run.id)}</p>'
            f"<p>{html.escape(report.ranking(document))}</p>"
            f"{images}{_html_table(_summary_header(document), _summary_rows(document))}"
            "</section>"
        )
    claim_rows = [
        [c.id, c.claim, c.rule, c.measured, " ".join(c.sources), _verdict_html(c.verdict)]
        for c in report.claims
    ]
    calibration = "".join(f"<li>{html.escape(line)}</li>" for line in _calibration_lines(report))
    bound = "".join(f"<li>{html.escape(line)}</li>" for line in _generator_bound(report))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API patterns bench: published results</title><style>{STYLE}</style></head>
<body>
<h1>API patterns bench: published results</h1>
<p class="meta">Measured on {html.escape(_machines(runs))}.<br>
Stack: {html.escape(_stack(documents))}.<br>
Runs: {html.escape(", ".join(d.run.id for d in runs))}.</p>
<nav><ul>{"".join(toc)}</ul></nav>
{_img(charts_dir / "overview.png", "overview: patterns ranked per scenario")}
<section id="claims"><h2>The published claims, checked here</h2>
<p>Each claim from popular guides to these patterns, the rule that judges it (written before
the runs), what was measured, and whether it holds <em>here</em>: on this machine and this
stack, not in general. {html.escape(report.rules_line())}</p>
{_html_table(CLAIM_COLUMNS, claim_rows, raw_last=True)}
</section>
<section id="generator"><h2>The load generator</h2>
<ul>{calibration}</ul>
<p>Generator-bound points (shown, never ranked):</p>
<ul>{bound or "<li>none</li>"}</ul>
</section>
{"".join(sections)}
<p class="meta">{html.escape(READING)} Generated by <code>bench publish</code> from stored
results; nothing in this page was typed in by hand.</p>
</body></html>
"""
