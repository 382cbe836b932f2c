"""TFRecord files written without TensorFlow or Beam, for tests and examples that build shards by hand."""
from __future__ import annotations

import gzip
import os
from typing import BinaryIO, Iterable

from vidshard.format.tfrecord import check_compression, frame


def write_records(path: str | os.PathLike, records: Iterable[bytes], compression: str = "none") -> int:
    """Write ``records`` as one TFRecord file (atomically: temp file, then rename); return the count.

    The bytes are deterministic: gzip output carries no file name and a zero timestamp.
    """
    check_compression(compression)
    path = os.fspath(path)
    tmp = path + ".tmp"
    count = 0
    try:
        with open(tmp, "wb") as raw:
            stream: BinaryIO = gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) if compression == "gzip" else raw
            for record in records:
                stream.write(frame(bytes(record)))
                count += 1
            if stream is not raw:
                stream.close()  # writes the gzip trailer; does not close ``raw``
    except BaseException:
        os.remove(tmp)
        raise
    os.replace(tmp, path)
    return count
