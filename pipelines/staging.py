"""The output's staging folder (``DATA_DIR/.vidshard-tmp``): what a sharding run knows so far, as files.

Workers stage every video's outcome as a file the moment it is known, and every written shard's
summary once the shard file is in place; the launcher reads them back.  So progress can be shown
and an interrupted run resumed by looking at storage alone, on any runner, without asking the
runner for metrics::

    .vidshard-tmp/
      staged/{split}-{shard:05d}-{position:06d}.{attempt}.{size}.example   one encoded Example
      staged/{split}-{shard:05d}-{position:06d}.{attempt}.error.json       one errors.jsonl record
      staged/{split}-{shard:05d}-{position:06d}.{attempt}.quality.json     one quality.jsonl row (audited runs)
      summaries/{split}-{shard:05d}.json                                   one written shard
      manifest.json                                                        what the run was asked
      lock                                                                 the one writer's lock (local outputs)

Every file is written under a temporary name and renamed into place, so a file with one of these
names is complete; an example's name also carries its size, so a copy cut short on a filesystem
without atomic rename is recognised.  ``attempt`` is unique per write, so two attempts at the same
video (a retried bundle) never write into one file.

One run writes an output at a time: :func:`writer_lock` holds an exclusive ``fcntl.flock`` on
``lock`` for the whole run.  The kernel drops the lock when its process ends, however it ends
(``kill -9``, a crash, a lost terminal), so a dead run never leaves a stale lock behind, and a
second run on the same output is refused in one line naming the live one (:func:`live_writer`).
Object stores have no such lock (see docs/reliability.md); there :func:`writer_lock` does nothing.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from vidshard.pipelines import shardio
from vidshard.errors import VidshardError
from vidshard.format.naming import shard_key

STAGED_DIR = "staged"
SUMMARIES_DIR = "summaries"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = "lock"
_EXAMPLE = ".example"
_ERROR = ".error.json"
_QUALITY = ".quality.json"


def _folder(data_dir: str, *parts: str) -> str:
    return FileSystems.join(data_dir, shardio.TMP_DIR, *parts)


def _write_atomically(path: str, data: bytes) -> str:
    tmp = f"{path}.{uuid.uuid4().hex}.part"
    with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        fh.write(data)
    FileSystems.rename([tmp], [path])
    return path


def _place(split: str, shard: int, position: int) -> str:
    return f"{shard_key(split, shard)}-{position:06d}"


def stage_example(data_dir: str, split: str, shard: int, position: int, data: bytes) -> str:
    """Stage one serialized Example; return the staged file's path.

    Examples are staged on storage rather than shuffled, so the shuffle before writing carries only
    these paths: no process (the DirectRunner's controller included, which buffers every shuffled
    element in memory) ever holds more than a few examples at a time.
    """
    name = f"{_place(split, shard, position)}.{uuid.uuid4().hex}.{len(data)}{_EXAMPLE}"
    return _write_atomically(_folder(data_dir, STAGED_DIR, name), data)


def stage_error(data_dir: str, split: str, shard: int, position: int, record: dict[str, str]) -> str:
    """Stage one failed video's ``errors.jsonl`` record; return the staged file's path."""
    name = f"{_place(split, shard, position)}.{uuid.uuid4().hex}{_ERROR}"
    return _write_atomically(_folder(data_dir, STAGED_DIR, name), json.dumps(record, sort_keys=True).encode("utf-8"))


def example_size(path: str) -> int:
    """Bytes of the staged example at ``path``, read from its name (:func:`stage_example` puts them there)."""
    parsed = _parse(path.rsplit("/", 1)[-1])
    if parsed is None or parsed[3] is None:
        raise ValueError(f"{path} is not a staged example")
    return parsed[3]


def stage_quality(data_dir: str, split: str, shard: int, position: int, row: dict[str, Any]) -> str:
    """Stage one audited video's ``quality.jsonl`` row (``--resume`` reuses it with the video's example)."""
    name = f"{_place(split, shard, position)}.{uuid.uuid4().hex}{_QUALITY}"
    return _write_atomically(_folder(data_dir, STAGED_DIR, name), json.dumps(row, sort_keys=True).encode("utf-8"))


def staged_quality(data_dir: str) -> dict[tuple[str, int, int], dict[str, Any]]:
    """``(split, shard, position) -> row`` of every staged quality row (the last written where a video has two)."""
    found = {}
    for path, _ in sorted(_list_staged(data_dir, sizes=False)):
        name = path.rsplit("/", 1)[-1]
        if name.endswith(_QUALITY):
            try:
                split, shard, position = name.split(".", 1)[0].rsplit("-", 2)
                found[(split, int(shard), int(position))] = json.loads(shardio.read_text(path))
            except ValueError:
                continue  # not ours
    return found


@dataclass(frozen=True)
class StagedFile:
    """One complete staged outcome found on storage."""

    split: str
    shard: int
    position: int
    path: str
    is_error: bool


def _parse(name: str) -> tuple[str, int, int, int | None, bool] | None:
    """(split, shard, position, size or None, is_error) of a staged file's name; None for anything else."""
    if name.endswith(_EXAMPLE):
        is_error, stem = False, name[: -len(_EXAMPLE)]
    elif name.endswith(_ERROR):
        is_error, stem = True, name[: -len(_ERROR)]
    else:
        return None  # a temporary .part file, or something that is not ours
    parts = stem.split(".")
    if len(parts) != (2 if is_error else 3):
        return None
    try:
        split, shard, position = parts[0].rsplit("-", 2)
        return split, int(shard), int(position), None if is_error else int(parts[2]), is_error
    except ValueError:
        return None


