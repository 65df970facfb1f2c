"""Processes forked from a pre-imported template instead of started as a fresh interpreter.

Starting `python -m patterns.rest.server` took 0.2 to 0.5 s here, nearly all of it
importing (aiohttp, uvloop, orjson, grpcio...), and every trial starts its servers afresh
(nothing carries over from one trial to the next). A template is a process that has
imported one module and then waits. Asked for a process, it forks; the child takes the
descriptors it is handed as its standard input, output and error, a session of its own,
the place it is told (CPUs, network namespace: bench/resources.py), and runs the module as
`python -m` would (`runpy`, as `__main__`, with the arguments given). It is a fresh process
in everything but its imports, ready in tens of milliseconds. What it shares with its
template, and so with the other children of one run: Python's hash seed and the memory
layout (the repeats of a run share them; two runs do not), and the pages of the shared
libraries already mapped, which its resident memory counts only once it touches them
(8 to 15 MB less peak RSS than a fresh interpreter, by pattern: memory per connection, a
slope, is unaffected).

One template per module, never one for all: a server forked from a template that had
imported every pattern's libraries would carry all of them (their objects, their
threads' absence or presence, their memory), so a server forked from its own module's
template holds what its own imports hold, as it did started fresh.

The children are the template's (only a parent can reap a process): it tells its exit
status over its socket, and the runner follows each child by process id and a pidfd
(`TemplateChild`: poll, wait, signal, as subprocess.Popen does). A child's command line
(what `ps` shows) is the command it stands for. A template lives as long as the process
that started it: it exits when its socket closes, which happens when that process ends,
even by SIGKILL, and its children get SIGTERM from the kernel as it goes
(PR_SET_PDEATHSIG).

Run as `python -m bench.templates MODULE FD` by `ProcessTemplate`; FD is its end of a
SOCK_SEQPACKET socket pair.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1
MESSAGE_BYTES = 65536
READY_TIMEOUT_S = 60.0
ANSWER_TIMEOUT_S = 10.0
STOP_GRACE_S = 2.0
WAIT_STEP_S = 0.05  # how often a wait on a child whose template is gone looks again
PROJECT_DIR = Path(__file__).resolve().parent.parent


class TemplateFailed(Exception):
    """A template could not be started, or stopped answering; the message says why."""


def _die_with_parent(signum: int) -> None:
    import ctypes

    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)


@dataclass(frozen=True)
class Spawn:
    """What a template is asked to start: the module's arguments (after `python -m
    MODULE`), where to run it, and the environment variables to set on top of its own."""

    args: list[str]
    cpus: list[int] | None = None
    netns: str | None = None
    environment: dict[str, str] | None = None


# The runner's side ------------------------------------------------------------------------
class TemplateChild:
    """A process a template forked, followed as subprocess.Popen follows its own: `pid`,
    `poll()`, `wait()`, `send_signal()`, `kill()`, `returncode`, and `stdin` (`stdout`)
    when it was given a pipe. Signals go through a pidfd, so they never reach another
    process that was given the same id after this one was reaped; the pidfd also says
    when the process has ended, whether or not its template is there to tell its status."""

    def __init__(self, template: ProcessTemplate, pid: int, stdin=None, stdout=None) -> None:
        self.template = template
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.returncode: int | None = None
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except (OSError, AttributeError):
            self._pidfd = None  # already gone (the template says so), or no pidfds here

    def poll(self) -> int | None:
        if self.returncode is None:
            code = self.template.exit_code(self.pid)
            if code is None and self.template.dead and self._ended():
                # Its template died without a word: the kernel sent it SIGTERM
                # (PR_SET_PDEATHSIG), and nobody is left who could say otherwise.
                code = -signal.SIGTERM
            if code is not None:
                self.returncode = code
                self._close_pidfd()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """The exit code once the process has ended; subprocess.TimeoutExpired after
        `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise subprocess.TimeoutExpired(f"process {self.pid}", timeout)
            if self.template.dead or self._ended():
                # Ended (its status on its way from the template), or nobody will tell:
                # watch the process itself.
                self._wait_ended(WAIT_STEP_S if remaining is None else min(remaining, WAIT_STEP_S))
            else:
                self.template.wait_for_news(remaining)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, OSError):
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signum)
            else:
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _ended(self) -> bool:
        """Whether the process has ended (its pidfd reads as ready), whoever reaps it."""
        if self._pidfd is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return True
            return False
        readable, _, _ = select.select([self._pidfd], [], [], 0)
        return bool(readable)

    def _wait_ended(self, timeout_s: float) -> None:
        if self._pidfd is None:
            time.sleep(timeout_s)
        else:
            select.select([self._pidfd], [], [], timeout_s)
            if not self.template.dead:
                self.template.wait_for_news(timeout_s)

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def __del__(self) -> None:
        self._close_pidfd()


