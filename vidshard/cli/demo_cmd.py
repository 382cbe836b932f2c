"""``vidshard demo``: the whole job end to end, offline, on a generated UCF101-shaped dataset."""
from __future__ import annotations

import os
import tempfile

import click

from vidshard.errors import VidshardError


@click.command("demo")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Where the zip, shards and run go (default: a new folder under the system temp dir, kept).")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Training epochs (default: the demo's, 40 for motion, 50 for noise).")
@click.option("--task", type=click.Choice(("motion", "noise")), default="motion", show_default=True,
              help="motion: classify the direction of motion (UCF101-shaped zip over HTTP); noise: the seed's own task, "
                   "detect noisy videos (clean and noisy videos made from clean ones; docs/quality.md).")
@click.option("--overwrite", is_flag=True,
              help="Redo the demo in a --workdir that is not empty, replacing its source/, shards/ and run/.")
def demo_command(workdir: str | None, epochs: int | None, task: str, overwrite: bool) -> None:
    """Generate a small UCF101-shaped zip, serve it over HTTP, shard it with Beam, train, evaluate."""
    from dataclasses import replace

    from vidshard.demo import DemoConfig, NoiseDemoConfig, run_demo, run_noise_demo

    if workdir and os.path.isdir(workdir) and os.listdir(workdir) and not overwrite:
        raise VidshardError(f"--workdir {workdir} is not empty; pass --overwrite to redo the demo there "
                            "(its source/, shards/ and run/ are replaced)")
    folder = workdir or tempfile.mkdtemp(prefix="vidshard-demo-")
    if task == "noise":
        noise = NoiseDemoConfig() if epochs is None else replace(NoiseDemoConfig(), epochs=epochs)
        run_noise_demo(folder, noise, echo=click.echo)
        return
    config = DemoConfig() if epochs is None else replace(DemoConfig(), epochs=epochs)
    run_demo(folder, config, echo=click.echo)
