"""Rows of a table file: CSV (header line first), JSON Lines, or Parquet (with pyarrow).

The one reader of the files users list videos in: :mod:`vidshard.manifest` (labels, splits,
segments) and :mod:`vidshard.sources.urls` (URL lists) both take their rows from here, each with
where it was (``name line N``) for error messages.  Imports :mod:`vidshard.errors` only.
"""
from __future__ import annotations

import csv
import io
import json
import os

from vidshard.errors import CatalogError

#: The table files read, by suffix.
TABLE_SUFFIXES: tuple[str, ...] = (".csv", ".jsonl", ".parquet")


def is_table(path: str) -> bool:
    """Whether ``path`` names a table file this module reads (by its suffix)."""
    return path.lower().endswith(TABLE_SUFFIXES)


def read_rows(file: str) -> tuple[list[str] | None, list[tuple[str, dict[str, object]]]]:
    """``(header, [(where, row), ...])`` of a table file; ``header`` is None for JSON Lines (rows may differ).

    A file that cannot be read, is not UTF-8, holds a line that is not a JSON object, a CSV row
    with more fields than its header, or has another suffix is one :class:`CatalogError`.
    """
    name = os.path.basename(file)
    if not is_table(file):
        raise CatalogError(f"`manifest` {file}: expected a .csv, .jsonl or .parquet file")
    if file.lower().endswith(".parquet"):
        return _parquet_rows(file, name)
    try:
        with open(file, encoding="utf-8-sig") as fh:
            text = fh.read()
    except OSError as exc:
        raise CatalogError(f"`manifest` {file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CatalogError(f"`manifest` {file}: not UTF-8 text") from None
    if file.lower().endswith(".jsonl"):
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise CatalogError(f"{name} line {number}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise CatalogError(f"{name} line {number}: expected a JSON object with path and label")
            rows.append((f"{name} line {number}", row))
        return None, rows
    reader = csv.DictReader(io.StringIO(text))
    header = list(reader.fieldnames or [])
    rows = []
    for row in reader:
        if None in row:  # more fields than the header names
            raise CatalogError(f"{name} line {reader.line_num}: more fields than the header's {len(header)}")
        rows.append((f"{name} line {reader.line_num}", dict(row)))
    return header, rows


def _parquet_rows(file: str, name: str) -> tuple[list[str], list[tuple[str, dict[str, object]]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CatalogError(f"`manifest` {file}: reading Parquet needs pyarrow (pip install 'vidshard[parquet]')") from None
    try:
        table = pq.read_table(file)
    except OSError as exc:  # pyarrow's ArrowInvalid is an OSError/ValueError subclass by version
        raise CatalogError(f"`manifest` {file}: not a Parquet file ({' '.join(str(exc).split())})") from None
    except ValueError as exc:
        raise CatalogError(f"`manifest` {file}: not a Parquet file ({' '.join(str(exc).split())})") from None
    return list(table.column_names), [(f"{name} row {number}", row)
                                      for number, row in enumerate(table.to_pylist(), 1)]
