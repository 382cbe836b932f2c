"""``vidshard bench-train DATA``: clips/s of a training step fed from shards versus synthetic batches.

The options are parsed by :func:`vidshard.bench.train_step.main`, the same parser that
``python -m vidshard.bench.train_step`` uses on machines without the ``vidshard`` command (the
GPU machine lacks packages that other sub-commands import), so the two cannot drift apart.
``vidshard bench-train --help`` shows them.
"""
from __future__ import annotations

import click


@click.command("bench-train", add_help_option=False,
               context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def bench_train_command(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Training-step clips/s fed from shards by the TF-free reader vs. synthetic batches (--help for options)."""
    from vidshard.bench.train_step import main

    ctx.exit(main(list(args), prog=ctx.command_path))
