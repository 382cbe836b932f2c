"""A manifest: the labels (and optionally splits, groups and segments) of a source's videos, for any dataset.

``--manifest FILE.csv``, ``FILE.jsonl`` or ``FILE.parquet`` lists one example per row with the
columns ``path`` and ``label``, and optionally ``split``, ``group``, ``start`` and ``end``
(seconds: the example is that segment of the video).  ``path`` is relative to the SOURCE (a
folder, a zip or a remote zip: one of its video members), or, for a URL list, an ``http(s)://``
URL (``url`` is read as ``path``, as video2dataset names it).  One file may be listed in several
rows with different segments: each row is its own example, whose id is the Media Fragments form
``path#t=START,END`` (:func:`vidshard.sampling.segment_id`).  All segments of one file are one
group (unless a ``group`` column says otherwise), so they never land in two splits, whatever their labels.

Kinetics' annotation CSVs are read as distributed (``label,youtube_id,time_start,time_end,split``
and the optional ``is_cc``): ``path_template`` maps a row to the file a downloader wrote.  A
template that names ``time_start`` or ``time_end`` (the default,
``{youtube_id}_{time_start:06d}_{time_end:06d}.mp4``) points at clipped downloads, each file the
whole example; one that does not (``{youtube_id}.mp4``) points at full-length videos, cut by the
row's segment.  Either way the group is the ``youtube_id``.

Every row is checked before any video is read, and a bad row is one :class:`CatalogError` naming
the file and row: a missing file, an unknown column, an empty label, the same example listed
twice, a split name that cannot name shard files, a time that is not a number.  A segment that
is empty or lies outside its video is found when the video is decoded, and recorded in
``errors.jsonl`` with the reason.
"""
from __future__ import annotations

import math
import string
from dataclasses import dataclass
from typing import Sequence

from vidshard.catalog import SPLIT_NAME, Catalog, VideoEntry, compile_group_pattern, group_of
from vidshard.errors import CatalogError
from vidshard.sampling import segment_id
from vidshard.tables import read_rows

COLUMNS: tuple[str, ...] = ("path", "label", "split", "group", "start", "end")
REQUIRED: tuple[str, ...] = ("path", "label")
#: Kinetics' own CSV columns (``is_cc``, in some releases, is read and ignored).
KINETICS_COLUMNS: tuple[str, ...] = ("label", "youtube_id", "time_start", "time_end", "split", "is_cc")
KINETICS_REQUIRED: tuple[str, ...] = ("label", "youtube_id", "time_start", "time_end")
#: The file names of clipped Kinetics downloads (the usual downloaders' naming).
DEFAULT_KINETICS_TEMPLATE = "{youtube_id}_{time_start:06d}_{time_end:06d}.mp4"
_TEMPLATE_FIELDS = ("youtube_id", "time_start", "time_end", "label", "split")


@dataclass(frozen=True)
class ManifestRow:
    """One row: where it was (for messages), and its values (``split``/``group``/times None when absent)."""

    where: str
    path: str
    label: str
    split: str | None
    group: str | None
    start: float | None = None
    end: float | None = None

    @property
    def video_id(self) -> str:
        """The example's id: ``path``, or ``path#t=START,END`` for a segment."""
        return segment_id(self.path, self.start, self.end)


def _normal(path: str) -> str:
    """Member names are POSIX paths relative to the source: ``./a\\b.avi`` and ``a/b.avi`` are one."""
    path = path.strip()
    if "://" in path:  # a URL is taken as written
        return path
    path = path.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path


def _time(where: str, column: str, text: str) -> float | None:
    """A time in seconds (a finite number >= 0) or None for an empty cell."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise CatalogError(f"{where}: {column} {text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise CatalogError(f"{where}: {column} {text!r} must be a finite number of seconds >= 0")
    return value


def _template(path_template: str) -> tuple[str, bool]:
    """Check a path template's fields; return it and whether it names clipped files (times in the name)."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(path_template) if name is not None}
    except ValueError as exc:
        raise CatalogError(f"`path_template` {path_template!r}: {exc}") from None
    unknown = sorted(fields - set(_TEMPLATE_FIELDS))
    if unknown or not fields:
        raise CatalogError(f"`path_template` {path_template!r} may use only {{{'}, {'.join(_TEMPLATE_FIELDS)}}}"
                           + (f", not {{{unknown[0]}}}" if unknown else ", and must name youtube_id"))
    return path_template, bool(fields & {"time_start", "time_end"})


