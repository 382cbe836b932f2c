"""The class-selection and split options shared by commands that plan a dataset (``shard``, ...).

Each option is checked when click parses it, before the source is opened, and a bad value is
click's usage error, exit status 2, as in every other command.  What can only be checked against
the listing (class names, videos per class) is checked by :func:`plan_from_options`, before any
video is read: an ``Error: ...`` line and exit status 1.
"""
from __future__ import annotations

from typing import Callable, Sequence, TypeVar

import click

from vidshard.catalog import POLICIES, Catalog, SplitPlan, SplitRequest, compile_group_pattern, parse_splits
from vidshard.cli.wording import bad_value
from vidshard.errors import CatalogError
from vidshard.planning import DEFAULT_SPLITS, Selection, plan
from vidshard.splitlists import FOLDS

F = TypeVar("F", bound=Callable[..., object])


def parse_class_list(text: str) -> tuple[str, ...]:
    """``"A,B"`` -> ``("A", "B")``; empty names are an error rather than silently dropped."""
    names = tuple(name.strip() for name in text.split(","))
    if any(not name for name in names):
        raise CatalogError(f"`classes` {text!r} has an empty class name; expected e.g. Archery,Basketball")
    return names


def _exclusive(ctx: click.Context, other: str) -> None:
    """--num-classes and --classes exclude each other; whichever click parses second sees the first."""
    if ctx.params.get(other) is not None:
        raise bad_value("give either --num-classes or --classes, not both", ctx)


def _num_classes_option(ctx: click.Context, _param: click.Parameter, value: int | None) -> int | None:
    if value is not None:
        _exclusive(ctx, "classes")
    return value