def _list_staged(data_dir: str, sizes: bool) -> list[tuple[str, int | None]]:
    """(path, size or None) of every file in the staged folder; [] when there is none."""
    folder = _folder(data_dir, STAGED_DIR)
    if shardio.is_local(folder):
        if not os.path.isdir(folder):
            return []
        with os.scandir(folder) as entries:
            return [(entry.path, entry.stat().st_size if sizes else None) for entry in entries]
    found = FileSystems.match([folder.rstrip("/") + "/*"])[0].metadata_list
    return [(meta.path, meta.size_in_bytes) for meta in found]


def count_outcomes(data_dir: str) -> tuple[int, int]:
    """(videos with an outcome, of which failed) staged so far: one cheap listing, names only."""
    done: dict[str, bool] = {}
    for path, _ in _list_staged(data_dir, sizes=False):
        name = path.rsplit("/", 1)[-1]
        if name.endswith(_EXAMPLE):
            done[name.split(".", 1)[0]] = False
        elif name.endswith(_ERROR):
            done.setdefault(name.split(".", 1)[0], True)
    return len(done), sum(done.values())


def staged_outcomes(data_dir: str) -> list[StagedFile]:
    """Every complete staged outcome (an example whose size matches its name, or an error record)."""
    found = []
    for path, size in _list_staged(data_dir, sizes=True):
        parsed = _parse(path.rsplit("/", 1)[-1])
        if parsed is None:
            continue
        split, shard, position, expected, is_error = parsed
        if is_error or size == expected:
            found.append(StagedFile(split, shard, position, path, is_error))
    return sorted(found, key=lambda staged: staged.path)


def remove(paths: list[str]) -> None:
    """Delete staged files (errors of an interrupted run, before they are retried)."""
    if paths:
        FileSystems.delete(paths)


def write_summary(data_dir: str, summary: dict[str, Any]) -> str:
    """Record one written shard (split, shard, file, count, bytes, video_ids, errors, bytes_fetched)."""
    name = f"{shard_key(summary['split'], summary['shard'])}.json"
    return _write_atomically(_folder(data_dir, SUMMARIES_DIR, name), json.dumps(summary, sort_keys=True).encode("utf-8"))


def read_summaries(data_dir: str) -> list[dict[str, Any]]:
    """Every shard summary the pipeline wrote, sorted by (split, shard)."""
    folder = _folder(data_dir, SUMMARIES_DIR)
    paths = [meta.path for meta in FileSystems.match([folder.rstrip("/") + "/*.json"])[0].metadata_list]
    summaries = [json.loads(shardio.read_text(path)) for path in paths]
    return sorted(summaries, key=lambda summary: (summary["split"], summary["shard"]))


