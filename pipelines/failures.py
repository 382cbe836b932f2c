"""A job that the environment stopped (a full disk, an unwritable output, a source gone) in one line.

Beam re-raises a worker's error as the text of another process's traceback; :func:`job_failure`
finds the cause in it and words it with the fix and ``resume``, and
:func:`failures_explained` keeps Beam's own tracebacks of that failure off the terminal.
A bug keeps its traceback.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import re
from typing import Iterator

from vidshard.errors import VidshardError
from vidshard.pipelines import staging


def staged_count(data_dir: str) -> int:
    """Videos whose example is staged in ``data_dir`` (what ``--resume`` reuses); 0 if it cannot be listed."""
    try:
        done, failed = staging.count_outcomes(data_dir)
    except OSError:
        return 0
    return done - failed


#: What to do about an OSError that stopped the job, by errno.
_FIXES = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space (or raise the quota)",
          errno.EROFS: "make it writable", errno.EACCES: "make it writable", errno.EPERM: "make it writable"}


#: How a worker's exception reads in the text Beam raises (a traceback of another process, for
#: multi_processing and remote runners): the kind of error and its message.
_UNREACHABLE = re.compile(r"SourceUnreachableError: ([^\n]+)")


_OS_ERROR = re.compile(r"\[Errno (\d+)\] ([^:\n\[\]]+)(?:: '([^'\n]+)')?")


def _exception_text(exc: BaseException) -> str:
    """The messages of ``exc`` and of every exception it was raised from or during."""
    texts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        texts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(texts)


def job_failure(exc: BaseException, data_dir: str, total: int) -> VidshardError | None:
    """One line for a job that the environment stopped (a full disk, an unwritable output, a source that
    stopped answering), naming the cause and ``resume``; None for anything else (a bug keeps its traceback)."""
    text = _exception_text(exc)
    unreachable = _UNREACHABLE.search(text)
    found = _OS_ERROR.search(text)
    if unreachable:
        reason = re.sub(r" \[while running [^\]]*\]", "", unreachable.group(1)).strip()
        cause, fix = f"the source stopped answering ({reason})", "once it answers again"
    elif found:
        code, message, path = int(found.group(1)), found.group(2).strip(), found.group(3)
        cause = f"{message} (errno {code}{', ' + path if path else ''})"
        fix = _FIXES.get(code, "fix that") + ", then"
    else:
        return None
    return VidshardError(f"the job stopped: {cause}; {staged_count(data_dir)} of {total} videos are staged in "
                         f"{data_dir} and nothing is marked complete: {fix} rerun the same command with `resume`")


class _ExplainedFailures(logging.Filter):
    """Drops Beam's log records (with their tracebacks) of a failure that :func:`job_failure` words in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("apache_beam"):
            return True
        text = record.getMessage() + (f"\n{_exception_text(record.exc_info[1])}" if record.exc_info else "")
        return not (_UNREACHABLE.search(text) or _OS_ERROR.search(text))


@contextlib.contextmanager
def failures_explained(data_dir: str, total: int) -> Iterator[None]:
    """Turn a failure of the environment in the block into :func:`job_failure`'s one line, and only that."""
    quiet, handlers = _ExplainedFailures(), list(logging.getLogger().handlers)
    for handler in handlers:  # Beam logs a failing DoFn's traceback at ERROR before it re-raises
        handler.addFilter(quiet)
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - Beam re-raises workers' errors as RuntimeError and others
        failure = job_failure(exc, data_dir, total)
        if failure is None:
            raise
        raise failure from None
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)