class ProcessTemplate:
    """One module's template process (see the module's docstring)."""

    def __init__(self, module: str, log_path: Path | None = None) -> None:
        self.module = module
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._socket = ours
        self._lock = threading.Lock()
        self._exits: dict[int, int] = {}
        self.dead = False  # its socket closed, or stopped: it forks nothing more
        log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        # The kernel's signal on the parent's death comes when the *thread* that started
        # the child ends: asked for only from the main thread. Either way the template
        # exits when its socket closes, which it does when this process ends, however.
        in_main_thread = threading.current_thread() is threading.main_thread()
        try:
            # Its own session: a Ctrl-C at the terminal reaches the runner only.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.templates", module, str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=[theirs.fileno()],
                start_new_session=True,
                preexec_fn=(lambda: _die_with_parent(signal.SIGKILL)) if in_main_thread else None,
                env=child_environment(),
                cwd=PROJECT_DIR,
            )
        finally:
            theirs.close()
            if log is not subprocess.DEVNULL:
                log.close()
        self._ready = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until the template has imported its module; TemplateFailed if it cannot."""
        if self._ready:
            return
        answer = self._receive(timeout_s)
        if "ready" not in answer:
            self.stop()
            raise TemplateFailed(f"template of {self.module}: {answer.get('error', answer)}")
        self._ready = True

    def spawn(self, request: Spawn, stdin: int, stdout: int, stderr: int) -> int:
        """Fork a child running the module with these descriptors as its 0, 1 and 2;
        returns its process id. A template that does not answer in time is stopped
        (with whatever it forked): a late answer must never be taken for the next one."""
        self.wait_ready()
        message = json.dumps(request.__dict__).encode()
        with self._lock:
            try:
                socket.send_fds(self._socket, [message], [stdin, stdout, stderr])
            except OSError as exc:
                self.dead = True
                raise TemplateFailed(f"template of {self.module} is gone: {exc}") from None
            try:
                answer = self._receive(ANSWER_TIMEOUT_S)
            except TemplateFailed:
                self.stop()
                raise
        if "pid" not in answer:
            raise TemplateFailed(f"template of {self.module}: {answer.get('error', answer)}")
        return int(answer["pid"])

    def exit_code(self, pid: int) -> int | None:
        """A child's exit code once the template has reported it, else None."""
        self._pump(0)
        return self._exits.get(pid)

    def wait_for_news(self, timeout_s: float | None) -> None:
        """Until the template says something (a child's exit), or `timeout_s`."""
        self._pump(timeout_s)

    def alive(self) -> bool:
        return not self.dead and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM, by pid, then SIGKILL after a grace: its children get SIGTERM from the
        kernel as it dies (their PR_SET_PDEATHSIG)."""
        self.dead = True
        with contextlib.suppress(OSError):
            self._socket.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    # What the template says ----------------------------------------------------------
    def _receive(self, timeout_s: float) -> dict:
        """The next message that is not an exit report (those are filed as they come)."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if self.dead:
                raise TemplateFailed(f"template of {self.module} exited")
            if remaining <= 0:
                raise TemplateFailed(
                    f"template of {self.module} did not answer within {timeout_s:g} s"
                )
            message = self._read(remaining)
            if message is not None and "exited" not in message:
                return message

    def _pump(self, timeout_s: float | None) -> None:
        """File every exit report waiting, waiting up to `timeout_s` for the first."""
        with self._lock:
            first = True
            while self._read(timeout_s if first else 0) is not None:
                first = False

    def _read(self, timeout_s: float | None) -> dict | None:
        """One message (exit reports filed), or None when none came in time or the
        template is gone (then `dead`: its children are followed by their pidfds)."""
        if self.dead:
            return None
        try:
            readable, _, _ = select.select([self._socket], [], [], timeout_s)
            data = self._socket.recv(MESSAGE_BYTES) if readable else None
        except (OSError, ValueError):  # closed
            self.dead = True
            return None
        if data is None:
            return None
        if not data:
            self.dead = True
            return None
        message = json.loads(data)
        if "exited" in message:
            self._exits[int(message["exited"])] = int(message["code"])
        return message