def _kinetics_row(where: str, values: dict[str, str], template: str, clipped: bool) -> ManifestRow:
    """A Kinetics row: the file the template names, cut by the row's times unless the file is the clip."""
    start = _time(where, "time_start", values["time_start"])
    end = _time(where, "time_end", values["time_end"])
    if not values["youtube_id"]:
        raise CatalogError(f"{where}: empty youtube_id")
    names = {"youtube_id": values["youtube_id"], "label": values["label"], "split": values["split"],
             # Kinetics' times are whole seconds; a template's {time_start:06d} needs them as integers.
             "time_start": int(start) if start is not None and start.is_integer() else start,
             "time_end": int(end) if end is not None and end.is_integer() else end}
    try:
        path = template.format(**names)
    except (ValueError, TypeError) as exc:
        raise CatalogError(f"{where}: `path_template` {template!r} cannot name this row ({exc})") from None
    if clipped:
        start = end = None
    return ManifestRow(where, _normal(path), values["label"], values["split"] or None, values["youtube_id"],
                       start, end)


def read_manifest(file: str, path_template: str | None = None) -> list[ManifestRow]:
    """Parse and check a manifest file (its rows against each other; :func:`catalog_from_manifest` checks paths).

    ``path_template`` maps Kinetics rows to file names (default :data:`DEFAULT_KINETICS_TEMPLATE`);
    it is refused for other manifests.
    """
    header, table = read_rows(file)
    name = file.replace("\\", "/").rsplit("/", 1)[-1]
    kinetics = header is not None and "youtube_id" in header
    if header is not None:
        known = KINETICS_COLUMNS if kinetics else COLUMNS + ("url",)
        unknown = [column for column in header if column not in known]
        if unknown:
            raise CatalogError(f"{name} line 1: unknown column {unknown[0]!r}; columns are {', '.join(known[:-1])}")
        required = KINETICS_REQUIRED if kinetics else [c for c in REQUIRED if not (c == "path" and "url" in header)]
        missing = [column for column in required if column not in header]
        if missing:
            raise CatalogError(f"{name} line 1: no {missing[0]!r} column; the header must name "
                               + ("label, youtube_id, time_start and time_end" if kinetics else "path and label"))
    if path_template is not None and not kinetics:
        raise CatalogError(f"`path_template` is for Kinetics CSVs (with a youtube_id column); {name} has none")
    template, clipped = _template(path_template or DEFAULT_KINETICS_TEMPLATE)
    rows: list[ManifestRow] = []
    first: dict[str, str] = {}
    for where, row in table:
        row_kinetics = kinetics or (header is None and "youtube_id" in row)
        known = KINETICS_COLUMNS if row_kinetics else COLUMNS + ("url",)
        unknown = [column for column in row if column not in known]
        if unknown:
            raise CatalogError(f"{where}: unknown column {unknown[0]!r}; columns are {', '.join(known[:-1])}")
        values = {column: ("" if row.get(column) is None else str(row.get(column)).strip()) for column in known}
        if not row_kinetics and not values["path"]:
            values["path"] = values["url"]
            if not values["path"]:
                raise CatalogError(f"{where}: empty path")
        if not values["label"]:
            raise CatalogError(f"{where}: empty label for " + (values["youtube_id"] if row_kinetics else values["path"]))
        if row_kinetics:
            parsed = _kinetics_row(where, values, template, clipped)
        else:
            parsed = ManifestRow(where, _normal(values["path"]), values["label"], values["split"] or None,
                                 values["group"] or None, _time(where, "start", values["start"]),
                                 _time(where, "end", values["end"]))
        if parsed.video_id in first:
            raise CatalogError(f"{where}: {parsed.video_id} is already listed at {first[parsed.video_id]}")
        first[parsed.video_id] = where
        if parsed.split is not None and not SPLIT_NAME.fullmatch(parsed.split):
            raise CatalogError(f"{where}: split {parsed.split!r} must start with a letter and hold only letters, "
                               "digits and _")
        rows.append(parsed)
    if not rows:
        raise CatalogError(f"`manifest` {file} lists no video")
    return rows


def catalog_from_manifest(rows: Sequence[ManifestRow], member_sizes: dict[str, int],
                          group_pattern: str | None = None) -> Catalog:
    """The catalog the manifest describes; a row whose path the source lacks is an error naming it.

    Entries are examples: a row's ``video_id`` is its path, or ``path#t=START,END`` for a segment.
    Groups come from the ``group`` column, else from ``group_pattern`` (searched in the file
    name), else each file is its own group — every segment of a file in that file's group.  Rows
    either all give a split or none does.  Source videos no row names are ``unmatched``
    (reported by ``vidshard list``, not used).
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
        entries.append(VideoEntry(segment_id(name, row.start, row.end), row.label, group, 0, member_sizes[name],
                                  row.split))
    named = {_normal(row.path) for row in rows}
    unmatched = tuple(name for name in member_sizes if _normal(name) not in named)
    return Catalog(tuple(entries), unmatched, "manifest")
