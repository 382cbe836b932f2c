"""The output folder before a job: refused unless it is safe to write, emptied for ``--overwrite``.

A run may only write an output that no live run writes, that does not overlap a local source,
and that is empty, an interrupted run (``--resume``) or, with ``--overwrite``, recognisably a
vidshard output: any other folder is refused with what it holds and nothing is deleted.
"""
from __future__ import annotations

import errno
import os
import shutil
import urllib.parse
from typing import Sequence

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from vidshard.errors import VidshardError
from vidshard.format.info import INFO_FILE
from vidshard.pipelines import dataflow, shardio, staging
from vidshard.sources import check_output_location


def _local_path(uri: str) -> str | None:
    """The absolute real path of a local source or output, None for URLs and remote filesystems."""
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme and len(scheme) > 1 and scheme != "file":  # one letter is a Windows drive
        return None
    return os.path.realpath(os.path.expanduser(uri[len("file://"):] if scheme == "file" else uri))


def _within(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def nearest_folder(path: str) -> str:
    """``path`` itself if it is a folder, else its nearest existing ancestor (where it would be created)."""
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _shown(names: Sequence[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_output(source: str, data_dir: str, overwrite: bool, resume: bool = False,
                 beam_args: Sequence[str] = ()) -> bool:
    """Refuse an output that is busy, unwritable, overlaps a local source, or is not empty without ``--overwrite``.

    Output inside a source folder would be listed as part of the source on the next run; a source
    inside the output would be deleted by ``--overwrite``.  ``overwrite`` replaces only what is
    recognisably a vidshard output (its ``dataset_info.json`` or staging folder): any other folder
    is refused with what it holds, and nothing is deleted.  An output that a live run is writing is
    refused, naming that run (:func:`vidshard.pipelines.staging.live_writer`).  With ``resume`` the output must
    be absent, empty (nothing to resume: the run starts from zero) or hold an interrupted run.
    Returns whether it holds an interrupted run (a staging folder and no ``dataset_info.json``).
    A Dataflow dry run (``beam_args``) writes nothing there, so the output is not even listed.
    """
    if dataflow.is_dry_run(beam_args):
        dataflow.check_dry_run_output(overwrite, resume)
        return False
    if resume and overwrite:
        raise VidshardError("`resume` keeps what an interrupted run staged, `overwrite` deletes it: pass one of them")
    check_output_location(source, data_dir)  # object storage: reachable, and not overlapping the source
    out_path, source_path = _local_path(data_dir), _local_path(source)
    if out_path and source_path:
        if os.path.isdir(source_path) and _within(out_path, source_path):
            raise VidshardError(f"output {data_dir} is inside the source folder {source}; choose another folder")
        if _within(source_path, out_path):
            raise VidshardError(f"source {source} is inside the output {data_dir}; choose another folder")
    if out_path and os.path.exists(out_path) and not os.path.isdir(out_path):
        raise VidshardError(f"output {data_dir} exists and is not a folder")
    if out_path and not os.access(nearest_folder(out_path), os.W_OK | os.X_OK):
        where = nearest_folder(out_path)
        place = "" if where == out_path else f" (it would be created in {where})"
        raise VidshardError(f"output {data_dir} is not writable{place}: "
                            f"{os.strerror(errno.EROFS if _read_only(where) else errno.EACCES)}")
    try:
        FileSystems.get_filesystem(data_dir)
    except ValueError:
        raise VidshardError(f"output {data_dir}: Beam has no filesystem for this scheme here (a local path, or "
                            "gs:// with apache-beam[gcp], s3:// with apache-beam[aws], ...)") from None
    holder = staging.live_writer(data_dir)
    if holder is not None:
        raise staging.busy_error(data_dir, holder)
    try:
        existing = shardio.list_top(data_dir)
    except BeamIOError as exc:
        raise VidshardError(f"cannot list output {data_dir}: {exc}") from None
    ours = INFO_FILE in existing or shardio.TMP_DIR in existing
    interrupted = shardio.TMP_DIR in existing and INFO_FILE not in existing
    if overwrite and existing and not ours:
        raise VidshardError(f"output {data_dir} is not a vidshard output (it has no {INFO_FILE} and no "
                            f"{shardio.TMP_DIR}): it holds {_shown(existing)}; `overwrite` replaces only vidshard "
                            "outputs, so nothing was deleted: choose a new or empty folder")
    if resume and existing and not interrupted:
        what = "a finished vidshard output" if INFO_FILE in existing else \
            f"files but no interrupted vidshard run ({shardio.TMP_DIR})"
        raise VidshardError(f"output {data_dir} holds {what}: nothing to resume; pass `overwrite` to replace it")
    if existing and not overwrite and not resume:
        complete = INFO_FILE in existing
        what = "a finished vidshard output" if complete else "files (an unfinished run has no dataset_info.json)"
        hint = "`resume` to finish it or `overwrite` to replace it" if interrupted else "`overwrite` to replace it"
        raise VidshardError(f"output {data_dir} already holds {what}; pass {hint}")
    return interrupted


def _read_only(folder: str) -> bool:
    """Whether ``folder`` is on a file system mounted read-only."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def clear_output(data_dir: str) -> None:
    """Empty a vidshard output (after ``--overwrite``, a successful plan and :func:`check_output`).

    The staging folder's lock stays: the run that clears the output holds it
    (:func:`vidshard.pipelines.staging.writer_lock`).
    """
    names = shardio.list_top(data_dir)
    if not shardio.is_local(data_dir):
        shardio.remove_tree(data_dir)
        return
    if INFO_FILE not in names and shardio.TMP_DIR not in names and names:
        raise VidshardError(f"output {data_dir} is not a vidshard output; nothing was deleted")  # checked before
    for name in names:
        path = os.path.join(data_dir, name)
        if name == shardio.TMP_DIR:
            for inner in os.listdir(path):
                if inner != staging.LOCK_FILE:
                    _remove_path(os.path.join(path, inner))
        else:
            _remove_path(path)


def _remove_path(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)
