"""TFRecord framing, read without TensorFlow or Beam (the shard writer frames records with :func:`frame`).

A TFRecord file is a sequence of records, each framed as::

    uint64 length (little endian) | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)

with ``masked_crc32c(x) = ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2**32)``; a ``gzip`` file is
that byte stream gzip-compressed as a whole.

Why not ``apache_beam.io.tfrecordio._TFRecordUtil``: its ``read_record``/``write_record`` do the same
framing, but importing Beam costs about 0.9 s and hundreds of MiB per process (every PyTorch
``DataLoader`` worker would pay it), it is private API, its errors are bare ``ValueError``s that
name neither the file nor the record, and the GPU machine has no Beam at all.  The framing is a
few lines of ``struct``; the CRC itself comes from ``google-crc32c`` (C, already a dependency of
Beam's TFRecord sink), not hand-written.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from typing import BinaryIO, Iterator

import google_crc32c

from vidshard.errors import ShardFormatError
from vidshard.format import storage

COMPRESSIONS = ("none", "gzip")
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data: bytes) -> int:
    """The CRC32C of ``data``, masked as TFRecord stores it."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """One record with its TFRecord framing: length, masked CRC of the length, data, masked CRC of the data."""
    length = struct.pack("<Q", len(data))
    return length + _FOOTER.pack(masked_crc32c(length)) + data + _FOOTER.pack(masked_crc32c(data))


def check_compression(compression: str) -> None:
    """Raise ValueError for a compression TFRecord files here do not use."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {compression!r}; expected one of {', '.join(COMPRESSIONS)}")


def iter_records(path: str | os.PathLike, compression: str = "none", verify: bool = True) -> Iterator[bytes]:
    """Yield the payload of every record of one TFRecord file, in order.

    With ``verify`` (the default) both CRCs of every record are checked.  A corrupted or truncated
    file raises :class:`ShardFormatError` that names the file, the record (counting from 0) and its
    byte offset in the uncompressed stream; records before it have been yielded.  Without
    ``verify`` only truncation is detected.
    """
    check_compression(compression)
    path = os.fspath(path)
    with storage.open_read(path) as raw:  # a local file, or an object read by ranged GETs (streaming)
        # Both streams return short reads only at the end of the data, which is how truncation shows.
        stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if compression == "gzip" else raw
        # Known for uncompressed files: a length beyond the end is truncation, not a huge read.
        size = raw.seek(0, os.SEEK_END) if compression == "none" else None
        raw.seek(0)
        index, offset = 0, 0

        def fail(reason: str) -> ShardFormatError:
            return ShardFormatError(f"{path}: record {index} (byte {offset}): {reason}")

        try:
            while True:
                header = stream.read(_HEADER.size)
                if not header:
                    return
                if len(header) < _HEADER.size:
                    raise fail(f"truncated: file ends {len(header)} bytes into a {_HEADER.size}-byte record header")
                length, length_crc = _HEADER.unpack(header)
                if verify and masked_crc32c(header[:8]) != length_crc:
                    raise fail("length CRC mismatch: the file is corrupted or not a TFRecord file")
                if size is not None and offset + _HEADER.size + length + _FOOTER.size > size:
                    raise fail(f"truncated: record needs {length + _FOOTER.size} bytes after its header, "
                               f"file has {size - offset - _HEADER.size}")
                data = stream.read(length)
                footer = stream.read(_FOOTER.size)
                if len(data) + len(footer) < length + _FOOTER.size:
                    raise fail(f"truncated: record needs {length + _FOOTER.size} bytes after its header, "
                               f"file has {len(data) + len(footer)}")
                if verify and masked_crc32c(data) != _FOOTER.unpack(footer)[0]:
                    raise fail("data CRC mismatch: the file is corrupted")
                yield data
                index += 1
                offset += _HEADER.size + length + _FOOTER.size
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise fail(f"gzip stream is damaged or truncated: {exc}") from None
