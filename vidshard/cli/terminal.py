"""What the ``vidshard`` command shows on the terminal: its own lines by default, libraries' logs with ``-v``.

Most of the noise is not Python's: TensorFlow's C++ start-up lines (absl, oneDNN, cudart, the
``failed call to cuInit`` error on a machine without a GPU), which ``TF_CPP_MIN_LOG_LEVEL`` does
not hide because TensorFlow prints them before it reads its log settings; OpenCV's and FFmpeg's
decoder warnings; and Beam's DirectRunner worker processes, which log their start-up
(``apitools not found``, ``Logging handler created``) to the terminal they inherit before they
read any pipeline option.  All of them write to file descriptor 2, so by default
:func:`native_output_hidden` points that descriptor at ``os.devnull`` for the command's
duration and gives Python's ``sys.stderr`` (click's ``Error:`` lines, warnings, tracebacks,
progress bars, the log records configured here) a private copy of the terminal.  Python loggers
that only repeat what vidshard reports itself are raised to ERROR.  A video that fails is never
only in a log line: it is counted, and its reason is in ``errors.jsonl``.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from typing import Iterator

#: Loggers quiet by default: Beam's internals, urllib3's ``Retrying`` lines (a request that
#: still fails after its retries ends in an ``Error:`` line or an errors.jsonl entry), TensorFlow's
#: and absl's Python-side notices.
QUIET_LOGGERS = ("apache_beam", "urllib3", "tensorflow", "absl")


class _DropOptionalImportNotice(logging.Filter):
    """Drops Beam's import-time notice that its optional BigQuery client is absent: it needs no action."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("apitools not found")


class _CurrentStderr(logging.StreamHandler):
    """A handler that writes to ``sys.stderr`` as it is when a record comes, not when it was made."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns one; the property wins
        pass


_DROP_NOTICE = _DropOptionalImportNotice()


def configure_logging(verbose: bool) -> None:
    """Warnings and errors in one format; by default without the loggers in :data:`QUIET_LOGGERS`.

    Called by every ``vidshard`` invocation, so a process that runs several (tests) gets the
    last one's choice.
    """
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])  # does nothing once configured
    root = logging.getLogger()
    if verbose:
        root.removeFilter(_DROP_NOTICE)
    else:
        root.addFilter(_DROP_NOTICE)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.ERROR)


def _terminal_fd() -> int | None:
    """The descriptor of this process's own standard error, or None where something else stands in for it."""
    if sys.stderr is not sys.__stderr__ or sys.stderr is None:
        return None  # e.g. click's CliRunner or pytest capturing: nothing native reaches them anyway
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


@contextlib.contextmanager
def native_output_hidden() -> Iterator[None]:
    """While the block runs, what is written to file descriptor 2 goes to ``os.devnull``, except through ``sys.stderr``.

    Child processes started meanwhile (Beam's workers) inherit the hidden descriptor, and keep
    it.  Does nothing where ``sys.stderr`` is not the process's own (a ``CliRunner`` test).
    """
    fd = _terminal_fd()
    if fd != 2:
        yield
        return
    saved = sys.stderr
    saved.flush()
    terminal = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = io.TextIOWrapper(io.FileIO(terminal, "w"), encoding=saved.encoding, errors=saved.errors,
                                  line_buffering=True)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(terminal, 2)
        sys.stderr.close()  # closes ``terminal``; descriptor 2 is the terminal again
        sys.stderr = saved
