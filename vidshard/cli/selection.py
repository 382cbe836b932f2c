"""The class-selection and split options shared by commands that plan a dataset (``shard``, ...).

Each option is checked when click parses it, before the source is opened, and a bad value is a
:class:`CatalogError`: one ``Error: ...`` line and exit status 1 (not click's multi-line usage
error), as for every other input error.  What can only be checked against the listing (class
names, videos per class) is checked by :func:`plan_from_options`, before any video is read.
"""
from __future__ import annotations

from typing import Callable, Sequence, TypeVar

import click

from vidshard.catalog import (
    POLICIES,
    Catalog,
    SplitPlan,
    SplitRequest,
    parse_splits,
    plan_splits,
    select_classes,
)
from vidshard.errors import CatalogError

#: The tutorial's split: 30 training, 10 validation and 10 test videos per class.
DEFAULT_SPLITS = "train=30,val=10,test=10"

F = TypeVar("F", bound=Callable[..., object])


def _parse_int(option: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise CatalogError(f"{option} {text!r}: not a whole number") from None


def parse_class_list(text: str) -> tuple[str, ...]:
    """``"A,B"`` -> ``("A", "B")``; empty names are an error rather than silently dropped."""
    names = tuple(name.strip() for name in text.split(","))
    if any(not name for name in names):
        raise CatalogError(f"--classes {text!r} has an empty class name; expected e.g. Archery,Basketball")
    return names


def _exclusive(ctx: click.Context, other: str) -> None:
    """--num-classes and --classes exclude each other; whichever click parses second sees the first."""
    if ctx.params.get(other) is not None:
        raise CatalogError("give either --num-classes or --classes, not both")


def _num_classes_option(ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    _exclusive(ctx, "classes")
    number = _parse_int("--num-classes", value)
    if number < 1:
        raise CatalogError(f"--num-classes must be at least 1, got {number}")
    return number


def _classes_option(ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    _exclusive(ctx, "num_classes")
    return parse_class_list(value)


def _splits_option(_ctx: click.Context, _param: click.Parameter, value: str) -> SplitRequest:
    return parse_splits(value)


def _split_by_option(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if value not in POLICIES:
        raise CatalogError(f"--split-by {value!r}: choose one of {', '.join(POLICIES)}")
    return value


def _seed_option(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    return _parse_int("--seed", value)


def selection_options(func: F) -> F:
    """Add ``--num-classes``, ``--classes``, ``--splits``, ``--split-by`` and ``--seed`` to a command.

    The command receives ``num_classes`` (int or None), ``classes`` (tuple or None), ``splits``
    (:class:`SplitRequest`), ``split_by`` (str) and ``seed`` (int); pass them to
    :func:`plan_from_options`.
    """
    options = [
        click.option(
            "--num-classes", metavar="N", callback=_num_classes_option,
            help="Use the first N class names in sorted order (the tutorial's choice). Default: all.",
        ),
        click.option(
            "--classes", metavar="A,B,...", callback=_classes_option,
            help="Use exactly these classes (comma-separated). Excludes --num-classes.",
        ),
        click.option(
            "--splits", default=DEFAULT_SPLITS, show_default=True, metavar="NAME=N,...",
            callback=_splits_option,
            help="Videos per class for each split (train=30,...) or fractions of each class (train=0.7,...).",
        ),
        click.option(
            "--split-by", default="group", show_default=True, metavar="[group|order]",
            callback=_split_by_option,
            help="group: whole UCF101 groups per split, no actor/scene in two splits. "
            "order: the tutorial's listing-order split (leaks groups).",
        ),
        click.option(
            "--seed", default="0", show_default=True, metavar="INT", callback=_seed_option,
            help="Seed of the group order (with --split-by group).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def plan_from_options(
    catalog: Catalog,
    num_classes: int | None,
    classes: Sequence[str] | str | None,
    splits: SplitRequest | str,
    split_by: str,
    seed: int,
) -> SplitPlan:
    """Select classes and plan splits from the option values (raw strings are accepted too)."""
    if isinstance(classes, str):
        classes = parse_class_list(classes)
    request = splits if isinstance(splits, SplitRequest) else parse_splits(splits)
    chosen = select_classes(catalog, num_classes=num_classes, classes=classes)
    return plan_splits(catalog, chosen, request, policy=split_by, seed=seed)
