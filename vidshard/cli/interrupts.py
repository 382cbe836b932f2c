"""Ctrl-C (SIGINT) and SIGTERM in a ``vidshard`` command: one line saying what is kept, and the shell's status.

Click turns ``KeyboardInterrupt`` into ``Aborted!`` and exit status 1, and SIGTERM's default
action ends a process without a word.  While a command runs, :func:`signals_raise` makes
SIGTERM raise :class:`Terminated` (a ``KeyboardInterrupt``) in the main thread like Ctrl-C does,
and the group reports either as :class:`Interrupted`: one line, exit status 130 (SIGINT) or 143
(SIGTERM), as a shell reports a process killed by that signal.  Commands that keep work across
an interrupt (``shard``, ``train``) say what is kept and how ``--resume`` continues it.
"""
from __future__ import annotations

import contextlib
import io
import signal
import sys
import threading
from typing import IO, Iterator

import click


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread while a command runs (see :func:`signals_raise`)."""


def signal_name(exc: KeyboardInterrupt) -> str:
    """``SIGTERM`` for :class:`Terminated`, ``SIGINT`` for any other ``KeyboardInterrupt``."""
    return "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"


def _raise_terminated(_signum: int, _frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """While the block runs in the main thread, SIGINT raises KeyboardInterrupt and SIGTERM :class:`Terminated`.

    SIGINT is set explicitly: a process started with SIGINT ignored (anything a non-interactive
    shell starts with ``&``, such as a CI job) inherits that, and Python then installs no
    KeyboardInterrupt handler, so ``kill -INT`` would do nothing until the pipeline's own handlers
    (:mod:`vidshard.pipelines.interrupt`) take over.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous_term = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)


class Interrupted(click.ClickException):
    """A command stopped by a signal: its one line (no ``Error:`` prefix) and exit status 128 + signal."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.exit_code = 128 + signal.Signals[name].value

    def show(self, file: IO | None = None) -> None:
        click.echo(self.format_message(), err=True, file=file)


def owns_the_process(ctx: click.Context) -> bool:
    """Whether the command runs as this process's program and may end it at once (``os._exit``).

    True when click runs it standalone on streams with file descriptors: the ``vidshard`` console
    script, ``python -m vidshard.cli``, ``python -m vidshard.pipelines.shard``.  False under click's
    ``CliRunner`` (in-memory streams) and for ``main(..., standalone_mode=False)``: a test or a
    program that calls the CLI keeps its process.
    """
    if not getattr(ctx.find_root().command, "standalone", False):
        return False
    try:
        sys.stdout.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False
    return True
