"""Deterministic shard layout and TFRecord file I/O, through Beam's ``FileSystems``.

Which video lands in which shard, and where in it, is decided here from the plan alone (a seeded
hash of the video id), never from the order in which workers finish; so the same plan writes the
same bytes on any runner with any number of workers.  Files go through
``apache_beam.io.filesystems.FileSystems`` so that an output on ``gs://`` (or any filesystem Beam
knows) works like a local folder, and every file is written under a temporary name first and
renamed into place, so a half-written file never carries a shard's name.
"""
from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
import uuid
from typing import Iterable, Sequence

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.localfilesystem import LocalFileSystem

from vidshard import arrayrecord_io  # imports the array_record package only when it writes
from vidshard.tfrecord_io import frame

#: ``auto`` aims at shards of about this size (TFDS keeps shards between 64 MiB and 1 GiB).
TARGET_SHARD_BYTES = 128 << 20
#: Bytes TFRecord framing adds to every record (length, two masked CRCs).
RECORD_OVERHEAD = 16
#: Hidden folder of the output that holds files being written; never matched by ``{split}-*``.
TMP_DIR = ".vidshard-tmp"

#: Stored bytes per pixel channel, by encoding: a rough estimate that only sizes ``--shards auto``.
#: JPEG at quality 95 keeps about 1/6 of the raw bytes of natural video frames, PNG about 1/2.
_BYTES_PER_VALUE = {"raw": 1.0, "png": 0.5, "jpeg": 1 / 6}
_COMPRESSION_TYPES = {"none": CompressionTypes.UNCOMPRESSED, "gzip": CompressionTypes.GZIP}


def shard_name(split: str, index: int, num_shards: int, compression: str = "none", file_format: str = "tfrecord") -> str:
    """``{split}-SSSSS-of-NNNNN.tfrecord``, plus ``.gz`` when gzip-compressed; ``.array_record`` for ArrayRecord."""
    if file_format == "array_record":
        if compression != "none":
            raise ValueError("ArrayRecord files compress their own chunks; compression must be none")
        suffix = ".array_record"
    else:
        suffix = ".tfrecord.gz" if compression == "gzip" else ".tfrecord"
    return f"{split}-{index:05d}-of-{num_shards:05d}{suffix}"


def file_format_of(name: str) -> str:
    """``array_record`` or ``tfrecord``: the format a shard name (from :func:`shard_name`) stands for."""
    return "array_record" if name.endswith(".array_record") else "tfrecord"


def order_key(seed: int, video_id: str) -> tuple[str, str]:
    """A video's place in its split: SHA-256 of (seed, id), the id itself breaking (impossible) ties.

    Sorting by this interleaves classes and groups in every shard (so a reader that reads shards in
    turn sees a mix) while staying a pure function of the plan.
    """
    digest = hashlib.sha256(f"{seed}\0{video_id}".encode("utf-8")).hexdigest()
    return digest, video_id


def assign_shards(video_ids: Sequence[str], num_shards: int, seed: int) -> dict[str, tuple[int, int]]:
    """``video_id -> (shard index, position in shard)`` for the videos of one split.

    The videos are ordered by :func:`order_key` and cut into ``num_shards`` contiguous runs whose
    lengths differ by at most one (boundaries at ``round(n * i / num_shards)``, as TFDS does).
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be at least 1, got {num_shards}")
    ordered = sorted(video_ids, key=lambda video_id: order_key(seed, video_id))
    total = len(ordered)
    layout: dict[str, tuple[int, int]] = {}
    start = 0
    for shard in range(num_shards):
        end = round(total * (shard + 1) / num_shards)
        for position, video_id in enumerate(ordered[start:end]):
            layout[video_id] = (shard, position)
        start = end
    return layout


def estimate_example_bytes(n_frames: int, height: int, width: int, clips: int, encoding: str) -> int:
    """Rough serialized size of one video's Example, framing included (for ``--shards auto``)."""
    values = clips * n_frames * height * width * 3
    return int(values * _BYTES_PER_VALUE[encoding]) + 64 * clips * n_frames + RECORD_OVERHEAD


