"""Soak: does any process keep growing? Resident memory and open file descriptors over
time, per process (server, broker, each generator), for trials long enough to tell."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from bench.charts.style import finish
from bench.results_model import Point, ProcessResources, RunDocument
from bench.soak import MIN_SOAK_S

STYLES = ("-", "--", ":", "-.")


def _long_trials(document: RunDocument) -> list[tuple[Point, ProcessResources]]:
    """Each trial's process timeline, where it spans a soak's length."""
    found = []
    for point in document.points:
        for trial in point.trials:
            timeline = trial.extra.process_resources
            if not timeline:
                continue
            longest = max((s.t_s[-1] for s in timeline.processes.values() if s.t_s), default=0)
            if longest >= MIN_SOAK_S:
                found.append((point, timeline))
    return found


def resources_chart(document: RunDocument, out_dir: Path) -> list[Path]:
    timelines = _long_trials(document)
    if not timelines:
        return []
    figure, (memory, descriptors) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    figure.subplots_adjust(left=0.09, right=0.97, top=0.88, bottom=0.2, hspace=0.12)
    for point, timeline in timelines:
        where = point.pattern_label + (f" {point.label}" if point.label else "")
        for index, (name, series) in enumerate(timeline.processes.items()):
            minutes = [t / 60 for t in series.t_s]
            style = STYLES[index % len(STYLES)]
            label = f"{where}: {name}"
            memory.plot(minutes, [b / 2**20 for b in series.rss_bytes], style, label=label)
            descriptors.plot(minutes, series.open_fds, style, label=label)
    memory.set_ylabel("resident memory (MiB)")
    descriptors.set_ylabel("open file descriptors")
    descriptors.set_xlabel("minutes since the trial's start (warm-up included)")
    for axis in (memory, descriptors):
        axis.grid(True, alpha=0.3)
        axis.set_ylim(bottom=0)
    memory.legend(fontsize=7, loc="lower right")
    figure.suptitle(
        f"{document.run.title}\nDoes any process keep growing? Memory and open "
        "descriptors of every process, sampled through the trial",
        fontsize=10,
    )
    note = "A leak is growth that goes on after the first minutes; `bench run` prints the slopes."
    return finish(figure, document, out_dir, "resources", note)
