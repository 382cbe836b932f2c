"""``vidshard demo``: the whole job end to end, offline, on a generated UCF101-shaped dataset."""
from __future__ import annotations

import os
import tempfile

import click

from vidshard.errors import VidshardError


@click.command("demo")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Where the zip, shards and run go (default: a new folder under the system temp dir, kept).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Training epochs (default: the demo's 40).")
@click.option("--overwrite", is_flag=True,
              help="Redo the demo in a --workdir that is not empty, replacing its source/, shards/ and run/.")
def demo_command(workdir: str | None, epochs: int | None, overwrite: bool) -> None:
    """Generate a small UCF101-shaped zip, serve it over HTTP, shard it with Beam, train, evaluate."""
    from dataclasses import replace

    from vidshard.demo import DemoConfig, run_demo

    if workdir and os.path.isdir(workdir) and os.listdir(workdir) and not overwrite:
        raise VidshardError(f"--workdir {workdir} is not empty; pass --overwrite to redo the demo there "
                            "(its source/, shards/ and run/ are replaced)")
    config = DemoConfig() if epochs is None else replace(DemoConfig(), epochs=epochs)
    run_demo(workdir or tempfile.mkdtemp(prefix="vidshard-demo-"), config, echo=click.echo)
