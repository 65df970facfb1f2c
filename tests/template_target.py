"""A module for tests/test_templates.py to start from a template: it reports what it finds
itself to be (its name, arguments, session, CPUs), echoes a line of its standard input
when asked, and exits with the status it is given."""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    report_path, *options = sys.argv[1:]
    print("started", flush=True)  # to its standard output: the log it was given
    report = {
        "name": __name__,
        "argv": sys.argv[1:],
        "pid": os.getpid(),
        "session": os.getsid(0),
        "cpus": sorted(os.sched_getaffinity(0)),
        "unbuffered": os.environ.get("PYTHONUNBUFFERED"),
    }
    if "--read-line" in options:
        report["line"] = sys.stdin.readline().strip()
    with open(report_path, "w") as out:
        json.dump(report, out)
    if "--block" in options:
        sys.stdin.read()  # until its stdin closes, or a signal ends it
    sys.exit(int(options[options.index("--exit") + 1]) if "--exit" in options else 0)


if __name__ == "__main__":
    main()