def auto_num_shards(num_videos: int, example_bytes: int, target_bytes: int = TARGET_SHARD_BYTES) -> int:
    """Shards for one split: about ``target_bytes`` each, at least 1, never more than its videos."""
    wanted = math.ceil(num_videos * example_bytes / target_bytes)
    return max(1, min(num_videos, wanted))


def is_local(path: str) -> bool:
    """Whether ``path`` is on the local filesystem (not ``gs://`` and the like)."""
    return isinstance(FileSystems.get_filesystem(path), LocalFileSystem)


def list_top(folder: str) -> list[str]:
    """Names directly inside ``folder`` (files and subfolders, hidden ones included); [] if absent.

    On object stores (no real folders) a "subfolder" is the first path part of deeper objects.
    """
    if is_local(folder):
        return sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    prefix = folder.rstrip("/") + "/"
    found = FileSystems.match([prefix + "**"])[0].metadata_list
    return sorted({meta.path[len(prefix):].split("/", 1)[0] for meta in found if meta.path.startswith(prefix)})


def remove_tree(folder: str) -> None:
    """Delete ``folder`` and everything in it (a no-op if it does not exist)."""
    if is_local(folder):
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        return
    found = FileSystems.match([folder.rstrip("/") + "/**"])[0].metadata_list
    if found:
        FileSystems.delete([meta.path for meta in found])


def tmp_path(output: str, name: str) -> str:
    """A unique temporary name for ``name`` inside the output's hidden temp folder.

    Unique per attempt, so a retried bundle never writes into a file another attempt is writing.
    """
    return FileSystems.join(output, TMP_DIR, f"{name}.{uuid.uuid4().hex}.part")


def read_bytes(path: str) -> bytes:
    """The whole content of one (small) file."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        return fh.read()


def write_shard(output: str, name: str, records: Iterable[bytes], compression: str = "none") -> tuple[int, int]:
    """Write ``records`` to ``output/name`` in the format its name says; return (records, bytes on storage).

    TFRecord: the framing is :func:`vidshard.tfrecord_io.frame`, the one the TF-free reader
    checks, so the files are readable by ``tf.data`` and by :mod:`vidshard.numpy_reader` alike.
    ArrayRecord (a name ending in ``.array_record``): :func:`vidshard.arrayrecord_io.write_records`.
    """
    final = FileSystems.join(output, name)
    tmp = tmp_path(output, name)
    if file_format_of(name) == "array_record":
        count = _write_array_record(output, tmp, records)
        FileSystems.rename([tmp], [final])
        return count, file_size(final)
    count = 0
    with FileSystems.create(tmp, compression_type=_COMPRESSION_TYPES[compression]) as fh:
        for record in records:
            fh.write(frame(record))
            count += 1
    FileSystems.rename([tmp], [final])
    return count, file_size(final)


def _write_array_record(output: str, tmp: str, records: Iterable[bytes]) -> int:
    """Write an ArrayRecord file at ``tmp``: directly on a local output, else locally and then copied.

    The ArrayRecord writer (C++) writes to local paths only; object stores get the finished file.
    """
    if is_local(output):
        os.makedirs(os.path.dirname(tmp), exist_ok=True)
        return arrayrecord_io.write_records(tmp, records)
    with tempfile.TemporaryDirectory(prefix="vidshard-") as local:
        local_file = os.path.join(local, "shard.array_record")
        count = arrayrecord_io.write_records(local_file, records)
        with open(local_file, "rb") as src, FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as dst:
            shutil.copyfileobj(src, dst, 8 << 20)
    return count


def write_text(output: str, name: str, text: str) -> str:
    """Write a small text file (``errors.jsonl``, a run summary) atomically; return its path."""
    final = FileSystems.join(output, name)
    tmp = tmp_path(output, name)
    with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        fh.write(text.encode("utf-8"))
    FileSystems.rename([tmp], [final])
    return final


def read_text(path: str) -> str:
    """Read a small text file written by :func:`write_text`."""
    return read_bytes(path).decode("utf-8")


def file_size(path: str) -> int:
    """Size in bytes of one file as stored."""
    return FileSystems.match([path])[0].metadata_list[0].size_in_bytes
