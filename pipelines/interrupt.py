"""Ctrl-C (SIGINT) and SIGTERM while a pipeline runs: stop the workers, keep what is staged, exit with one line.

Beam's DirectRunner does not stop quietly when ``KeyboardInterrupt`` is raised in the middle of
a job: in process (``in_memory``) the interpreter's shutdown meets the runner's threads and
aborts natively (``terminate called without an active exception``, exit status 134); with
``multi_processing`` every worker process and the launcher's gRPC threads print a traceback;
with one worker the interrupt becomes a ``RuntimeError`` inside the bundle.  Nothing a
pipeline leaves half done needs cleaning up here, because every staged file is renamed into
place whole (:mod:`vidshard.pipelines.staging`) and ``--resume`` ignores the rest.  So while
:func:`exit_on_signals` is active a signal is not turned into an exception at all: the handler
stops this process's child processes (the runner's workers, however deep), writes the line
that ``report`` makes, and ends the process at once with ``os._exit(128 + signal)``, the
status a shell gives a process killed by that signal (130 for SIGINT, 143 for SIGTERM).
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Callable, Iterator, NoReturn

import psutil

#: The signals handled: Ctrl-C in a terminal, and what ``kill``, systemd, Kubernetes and batch
#: schedulers send first.
SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Seconds the workers get to end after SIGTERM before they are killed (DirectRunner workers wait out
#: their gRPC streams instead of ending; nothing they hold needs more: staged files are renamed whole).
WORKER_GRACE_SECONDS = 1.0


def stop_child_processes(grace: float = WORKER_GRACE_SECONDS) -> None:
    """Terminate every descendant of this process, and kill those still running after ``grace`` seconds."""
    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=grace)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(alive, timeout=grace)


def exit_with_line(line: str, status: int) -> NoReturn:
    """Write ``line`` to stderr and end the process with ``status`` at once, without the interpreter's teardown.

    After a pipeline was stopped or failed, the runner's threads may still be alive, and the
    teardown then aborts natively (``FATAL: exception not rethrown``, status 134).
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(Exception):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    os._exit(status)


@contextlib.contextmanager
def exit_on_signals(report: Callable[[str], str], before_exit: Callable[[], None] = lambda: None) -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM end the process with ``report(signal name)`` on stderr.

    ``before_exit`` runs after the workers are stopped and before the line is written (the
    progress bar closes its line there).  A second signal while the first is handled is
    ignored.  Outside the main thread (where Python cannot set handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, _frame: object) -> None:
        for number in SIGNALS:
            signal.signal(number, signal.SIG_IGN)
        # The runner's threads fail as their workers go (gRPC streams break): nothing of theirs is news.
        threading.excepthook = lambda _args: None
        logging.disable(logging.CRITICAL)
        stop_child_processes()
        before_exit()
        exit_with_line(report(signal.Signals(signum).name), 128 + signum)

    previous = {number: signal.signal(number, handle) for number in SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