def write_manifest(data_dir: str, manifest: dict[str, Any]) -> str:
    """Record what the run was asked (source, plan, settings), before any video is read."""
    return _write_atomically(_folder(data_dir, MANIFEST_FILE), json.dumps(manifest, sort_keys=True, indent=1).encode("utf-8"))


def read_manifest(data_dir: str) -> dict[str, Any] | None:
    """The manifest of the run that staged this folder; None when there is none."""
    path = _folder(data_dir, MANIFEST_FILE)
    return json.loads(shardio.read_text(path)) if FileSystems.exists(path) else None


def remove_summaries(data_dir: str) -> None:
    """Forget the shard summaries of an interrupted run: its shards are written again."""
    shardio.remove_tree(_folder(data_dir, SUMMARIES_DIR))


def holds_run(data_dir: str) -> bool:
    """Whether the staging folder holds anything of a run (a manifest, staged outcomes) besides the lock."""
    return bool(set(shardio.list_top(_folder(data_dir))) - {LOCK_FILE})


#: Lock files this process holds, by real path: [descriptor, nested holds]; :func:`writer_lock` is re-entrant.
_HELD: dict[str, list[int]] = {}


def _lock_path(data_dir: str) -> str:
    return os.path.realpath(os.path.join(data_dir, shardio.TMP_DIR, LOCK_FILE))


def _holder(fd: int) -> str:
    """Who holds the lock, as its file records it: ``pid 123 on host h, since 2024-01-01 12:00:00``."""
    try:
        found = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(found["since"]))
        return f"pid {found['pid']} on host {found['host']}, since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not recorded itself yet"


def live_writer(data_dir: str) -> str | None:
    """The live run that holds ``data_dir``'s lock (as :func:`_holder` words it), or None.

    A lock file that no live process holds (its run ended or crashed) is not a live writer.
    """
    path = _lock_path(data_dir) if shardio.is_local(data_dir) else None
    if path is None or path in _HELD or not os.path.exists(path):
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # removed by a run that just finished
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return _holder(fd)
    finally:
        os.close(fd)  # closing releases the probe's shared lock


def busy_error(data_dir: str, holder: str) -> VidshardError:
    """The refusal of a second writer: names the output and the live run (see :func:`live_writer`)."""
    return VidshardError(f"output {data_dir} is being written by another vidshard run ({holder}); one run writes "
                         "an output at a time: wait for that one to end, or stop it and pass `resume`")


@contextlib.contextmanager
def writer_lock(data_dir: str) -> Iterator[None]:
    """Hold ``data_dir``'s one-writer lock while the block runs; refuse (VidshardError) if a live run holds it.

    Local outputs only (a no-op elsewhere).  Creates the staging folder (and ``data_dir``) if needed;
    on release removes the lock file, and the folders it created if they are still empty (a run
    refused before any work leaves no trace).  Re-entrant in one process.
    """
    path = _lock_path(data_dir) if shardio.is_local(data_dir) else None
    if path is None:
        yield
        return
    if path in _HELD:
        _HELD[path][1] += 1
        try:
            yield
        finally:
            _HELD[path][1] -= 1
        return
    created = [folder for folder in (os.path.dirname(os.path.dirname(path)), os.path.dirname(path))
               if not os.path.isdir(folder)]
    try:
        fd = _acquire(data_dir, path)
    except OSError as exc:
        raise VidshardError(f"cannot write to output {data_dir}: {exc.strerror} ({exc.filename})") from None
    _HELD[path] = [fd, 0]
    try:
        yield
    finally:
        del _HELD[path]
        # Removed before it is released: a run that opened it meanwhile finds it gone and locks a new one.
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                os.remove(path)
            for folder in reversed(created):  # what a run refused before any work created, if still empty
                os.rmdir(folder)
        os.close(fd)  # releases the lock


def _acquire(data_dir: str, path: str) -> int:
    """Open and lock ``path`` exclusively (creating it), record this process in it; return the descriptor."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise busy_error(data_dir, holder) from None
        try:  # a run that just finished may have removed the file it locked: lock the one at the path
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode(), 0)
    return fd
