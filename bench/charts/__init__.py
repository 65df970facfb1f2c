"""Charts of a run, rendered from its results.json alone (PNG and SVG, matplotlib).

Request/response runs get throughput, latency, its distribution, cost and bytes per
exchange; push runs get publish-to-receive latency, delivery completeness, the latency
distribution, cost and bytes per delivered event (and, over a path with outages, the time
to notice a dead path and to come back); cold-start runs the time to a first answer or
event and to a reconnect's (in ms and round trips), its distribution, cost and bytes per
cold start; soaks (trials of minutes) memory and open descriptors over time. The overview
ranks patterns across runs.
"""

from __future__ import annotations

from pathlib import Path

from bench.charts.cold_start import cold_start_chart
from bench.charts.completeness import completeness_chart
from bench.charts.cost import cost_chart
from bench.charts.distribution import distribution_chart
from bench.charts.omission import omission_chart
from bench.charts.outages import dead_path_chart
from bench.charts.overview import overview_chart
from bench.charts.rates import latency_chart, throughput_chart
from bench.charts.resources import resources_chart
from bench.charts.style import color_of
from bench.charts.wire import wire_chart
from bench.kinds import kind_of
from bench.results_model import RunDocument, as_run

CHART_DIR = "charts"
# Each chart by the name of the file it writes; a run's kind says which it gets.
CHARTS = {
    "throughput": throughput_chart,
    "latency": latency_chart,
    "coordinated-omission": omission_chart,
    "completeness": completeness_chart,
    "latency-distribution": distribution_chart,
    "cost": cost_chart,
    "wire-bytes": wire_chart,
    "dead-paths": dead_path_chart,  # push over a path with outages; nothing otherwise
    "cold-start": cold_start_chart,
}

__all__ = ["CHART_DIR", "color_of", "overview_chart", "render_charts", "render_run"]


def render_run(document: RunDocument | dict, run_dir: Path) -> list[Path]:
    """Write every chart of a run into `<run_dir>/charts/`; returns the files written."""
    return render_charts(document, run_dir / CHART_DIR)


def render_charts(document: RunDocument | dict, out_dir: Path) -> list[Path]:
    """Write every chart of a run into `out_dir`; returns the files written."""
    document = as_run(document)
    if not document.points:
        return []
    charts = [CHARTS[name] for name in kind_of(document).charts]
    charts.append(resources_chart)  # only where trials were long enough: soaks
    return [path for chart in charts for path in chart(document, out_dir)]