def _classes_option(ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    _exclusive(ctx, "num_classes")
    try:
        return parse_class_list(value)
    except CatalogError as exc:
        raise bad_value(str(exc), ctx) from None


def _splits_option(ctx: click.Context, _param: click.Parameter, value: str | None) -> SplitRequest | None:
    try:
        return None if value is None else parse_splits(value)
    except CatalogError as exc:
        raise bad_value(str(exc), ctx) from None


def selection_options(func: F) -> F:
    """Add ``--num-classes``, ``--classes``, ``--splits``, ``--split-by``, ``--split-lists``, ``--fold``, ``--seed``.

    The command receives ``num_classes`` (int or None), ``classes`` (tuple or None), ``splits``
    (:class:`SplitRequest` or None when not given), ``split_by`` (str or None when not given),
    ``split_lists`` (str or None), ``fold`` (int or None) and ``seed`` (int); pass them to
    :func:`plan_from_options`, and call :func:`check_split_options` before opening the source.
    """
    options = [
        click.option(
            "--num-classes", metavar="N", type=click.IntRange(min=1), callback=_num_classes_option,
            help="Use the first N class names in sorted order (the tutorial's choice). Default: all.",
        ),
        click.option(
            "--classes", metavar="A,B,...", callback=_classes_option,
            help="Use exactly these classes (comma-separated). Excludes --num-classes.",
        ),
        click.option(
            "--splits", default=None, metavar="NAME=N,...",
            callback=_splits_option,
            help="Videos per class for each split (train=30,...) or fractions of each class (train=0.7,...). "
            f"[default: {DEFAULT_SPLITS}] With fixed splits (a fold, folders, --split-lists) only val=N or "
            "val=FRACTION, carved out of train by whole groups.",
        ),
        click.option(
            "--split-by", default=None, metavar="[" + "|".join(POLICIES) + "]", type=click.Choice(POLICIES),
            help="group: whole UCF101 groups per split, no actor/scene in two splits [default]. "
            "order: the tutorial's listing-order split (leaks groups). folder: keep the source's "
            "train/val/test folders. manifest: keep the --manifest's split column. ucf101-foldN: UCF101's "
            "official fold N by group number (test groups 1-7, 8-14, 15-21).",
        ),
        click.option(
            "--split-lists", metavar="PATH|URL", default=None,
            help="UCF101's official lists (ucfTrainTestlist: classInd.txt, trainlist0N.txt, testlist0N.txt) in a "
            "folder, zip or http(s) zip: train and test exactly as listed, labels in classInd.txt order.",
        ),
        click.option(
            "--fold", metavar="1|2|3", default=None, type=click.IntRange(min(FOLDS), max(FOLDS)),
            help="Which fold of --split-lists. [default: 1]",
        ),
        click.option(
            "--seed", default=0, show_default=True, metavar="INT", type=int,
            help="Seeds the split (the group order of --split-by group, the val carved out of fixed splits) and "
            "the clips: which frames each video's random clips start at (train; every split without --eval-clips).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def check_split_options(split_by: str | None, split_lists: str | None, fold: int | None) -> None:
    """Refuse option combinations that would leave one of them unused, before the source is opened (exit status 2)."""
    if split_lists is not None and split_by is not None:
        raise bad_value(f"--split-lists fixes the splits; it cannot be combined with --split-by {split_by}")
    if fold is not None and split_lists is None:
        hint = f" (or --split-by ucf101-fold{fold})" if fold in FOLDS else ""
        raise bad_value(f"--fold chooses a fold of --split-lists; give --split-lists PATH{hint}")


def plan_from_options(
    catalog: Catalog,
    num_classes: int | None,
    classes: Sequence[str] | str | None,
    splits: SplitRequest | str | None,
    split_by: str | None,
    seed: int,
    split_lists: str | None = None,
    fold: int | None = None,
) -> SplitPlan:
    """Select classes and plan splits from the option values (:func:`vidshard.planning.plan`).

    Option conflicts are click's usage error first (:func:`check_split_options`); ``splits=None``
    means the option was not given, ``split_by=None`` means ``group``.
    """
    check_split_options(split_by, split_lists, fold)
    return plan(catalog, selection_from_options(num_classes, classes, splits, split_by, seed, split_lists, fold))


def selection_from_options(num_classes: int | None, classes: Sequence[str] | str | None,
                           splits: SplitRequest | str | None, split_by: str | None, seed: int,
                           split_lists: str | None = None, fold: int | None = None, manifest: str | None = None,
                           group_pattern: str | None = None, path_template: str | None = None) -> Selection:
    """The library's :class:`~vidshard.planning.Selection` of the selection and catalog options' values."""
    if isinstance(classes, str):
        classes = parse_class_list(classes)
    return Selection(num_classes=num_classes, classes=classes, splits=splits, split_by=split_by,
                     split_lists=split_lists, fold=fold, seed=seed, manifest=manifest, group_pattern=group_pattern,
                     path_template=path_template)


def _group_pattern_option(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    try:
        compile_group_pattern(value)
    except CatalogError as exc:
        raise bad_value(str(exc), ctx) from None
    return value


def catalog_options(func: F) -> F:
    """Add ``--manifest`` and ``--group-pattern``: where classes and groups come from (``shard``, ``list``).

    The command receives ``manifest``, ``path_template`` and ``group_pattern`` (str or None): the
    catalog fields of a :class:`~vidshard.planning.Selection` (:func:`selection_from_options`).
    """
    options = [
        click.option(
            "--manifest", metavar="FILE.csv|FILE.jsonl|FILE.parquet", default=None,
            help="Labels for any dataset: one row per video with path (relative to SOURCE) and label, "
            "optionally split, group, and start and end (seconds: a segment; several rows per file allowed). "
            "Kinetics CSVs are read as distributed. Without it classes come from UCF101 names or <class>/ folders.",
        ),
        click.option(
            "--path-template", metavar="TEMPLATE", default=None,
            help="Kinetics CSVs: the file of each row, e.g. '{youtube_id}.mp4' (full-length videos, cut by "
            "time_start/time_end). Default: clipped downloads, '{youtube_id}_{time_start:06d}_{time_end:06d}.mp4'.",
        ),
        click.option(
            "--group-pattern", metavar="REGEX", default=None, callback=_group_pattern_option,
            help="Group of each video (kept inside one split): the part of its file name in the pattern's "
            "(group). Default: UCF101's gGG, a manifest's group column, else each video its own group.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func
