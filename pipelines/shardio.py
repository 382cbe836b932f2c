"""Output file I/O through Beam's ``FileSystems``: shard files, small text files, the temp folder.

The layout policy (names, which video goes where) is :mod:`vidshard.format.naming`.  Files go through
``apache_beam.io.filesystems.FileSystems`` so that an output on ``gs://`` (or any filesystem Beam
knows) works like a local folder, and every file is written under a temporary name first and
renamed into place, so a half-written file never carries a shard's name.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from typing import Iterable

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.localfilesystem import LocalFileSystem

from vidshard.format.file_adapters import FileAdapter, adapter

#: Hidden folder of the output that holds files being written; never matched by ``{split}-*``.
TMP_DIR = ".vidshard-tmp"
_COMPRESSION_TYPES = {"none": CompressionTypes.UNCOMPRESSED, "gzip": CompressionTypes.GZIP}


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


def tmp_path(data_dir: str, name: str) -> str:
    """A unique temporary name for ``name`` inside the output's hidden temp folder.

    Unique per attempt, so a retried bundle never writes into a file another attempt is writing.
    """
    return FileSystems.join(data_dir, TMP_DIR, f"{name}.{uuid.uuid4().hex}.part")


def read_bytes(path: str) -> bytes:
    """The whole content of one (small) file."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        return fh.read()


def write_shard(data_dir: str, name: str, records: Iterable[bytes], compression: str = "none",
                file_format: str = "tfrecord") -> tuple[int, int]:
    """Write ``records`` to ``output/name`` in ``file_format``; return (records, bytes on storage).

    A format that frames records into a stream (TFRecord: :func:`vidshard.format.tfrecord.frame`,
    the framing the TF-free reader checks, so tf.data and :mod:`vidshard.readers.numpy_reader` read
    the files alike) is streamed through Beam's FileSystems; one written by a native writer of
    local files (ArrayRecord) is written locally and copied (see :func:`_write_local_file`).
    """
    final = FileSystems.join(data_dir, name)
    tmp = tmp_path(data_dir, name)
    how = adapter(file_format)
    if how.write_file is not None:
        count = _write_local_file(how, data_dir, tmp, records)
        FileSystems.rename([tmp], [final])
        return count, file_size(final)
    count = 0
    records = iter(records)
    first = next(records, None)
    if first is None and compression == "none":
        _create_empty(tmp)
    else:
        with FileSystems.create(tmp, compression_type=_COMPRESSION_TYPES[compression]) as fh:
            for record in ([] if first is None else [first]):
                fh.write(how.frame(record))
                count += 1
            for record in records:
                fh.write(how.frame(record))
                count += 1
    FileSystems.rename([tmp], [final])
    return count, file_size(final)


def _write_local_file(how: FileAdapter, data_dir: str, tmp: str, records: Iterable[bytes]) -> int:
    """Write a file with the format's native writer at ``tmp``: directly on a local output, else locally, then copied.

    Native writers (ArrayRecord's C++ one) write to local paths only; object stores get the finished file.
    """
    if is_local(data_dir):
        os.makedirs(os.path.dirname(tmp), exist_ok=True)
        return how.write_file(tmp, records)
    with tempfile.TemporaryDirectory(prefix="vidshard-") as local:
        local_file = os.path.join(local, "shard" + how.suffix("none"))
        count = how.write_file(local_file, records)
        with open(local_file, "rb") as src, FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as dst:
            shutil.copyfileobj(src, dst, 8 << 20)
    return count


def write_text(data_dir: str, name: str, text: str) -> str:
    """Write a small text file (``errors.jsonl``, a run summary) atomically; return its path."""
    final = FileSystems.join(data_dir, name)
    tmp = tmp_path(data_dir, name)
    if not text:
        _create_empty(tmp)
    else:
        with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
            fh.write(text.encode("utf-8"))
    FileSystems.rename([tmp], [final])
    return final


def _create_empty(path: str) -> None:
    """Write an empty file (an empty shard, an empty errors.jsonl).

    Beam's S3 writer cannot: it always makes a multipart upload, and S3 refuses to complete one
    without parts (MalformedXML).  There, the object is put directly with the boto3 client Beam's
    S3 filesystem holds, built from the same pipeline options.
    """
    filesystem = FileSystems.get_filesystem(path)
    if filesystem.scheme() != "s3":
        with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED):
            pass
        return
    from apache_beam.io.aws import s3io

    bucket, key = s3io.parse_s3_path(path)
    s3io.S3IO(options=filesystem._options).client.client.put_object(Bucket=bucket, Key=key, Body=b"")


def read_text(path: str) -> str:
    """Read a small text file written by :func:`write_text`."""
    return read_bytes(path).decode("utf-8")


def file_size(path: str) -> int:
    """Size in bytes of one file as stored."""
    return FileSystems.match([path])[0].metadata_list[0].size_in_bytes
