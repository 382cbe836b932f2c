"""``vidshard shard``'s audit options: --audit, --exclude FLAGS and one named option per threshold.

Every threshold is a field of :class:`vidshard.quality.flags.Thresholds`, whose default it shows;
a threshold or ``--exclude`` without ``--audit`` is not ignored: ``--exclude`` turns the audit on,
and a threshold given without either is a usage error.
"""
from __future__ import annotations

from typing import Any, Callable

import click

from vidshard.cli.wording import bad_value
from vidshard.quality.flags import FLAGS, Audit, Thresholds, parse_exclude

_DEFAULTS = Thresholds()
#: option name -> (Thresholds field, click type, help)
THRESHOLD_OPTIONS: dict[str, tuple[str, Any, str]] = {
    "--black-share": ("black_share", click.FloatRange(0, 1), "black: share of seen frames near-black at least"),
    "--blank-share": ("blank_share", click.FloatRange(0, 1), "blank: share of seen frames near-uniform at least"),
    "--dark-luma": ("dark_luma", click.FloatRange(0, 255), "dark: mean luma (0-255) below"),
    "--frozen-seconds": ("frozen_seconds", click.FloatRange(min=0, min_open=True),
                         "frozen: seconds of unchanged consecutive seen frames at least"),
    "--noise-sigma": ("noise_sigma", click.FloatRange(min=0, min_open=True),
                      "noisy: Immerkaer noise sigma (luma levels) at least"),
    "--sharpness": ("sharpness", click.FloatRange(min=0, min_open=True),
                    "blurry: Laplacian variance over luma variance below"),
    "--blockiness": ("blockiness", click.FloatRange(min=1, min_open=True),
                     "blocky: 8x8 block-boundary steps over other steps at least"),
    "--duplicate-bits": ("duplicate_bits", click.IntRange(0, 15), "duplicate: video pHash distance (bits of 64) at most"),
}


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
