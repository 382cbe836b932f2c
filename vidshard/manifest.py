"""A manifest: the labels (and optionally splits and groups) of a source's videos, for any dataset.

``--manifest FILE.csv`` or ``FILE.jsonl`` lists one video per row with the columns ``path`` and
``label``, and optionally ``split`` and ``group`` (Kinetics-style lists, a team's own labels).
``path`` is relative to the SOURCE, which stays a folder, a zip or a remote zip: it must be one
of the source's video members.  Every row is checked before any video is read, and a bad row is
one :class:`CatalogError` naming the file and row: a missing file, an unknown column, an empty
label, a duplicate path, a split name that cannot name shard files.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass
from typing import Sequence

from vidshard.catalog import Catalog, VideoEntry, compile_group_pattern, group_of
from vidshard.errors import CatalogError

COLUMNS: tuple[str, ...] = ("path", "label", "split", "group")
REQUIRED: tuple[str, ...] = ("path", "label")
#: Split names end up in shard file names, as with ``--splits``.
_SPLIT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class ManifestRow:
    """One row: where it was (for messages), and its values (``split``/``group`` None when absent)."""

    where: str
    path: str
    label: str
    split: str | None
    group: str | None


def _normal(path: str) -> str:
    """Member names are POSIX paths relative to the source: ``./a\\b.avi`` and ``a/b.avi`` are one."""
    path = path.strip().replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path


def _rows_of(file: str, text: str) -> list[tuple[str, dict[str, object]]]:
    """``(where, row)`` pairs of a CSV (header line first) or JSON Lines file."""
    name = os.path.basename(file)
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
        return rows
    if file.lower().endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text))
        header = reader.fieldnames or []
        unknown = [column for column in header if column not in COLUMNS]
        if unknown:
            raise CatalogError(f"{name} line 1: unknown column {unknown[0]!r}; columns are {', '.join(COLUMNS)}")
        missing = [column for column in REQUIRED if column not in header]
        if missing:
            raise CatalogError(f"{name} line 1: no {missing[0]!r} column; the header must name path and label")
        rows = []
        for row in reader:
            if None in row:  # more fields than the header names
                raise CatalogError(f"{name} line {reader.line_num}: more fields than the header's {len(header)}")
            rows.append((f"{name} line {reader.line_num}", dict(row)))
        return rows
    raise CatalogError(f"`manifest` {file}: expected a .csv or .jsonl file")


def read_manifest(file: str) -> list[ManifestRow]:
    """Parse and check a manifest file (its rows against each other; :func:`catalog_from_manifest` checks paths)."""
    try:
        with open(file, encoding="utf-8-sig") as fh:
            text = fh.read()
    except OSError as exc:
        raise CatalogError(f"`manifest` {file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CatalogError(f"`manifest` {file}: not UTF-8 text") from None
    rows: list[ManifestRow] = []
    first: dict[str, str] = {}
    for where, row in _rows_of(file, text):
        unknown = [column for column in row if column not in COLUMNS]
        if unknown:
            raise CatalogError(f"{where}: unknown column {unknown[0]!r}; columns are {', '.join(COLUMNS)}")
        values = {column: ("" if row.get(column) is None else str(row.get(column)).strip()) for column in COLUMNS}
        if not values["path"]:
            raise CatalogError(f"{where}: empty path")
        if not values["label"]:
            raise CatalogError(f"{where}: empty label for {values['path']}")
        path = _normal(values["path"])
        if path in first:
            raise CatalogError(f"{where}: {path} is already listed at {first[path]}")
        first[path] = where
        split = values["split"] or None
        if split is not None and not _SPLIT_NAME.fullmatch(split):
            raise CatalogError(f"{where}: split {split!r} must start with a letter and hold only letters, digits and _")
        rows.append(ManifestRow(where, path, values["label"], split, values["group"] or None))
    if not rows:
        raise CatalogError(f"`manifest` {file} lists no video")
    return rows


def catalog_from_manifest(rows: Sequence[ManifestRow], member_sizes: dict[str, int],
                          group_pattern: str | None = None) -> Catalog:
    """The catalog the manifest describes; a row whose path the source lacks is an error naming it.

    Groups come from the ``group`` column, else from ``group_pattern``, else each video is its own
    group.  Rows either all give a split or none does.  Source videos no row names are
    ``unmatched`` (reported by ``vidshard list``, not used).
    """
    pattern = compile_group_pattern(group_pattern)
    normal = {_normal(name): name for name in member_sizes}
    with_split = {row.split is not None for row in rows}
    if len(with_split) > 1:
        row = next(row for row in rows if row.split is None)
        raise CatalogError(f"{row.where}: no split, while other rows give one; give every row a split or none")
    entries = []
    for row in rows:
        name = normal.get(row.path)
        if name is None:
            raise CatalogError(f"{row.where}: {row.path} is not a video of the source")
        group = row.group if row.group is not None else group_of(pattern, name, name)
        entries.append(VideoEntry(name, row.label, group, 0, member_sizes[name], row.split))
    named = {entry.video_id for entry in entries}
    unmatched = tuple(name for name in member_sizes if name not in named)
    return Catalog(tuple(entries), unmatched, "manifest")