def child_environment() -> dict[str, str]:
    """A template's environment, which its children inherit, and that of a server started
    fresh (so that BENCH_FRESH_PROCESSES=1 changes how, not what): the runner's, output
    unbuffered (a server's log is read while it runs), the project importable, and
    numpy's BLAS on one thread (no thread of it exists at fork; none is ever used)."""
    environment = dict(os.environ)
    environment["PYTHONUNBUFFERED"] = "1"
    environment["OPENBLAS_NUM_THREADS"] = "1"
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(PROJECT_DIR), *filter(None, [environment.get("PYTHONPATH")])]
    )
    return environment


class TemplatePool:
    """The templates of one runner, one per module, started on first use (or ahead of
    it, `prepare`) and stopped together (`close`, also at exit)."""

    def __init__(self, log_dir: Path | None = None) -> None:
        self.log_dir = log_dir
        self._templates: dict[str, ProcessTemplate] = {}

    def template(self, module: str) -> ProcessTemplate:
        template = self._templates.get(module)
        if template is None or not template.alive():
            if template is not None:
                template.stop()  # its socket, and the process if it lingers
            log = self.log_dir / f"template-{module}.log" if self.log_dir else None
            if log is not None:
                log.parent.mkdir(parents=True, exist_ok=True)
            template = self._templates[module] = ProcessTemplate(module, log)
        return template

    def prepare(self, modules: list[str]) -> None:
        """Start these modules' templates together, and wait until each has imported its
        module (one that cannot is started again when it is used, and fails then)."""
        for module in modules:
            self.template(module)
        for module in modules:
            with contextlib.suppress(TemplateFailed):
                self._templates[module].wait_ready()

    def close(self) -> None:
        for template in self._templates.values():
            template.stop()
        self._templates.clear()


# Set to "1" to start every process as a fresh interpreter, as before templates (to compare
# the two: `bench selfcheck` does; or to rule templates out when chasing a problem).
FRESH_PROCESSES_VARIABLE = "BENCH_FRESH_PROCESSES"
_pool: TemplatePool | None = None


def shared_pool() -> TemplatePool | None:
    """This process's templates (made on first use, stopped at exit), or None when
    processes are to start fresh."""
    global _pool
    if os.environ.get(FRESH_PROCESSES_VARIABLE) == "1":
        return None
    if _pool is None:
        import atexit

        _pool = TemplatePool()
        atexit.register(_pool.close)
    return _pool


def python_module(command: list[str]) -> tuple[str, list[str]] | None:
    """(module, arguments) of a `python -m module args...` command run by this
    interpreter, which a template can start; None for any other program."""
    if len(command) >= 3 and command[0] == sys.executable and command[1] == "-m":
        return command[2], command[3:]
    return None


def can_fork_from_template(command: list[str]) -> bool:
    """Whether `command` would start from a template (a Python module, templates on)."""
    return python_module(command) is not None and shared_pool() is not None


def fork_from_template(
    command: list[str],
    cpus: tuple[int, ...] | None,
    netns: str | None,
    fds: tuple[int, int, int],
    stdin=None,
    stdout=None,
) -> TemplateChild:
    """Start `command` (see can_fork_from_template) from its module's template with `fds`
    as its standard input, output and error, on `cpus` and in `netns`. `stdin` and
    `stdout`: the runner's ends of the pipes it gave, as the child's Popen-like
    attributes. Raises TemplateFailed."""
    parsed = python_module(command)
    pool = shared_pool()
    if parsed is None or pool is None:
        raise TemplateFailed(f"{command[0]} is not started from a template")
    module, args = parsed
    template = pool.template(module)
    pid = template.spawn(Spawn(args, list(cpus) if cpus else None, netns), *fds)
    return TemplateChild(template, pid, stdin, stdout)


