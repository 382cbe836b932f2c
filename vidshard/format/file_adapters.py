"""The file formats of shard files, as one table the writer and every reader use (as TFDS's ``file_adapters``).

:data:`FILE_ADAPTERS` maps each ``file_format`` of ``dataset_info.json`` (``vidshard shard
--format``) to its :class:`FileAdapter`: the shard name's suffix, how records are written (framed
into a byte stream, which any filesystem takes, or into a local file by a native writer), and how
they are read back, in order or one by position.  The writer (:mod:`vidshard.pipelines.shardio`),
the layout (:func:`vidshard.format.naming.shard_name`), ``inspect --verify``, ``preview`` and the
readers all go through it, so a format is added here and nowhere else.  Reading raises
:class:`~vidshard.errors.ShardFormatError` naming the file and record.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol

from vidshard.errors import ShardFormatError
from vidshard.format import arrayrecord, tfrecord


@dataclass(frozen=True)
class FileAdapter:
    """One file format: its name, suffix, writer and readers.

    Exactly one of ``frame`` (the bytes of one record in a stream: the writer streams them to any
    filesystem) and ``write_file`` (a native writer of local files: the writer makes the file
    locally and copies it) is set.
    """

    name: str
    #: compression (``none``/``gzip``) -> the shard name's suffix, ValueError for one the format refuses.
    suffix: Callable[[str], str]
    #: (path, compression, verify) -> the file's records in order.
    iter_records: Callable[[str, str, bool], Iterator[bytes]]
    #: (path, compression, index) -> one record by its position.
    read_record: Callable[[str, str, int], bytes]
    frame: Callable[[bytes], bytes] | None = None
    write_file: Callable[[str, Iterable[bytes]], int] | None = None


def _tfrecord_suffix(compression: str) -> str:
    tfrecord.check_compression(compression)
    return ".tfrecord.gz" if compression == "gzip" else ".tfrecord"


def _array_record_suffix(compression: str) -> str:
    if compression != "none":
        raise ValueError("ArrayRecord files compress their own chunks; compression must be none")
    return ".array_record"


def _scan_for(path: str, compression: str, index: int) -> bytes:
    """Record ``index`` of a TFRecord file: a scan, the format has no index."""
    for position, serialized in enumerate(tfrecord.iter_records(path, compression)):
        if position == index:
            return serialized
    raise ShardFormatError(f"{os.fspath(path)} ends before record {index}")


#: Every file format, by its ``file_format`` name; the first is the default.
FILE_ADAPTERS: dict[str, FileAdapter] = {
    "tfrecord": FileAdapter(
        "tfrecord", _tfrecord_suffix,
        iter_records=lambda path, compression, verify: tfrecord.iter_records(path, compression, verify=verify),
        read_record=_scan_for, frame=tfrecord.frame),
    "array_record": FileAdapter(  # chunks are always checked (by their hash); ArrayRecord compresses its own chunks
        "array_record", _array_record_suffix,
        iter_records=lambda path, compression, verify: arrayrecord.iter_records(path),
        read_record=lambda path, compression, index: arrayrecord.read_record(path, index),
        write_file=arrayrecord.write_records),
}
#: The ``file_format`` values, in :data:`FILE_ADAPTERS` order.
FILE_FORMATS = tuple(FILE_ADAPTERS)


def adapter(file_format: str) -> FileAdapter:
    """The :class:`FileAdapter` of ``file_format``; ValueError naming the known ones otherwise."""
    try:
        return FILE_ADAPTERS[file_format]
    except KeyError:
        raise ValueError(f"file_format {file_format!r} is not one of {', '.join(FILE_FORMATS)}") from None


class Output(Protocol):
    """What opening a shard needs of an output's :class:`~vidshard.format.info.DatasetInfo`."""

    file_format: str
    compression: str


def iter_shard(path: str | os.PathLike, info: Output, verify: bool = True) -> Iterator[bytes]:
    """Every record of one shard file of the output ``info`` describes, in order (``verify``: TFRecord's CRCs)."""
    return adapter(info.file_format).iter_records(os.fspath(path), info.compression, verify)


def read_shard_record(path: str | os.PathLike, info: Output, index: int) -> bytes:
    """Record ``index`` (from 0) of one shard file: random access for ArrayRecord, a scan for TFRecord."""
    return adapter(info.file_format).read_record(os.fspath(path), info.compression, index)
