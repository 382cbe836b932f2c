"""Open a shard file by the output's file format: TFRecord or ArrayRecord.

The one place that knows both formats, so ``inspect --verify``, ``preview`` and the NumPy reader
read either without caring which: :func:`iter_shard` yields the records of one file in order,
:func:`read_shard_record` one record by its position (random access for ArrayRecord, a scan
for TFRecord).  Both raise :class:`~vidshard.errors.ShardFormatError` naming the file and record.
"""
from __future__ import annotations

import os
from typing import Iterator

from vidshard.errors import ShardFormatError
from vidshard.format import arrayrecord
from vidshard.format.info import DatasetInfo
from vidshard.format.tfrecord import iter_records


def iter_shard(path: str | os.PathLike, info: DatasetInfo, verify: bool = True) -> Iterator[bytes]:
    """Every record of one shard file of the output ``info`` describes, in order.

    ``verify`` checks TFRecord's CRCs; ArrayRecord chunks are always checked (by their hash).
    """
    if info.file_format == "array_record":
        return arrayrecord.iter_records(path)
    return iter_records(path, info.compression, verify=verify)


def read_shard_record(path: str | os.PathLike, info: DatasetInfo, index: int) -> bytes:
    """Record ``index`` (from 0) of one shard file."""
    if info.file_format == "array_record":
        return arrayrecord.read_record(path, index)
    for position, serialized in enumerate(iter_records(path, info.compression)):
        if position == index:
            return serialized
    raise ShardFormatError(f"{os.fspath(path)} ends before record {index}")
