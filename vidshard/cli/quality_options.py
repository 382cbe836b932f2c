"""``vidshard shard``'s audit options: --audit, --exclude FLAGS and one named option per threshold.

Every threshold is a field of :class:`vidshard.quality.flags.Thresholds`, whose default it shows;
a threshold or ``--exclude`` without ``--audit`` is not ignored: ``--exclude`` turns the audit on,
and a threshold given without either is a usage error.
"""
from __future__ import annotations

from typing import Any, Callable

import click

from vidshard.cli.wording import bad_value
from vidshard.quality.flags import FLAGS, THRESHOLD_RANGES, Audit, Thresholds, parse_exclude

_DEFAULTS = Thresholds()


def _range(field: str) -> click.ParamType:
    """The click type of a threshold: its range from :data:`~vidshard.quality.flags.THRESHOLD_RANGES` (stated once)."""
    low, high, open_low = THRESHOLD_RANGES[field]
    if field == "duplicate_bits":
        return click.IntRange(int(low), int(high), min_open=open_low)
    return click.FloatRange(low, None if high == float("inf") else high, min_open=open_low)


#: option name -> (Thresholds field, click type, help)
THRESHOLD_OPTIONS: dict[str, tuple[str, Any, str]] = {option: (field, _range(field), text) for option, field, text in (
    ("--black-share", "black_share", "black: share of seen frames near-black at least"),
    ("--blank-share", "blank_share", "blank: share of seen frames near-uniform at least"),
    ("--dark-luma", "dark_luma", "dark: mean luma (0-255) below"),
    ("--frozen-seconds", "frozen_seconds", "frozen: seconds of unchanged consecutive seen frames at least"),
    ("--noise-sigma", "noise_sigma", "noisy: Immerkaer noise sigma (luma levels) at least"),
    ("--sharpness", "sharpness", "blurry: Laplacian variance over luma variance below"),
    ("--blockiness", "blockiness", "blocky: 8x8 block-boundary steps over other steps at least"),
    ("--duplicate-bits", "duplicate_bits", "duplicate: video pHash distance (bits of 64) at most"),
)}


def _param(option: str) -> str:
    return option.lstrip("-").replace("-", "_")


def audit_options(command: Callable) -> Callable:
    """Add --audit, --exclude and the threshold options to a click command (its ``**audit_args``)."""
    for option, (field, kind, text) in reversed(THRESHOLD_OPTIONS.items()):
        command = click.option(option, default=getattr(_DEFAULTS, field), show_default=True, type=kind,
                               help=f"Audit threshold, {text}.")(command)
    command = click.option(
        "--exclude", default=None, metavar="FLAG,...",
        help=f"Leave out videos that raise these quality flags ({', '.join(FLAGS)}), each recorded in errors.jsonl "
             "with the signal and its value; implies --audit.")(command)
    return click.option(
        "--audit", is_flag=True,
        help="Measure every video's quality signals on the frames the decode holds and write quality.jsonl beside "
             "the shards (summary in dataset_info.json); nothing is left out without --exclude. See docs/quality.md.",
    )(command)


def audit_from_options(ctx: click.Context, args: dict[str, Any]) -> Audit | None:
    """The :class:`Audit` the options ask for; None without --audit and --exclude."""
    exclude = ()
    if args["exclude"] is not None:
        try:
            exclude = parse_exclude(args["exclude"])
        except ValueError as exc:
            raise bad_value(f"--exclude: {exc}", ctx) from None
    given = [option for option in THRESHOLD_OPTIONS
             if ctx.get_parameter_source(_param(option)) is not click.core.ParameterSource.DEFAULT]
    if not args["audit"] and not exclude:
        if given:
            raise bad_value(f"{given[0]} is a threshold of the quality audit: add --audit (or --exclude FLAG,...)", ctx)
        return None
    thresholds = Thresholds(**{field: args[_param(option)] for option, (field, _, _) in THRESHOLD_OPTIONS.items()})
    return Audit(thresholds, exclude)
