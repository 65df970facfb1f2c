"""What a pattern's registry entry says about it: `patterns/<folder>/entry.py` builds one
`Pattern` per pattern it offers (a variant, GraphQL asking for a few fields say, is
another entry with the same server and driver and fixed options).

Servers, drivers and options are named by "module:attribute" paths and loaded when used,
so listing the registry imports no protocol library.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.drivers.base import Driver
from bench.needs import Requirement
from bench.options import PatternOptions
from bench.resources import ANYWHERE, Place
from bench.serverproc import ServerGroup, ServerProcess
from common.dataset import DatasetSpec
from common.tls import TlsFiles

# The workload kinds' names, as entries and scenario files spell them; what each kind is
# lives in bench/kinds/.
REQUEST_RESPONSE = "request_response"
PUSH = "push"


def load(path: str):
    """The object a "module:attribute" path names."""
    module_name, attribute = path.split(":")
    return getattr(importlib.import_module(module_name), attribute)


# How a pattern whose server side is more than its own process (a broker and a publisher)
# starts it: (pattern, dataset, options, logs folder, trial name, place, tls=...) -> its
# processes, every one of them in that place, serving TLS with the run's certificates
# when `tls` (common/tls.TlsFiles) is given.
Launcher = Callable[..., ServerGroup]


@dataclass(frozen=True)
class Pattern:
    name: str
    label: str  # how charts name it: the pattern and the stack that implements it
    kind: str  # the name of the workload kind it serves (bench/kinds/)
    server_module: str  # run as `python -m <server_module>`
    driver_path: str  # "module:Class"
    color: str  # one fixed colour per pattern, across every chart
    options_path: str | None = None  # "module:Class" of its PatternOptions, if it has any
    fixed_options: dict = field(default_factory=dict)  # what makes a variant a variant
    # A variant with one of its pattern's mechanisms switched off, to show by ablation
    # what that mechanism is worth: says which one.
    ablation: str = ""
    # An option of the scenario's that decides the pattern's latency (a polling interval):
    # rankings on latency say so beside it.
    latency_set_by: str = ""
    launcher_path: str | None = None  # "module:function", a Launcher, for more processes
    # What it guarantees the client: for push, what happens to events sent while a
    # subscriber is away; for request/response, how it reports a request it cannot answer.
    promises: str = ""
    needs: tuple[Requirement, ...] = ()  # beyond the Python packages make installs
    # The Python distributions its server and driver stand on, recorded with their versions
    # in every run's environment.
    packages: tuple[str, ...] = ()
    # "module:object", a loadtools.ToolProbe: how an independent tool (wrk, h2load) sends
    # this pattern's get_user and reads the answer, for `bench calibrate`.
    tool_probe_path: str | None = None

    def variant(self, **changes) -> Pattern:
        """Another entry on this one's server and driver: `changes` say what makes it a
        variant (name, label, colour, fixed options, the mechanism it ablates...). A
        variant is not calibrated on its own unless `changes` give it a tool probe (one
        whose fixed options change the client's work, as MQTT's QoS does)."""
        return replace(self, **{"tool_probe_path": None, **changes})

    def driver_class(self) -> type[Driver]:
        return load(self.driver_path)

    def options_class(self) -> type[PatternOptions]:
        return load(self.options_path) if self.options_path else PatternOptions

    def options(self, settings: dict | None = None) -> PatternOptions:
        """This pattern's options from a scenario's settings; raises pydantic's
        ValidationError for bad ones. A variant's fixed options always win: the scenario
        loader refuses settings that would change them (`fixed_options_overridden`)."""
        return self.options_class().model_validate({**(settings or {}), **self.fixed_options})

    def fixed_options_overridden(self, settings: dict | None) -> dict:
        """The settings that would change what this variant fixes, as {option: value}.
        Writing the fixed value itself (the same type too: true is not 1) changes nothing."""
        return {
            name: value
            for name, value in (settings or {}).items()
            if name in self.fixed_options
            and not (
                type(value) is type(self.fixed_options[name]) and value == self.fixed_options[name]
            )
        }

    def servers(
        self,
        dataset: DatasetSpec,
        options: PatternOptions,
        logs: Path,
        name: str,
        place: Place | None,
        tls: TlsFiles | None = None,
    ) -> ServerGroup:
        """The process(es) this pattern runs, in `place` (None: anywhere), listening where
        the place's clients reach them and, with `tls`, over TLS only; most run one,
        `python -m <server_module>`."""
        if self.launcher_path:
            launch = load(self.launcher_path)
            # A launcher that predates TLS is still called as it was, without it.
            extra = {"tls": tls} if tls is not None else {}
            return launch(self, dataset, options, logs, name, place, **extra)
        from bench.kinds import kind_named  # the kinds import the registry, which imports this

        ready = logs / f".{name}.ready"
        host = (place or ANYWHERE).bind_host
        tls_args = tls.server_args() if tls else []
        process = ServerProcess(
            self.name,
            [*self.server_command(dataset, ready, options), "--host", host, *tls_args],
            logs / f"{name}.log",
            ready,
            place,
            control=kind_named(self.kind).server_takes_control,
        )
        return ServerGroup([process])

    def server_command(
        self, dataset: DatasetSpec, ready_file: Path, options: PatternOptions | None = None
    ) -> list[str]:
        command = [sys.executable, "-m", self.server_module, "--ready-file", str(ready_file)]
        return command + dataset.as_args() + (options or self.options()).server_args()
