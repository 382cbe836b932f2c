"""What to take from a source and how to split it, in the library's own names: :class:`Selection`.

The sharding job (:func:`vidshard.pipelines.job.shard`, behind :func:`vidshard.shard`) checks a
selection before the source is opened (:meth:`Selection.check`, :func:`read_rows`), builds the
catalog of the listing (:func:`catalog_of`) and plans the splits (:func:`plan`).  Messages name
fields in backquotes (`` `split_lists` ``), which the CLI writes as its options
(:mod:`vidshard.cli.wording`).  Pure: imports catalog, manifest, splitlists and tables.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from vidshard.catalog import (
    POLICIES, Catalog, SplitPlan, SplitRequest, build_catalog, compile_group_pattern, parse_splits,
    plan_fixed_splits, plan_splits, select_classes,
)
from vidshard.errors import CatalogError
from vidshard.manifest import ManifestRow, catalog_from_manifest, read_manifest
from vidshard.splitlists import FOLDS, plan_from_lists, read_split_lists
from vidshard.tables import is_table

if TYPE_CHECKING:
    from vidshard.sources import Member

#: The tutorial's split: 30 training, 10 validation and 10 test videos per class.
DEFAULT_SPLITS = "train=30,val=10,test=10"


@dataclass(frozen=True)
class Selection:
    """Which classes and videos of a source, and how they are split (see docs/splits.md).

    ``splits`` is a request such as ``"train=30,val=10,test=10"`` or ``"train=0.8,test=0.2"``
    (None: the tutorial's for ``group``/``order``, no validation split for fixed splits);
    ``split_by`` one of :data:`vidshard.catalog.POLICIES` (None: ``group``); ``split_lists`` and
    ``fold`` UCF101's official lists; ``manifest`` a CSV/JSON Lines file of paths and labels;
    ``group_pattern`` a regex whose ``(group)`` keeps related videos in one split;
    ``path_template`` maps a Kinetics CSV's rows to file names; ``seed`` the group order and the clips.  ``classes`` is a list of names or ``"A,B"``.
    """

    num_classes: int | None = None
    classes: Sequence[str] | str | None = None
    splits: SplitRequest | str | None = None
    split_by: str | None = None
    split_lists: str | None = None
    fold: int | None = None
    seed: int = 0
    manifest: str | None = None
    group_pattern: str | None = None
    path_template: str | None = None

    def check(self) -> None:
        """Refuse values and combinations that would fail or leave one of them unused, before any listing."""
        if self.num_classes is not None and self.classes is not None:
            raise CatalogError("give either `num_classes` or `classes`, not both")
        if self.num_classes is not None and (not isinstance(self.num_classes, int) or self.num_classes < 1):
            raise CatalogError(f"`num_classes` must be at least 1, got {self.num_classes!r}")
        if self.split_by is not None and self.split_by not in POLICIES:
            raise CatalogError(f"`split_by` {self.split_by!r}: choose one of {', '.join(POLICIES)}")
        if self.fold is not None and self.fold not in FOLDS:
            raise CatalogError(f"`fold` must be one of {', '.join(map(str, FOLDS))}, got {self.fold!r}")
        if self.split_lists is not None and self.split_by is not None:
            raise CatalogError(f"`split_lists` fixes the splits; it cannot be combined with `split_by` {self.split_by}")
        if self.fold is not None and self.split_lists is None:
            raise CatalogError(f"`fold` chooses a fold of `split_lists`; give `split_lists` (or `split_by` "
                               f"ucf101-fold{self.fold})")
        self.class_names()
        self.request()
        compile_group_pattern(self.group_pattern)

    def class_names(self) -> tuple[str, ...] | None:
        """``classes`` as a tuple of names (``"A,B"`` split at commas); an empty name is an error."""
        if self.classes is None:
            return None
        names = tuple(name.strip() for name in (self.classes.split(",") if isinstance(self.classes, str)
                                                else self.classes))
        if not names or any(not name for name in names):
            raise CatalogError(f"`classes` {self.classes!r} has an empty class name; expected e.g. Archery,Basketball")
        return names

    def request(self) -> SplitRequest | None:
        """``splits`` parsed (None when not given)."""
        if self.splits is None or isinstance(self.splits, SplitRequest):
            return self.splits
        return parse_splits(self.splits)


def read_rows(selection: Selection, source: str | None = None) -> list[ManifestRow] | None:
    """The ``manifest``'s rows (every row checked), or None without one; before the source is opened.

    A URL list (a ``source`` that is a local .csv/.jsonl/.parquet file) is its own manifest unless
    one is given.
    """
    manifest = selection.manifest
    if manifest is None and source is not None and is_table(source) and os.path.isfile(source):
        manifest = source
    if manifest is None and selection.path_template is not None:
        raise CatalogError("`path_template` maps the rows of a Kinetics `manifest`; give one")
    return None if manifest is None else read_manifest(manifest, selection.path_template)


def catalog_of(members: Sequence[Member], rows: list[ManifestRow] | None, group_pattern: str | None) -> Catalog:
    """The catalog of a listed source: from the manifest's rows if given, else from the names."""
    if rows is None:
        return build_catalog(members, group_pattern)
    return catalog_from_manifest(rows, {member.name: member.size for member in members}, group_pattern)


def plan(catalog: Catalog, selection: Selection) -> SplitPlan:
    """Select the classes and plan the splits of a catalog (checks the selection first)."""
    selection.check()
    request, classes = selection.request(), selection.class_names()
    if selection.split_lists is not None:
        lists = read_split_lists(selection.split_lists, selection.fold or 1)
        return plan_from_lists(catalog, lists, selection.num_classes, classes, request, selection.seed)
    policy = selection.split_by or "group"
    chosen = select_classes(catalog, num_classes=selection.num_classes, classes=classes)
    if policy in ("group", "order"):
        return plan_splits(catalog, chosen, request or parse_splits(DEFAULT_SPLITS), policy=policy, seed=selection.seed)
    return plan_fixed_splits(catalog, chosen, policy, request, selection.seed)