# The template's side ------------------------------------------------------------------------
def _serve(module: str, channel: socket.socket) -> None:
    """Import `module`, say so, then fork a child for each request until the socket
    closes; report every child's exit."""
    try:
        __import__("common.netns")  # what a child needs to enter its place
        __import__("setproctitle")  # ...and to take its own command line
        __import__(module)
    except BaseException as exc:  # said to the runner, which names the module
        channel.send(json.dumps({"error": f"cannot import {module}: {exc!r}"}).encode())
        return
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the select below
    # No gc.freeze() here, although Python advises it before forking: a frozen child's
    # full collections skip every imported object, and a fresh server's do not (4 ms
    # for grpc's 25,000 objects, up to 35 ms for GraphQL's 44,000 on this host). That
    # would take each framework's collector out of its tail by a different amount. The
    # generators' fork server freezes (bench/forkserver_preloaded.py): every generator
    # gets the same there.
    channel.send(json.dumps({"ready": os.getpid()}).encode())
    while True:
        readable, _, _ = select.select([channel, wake_read], [], [])
        if wake_read in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_read, 4096)
        _report_exits(channel)
        if channel not in readable:
            continue
        message, fds, _, _ = socket.recv_fds(channel, MESSAGE_BYTES, 3)
        if not message:
            return  # the runner is gone: so are we (and our children with us)
        request = Spawn(**json.loads(message))
        try:
            pid = os.fork()
        except OSError as exc:
            channel.send(json.dumps({"error": f"fork failed: {exc}"}).encode())
            continue
        if pid == 0:
            _become_child(module, request, fds, channel, (wake_read, wake_write))
        for fd in fds:
            os.close(fd)
        channel.send(json.dumps({"pid": pid}).encode())


def _report_exits(channel: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        channel.send(json.dumps({"exited": pid, "code": code}).encode())


def _become_child(
    module: str, request: Spawn, fds: list[int], channel: socket.socket, wake: tuple[int, int]
) -> None:
    """In the forked child: become the process `python -m module ARGS` would have been,
    run it, and exit with its status. Never returns."""
    code = 1
    try:
        template_pid = os.getppid()
        os.setsid()  # a session of its own: the runner stops it, by its process id
        _die_with_parent(signal.SIGTERM)
        if os.getppid() != template_pid:  # the template died before we could ask
            os._exit(1)
        # Signals as a fresh interpreter has them (SIGPIPE stays ignored, as Python sets
        # it at start-up), whatever mask the template was started with.
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        channel.close()
        for fd in wake:
            os.close(fd)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        if request.netns:
            from common.netns import enter_netns  # imported by the template already

            enter_netns(request.netns)
        if request.cpus:
            os.sched_setaffinity(0, request.cpus)
        os.environ.update(request.environment or {})
        _retitle([sys.executable, "-m", module, *request.args])
        code = _run_module(module, request.args)
    except BaseException:  # a failure to become the child: said in its log
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _retitle(command: list[str]) -> None:
    """Show the command this child stands for where `ps` and /proc/PID/cmdline look
    (otherwise every child would show its template's command line)."""
    try:
        from setproctitle import setproctitle
    except ImportError:
        return
    setproctitle(" ".join(command))


def _run_module(module: str, args: list[str]) -> int:
    """`python -m module args`, as far as the module can tell; its exit status."""
    import runpy
    import traceback

    sys.argv = [module, *args]
    # The template imported it as itself; run as `__main__` it executes afresh (what it
    # imports stays imported), as `python -m` would, without runpy's warning about it.
    sys.modules.pop(module, None)
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        if exit_.code is None:
            return 0
        if isinstance(exit_.code, int):
            return exit_.code
        print(exit_.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def main() -> None:
    module, fd = sys.argv[1], int(sys.argv[2])
    # Ctrl-C and hang-ups are for the runner; it stops us by pid.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _serve(module, socket.socket(fileno=fd))


if __name__ == "__main__":
    main()
