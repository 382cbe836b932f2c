"""ArrayRecord shard files, through the ``array_record`` package (optional extra: ``vidshard[grain]``).

An ArrayRecord file stores records in Riegeli chunks with an index in its footer, so any record
is read by its number without reading the ones before it: what an exact global shuffle and a
mid-epoch resume need (TFRecord is read front to back).  Files are written with
``group_size:1`` (one record per chunk: reading a record decompresses only that record, as Grain
requires for good performance) and ArrayRecord's default chunk compression (zstd level 3); every
chunk carries a hash that reading checks, so a damaged file is an error, never wrong bytes.

The ``array_record`` C++ extension is imported when a function here is called, never when
vidshard is, so TFRecord users do not need it.
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Iterator

from vidshard.errors import ShardFormatError
from vidshard.format import storage

#: Writer options: one record per chunk (random access reads one record, not a group).
WRITER_OPTIONS = "group_size:1"
#: Reader options.  ``max_parallelism:0``: no reads on ArrayRecord's own C++ thread pool, which a
#: forked process (a ``DataLoader`` worker) would inherit without its threads; reading in the
#: calling thread was as fast here.  Random access also reads no further ahead than the record.
_SEQUENTIAL_OPTIONS = "max_parallelism:0"
_RANDOM_ACCESS_OPTIONS = "readahead_buffer_size:0,max_parallelism:0"
#: Records fetched per call when reading a whole file in order.
_READ_BATCH = 64


def _module() -> Any:
    try:
        from array_record.python import array_record_module
    except ImportError as exc:
        raise ShardFormatError("ArrayRecord shards need the array_record package: pip install 'vidshard[grain]'") from exc
    return array_record_module


def write_records(path: str | os.PathLike, records: Iterable[bytes]) -> int:
    """Write ``records`` as one ArrayRecord file at ``path`` (a local path); return the count.

    The bytes are deterministic: the same records give the same file.
    """
    writer = _module().ArrayRecordWriter(os.fspath(path), WRITER_OPTIONS)
    count = 0
    try:
        for record in records:
            writer.write(bytes(record))
            count += 1
    finally:
        writer.close()
    return count


def use_gcs_emulator() -> None:
    """Point ArrayRecord's GCS client at the emulator the Python clients use, if there is one.

    ArrayRecord reads ``gs://`` with google-cloud-cpp, which finds an emulator by
    ``CLOUD_STORAGE_EMULATOR_ENDPOINT``; google-cloud-storage and Beam find it by
    ``STORAGE_EMULATOR_HOST``.  One setting serves both (set in the environment, so forked and
    spawned Grain and DataLoader workers inherit it).  Without an emulator it changes nothing:
    Google's default credentials, as everywhere else.
    """
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator and not os.environ.get("CLOUD_STORAGE_EMULATOR_ENDPOINT"):
        os.environ["CLOUD_STORAGE_EMULATOR_ENDPOINT"] = emulator if "://" in emulator else f"http://{emulator}"


def open_reader(path: str | os.PathLike, random_access: bool = False) -> Any:
    """An open ``ArrayRecordReader`` of a local file or a ``gs://`` object (ArrayRecord's own GCS client);
    ``s3://``, or a missing, empty, truncated or foreign file, raises ShardFormatError."""
    path = os.fspath(path)
    scheme = storage.scheme_of(path)
    if scheme == "gs":
        use_gcs_emulator()
    elif storage.is_remote(path):
        raise ShardFormatError(f"{path}: ArrayRecord's reader (C++) opens local files and gs:// objects only (its "
                               f"one remote client is Google Cloud Storage's), not {scheme}://; copy the output to a "
                               "local disk or gs://, or shard with `file_format` tfrecord to read it in place")
    elif not os.path.isfile(path):
        raise ShardFormatError(f"{path}: no such file")
    try:
        reader = _module().ArrayRecordReader(path, _RANDOM_ACCESS_OPTIONS if random_access else _SEQUENTIAL_OPTIONS)
    except RuntimeError as exc:  # Riegeli: a damaged footer or index
        raise ShardFormatError(f"{path}: not a readable ArrayRecord file: {exc}") from None
    if not reader.ok():
        try:
            reader.close()  # reports the reason the reader failed
        except RuntimeError as exc:
            raise ShardFormatError(f"{path}: not a readable ArrayRecord file: {exc}") from None
        raise ShardFormatError(f"{path}: not a readable ArrayRecord file (truncated, or another format)")
    return reader


def num_records(path: str | os.PathLike) -> int:
    """Records in one ArrayRecord file, from its footer (no record is read)."""
    reader = open_reader(path)
    try:
        return reader.num_records()
    finally:
        reader.close()


def iter_records(path: str | os.PathLike) -> Iterator[bytes]:
    """Yield every record of one ArrayRecord file in order; a damaged chunk raises ShardFormatError.

    The error names the file and the record that failed to read; the records before it have
    been yielded.
    """
    path = os.fspath(path)
    reader = open_reader(path)
    try:
        total = reader.num_records()
        for start in range(0, total, _READ_BATCH):
            end = min(start + _READ_BATCH, total)
            try:
                batch = reader.read(start, end)
            except RuntimeError:  # Riegeli: chunk hash mismatch, truncated chunk, ...
                batch = None
            if batch is not None:
                yield from batch
                continue
            for index in range(start, end):  # find the record that fails, yielding the good ones before it
                try:
                    record = reader.read([index])[0]
                except RuntimeError as exc:
                    raise ShardFormatError(f"{path}: record {index}: {exc}") from None
                yield record
    finally:
        reader.close()


def read_record(path: str | os.PathLike, index: int) -> bytes:
    """Record ``index`` of one ArrayRecord file, read without the records before it."""
    path = os.fspath(path)
    reader = open_reader(path, random_access=True)
    try:
        if not 0 <= index < reader.num_records():
            raise ShardFormatError(f"{path} holds {reader.num_records()} records, record {index} was asked for")
        try:
            return reader.read([index])[0]
        except RuntimeError as exc:
            raise ShardFormatError(f"{path}: record {index}: {exc}") from None
    finally:
        reader.close()
