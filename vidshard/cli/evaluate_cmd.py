"""``vidshard evaluate RUN_DIR``: loss, accuracy, confusion matrix and per-class scores on one split."""
from __future__ import annotations

import click

from vidshard.cli_params import EXISTING_DIR


@click.command("evaluate")
@click.argument("run_dir", type=EXISTING_DIR)
@click.option("--data-dir", "--data", "data_dir", type=EXISTING_DIR, default=None,
              help="Shard directory (default: the one the run was trained on).")
@click.option("--split", default="test", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Default: the run's batch size.")
def evaluate_command(run_dir: str, data_dir: str | None, split: str, batch_size: int | None) -> None:
    """Score RUN_DIR's model.keras on one split of the shards, in one pass over the data.

    Writes metrics.json, per_class.csv, predictions.csv and confusion_matrix.png to
    RUN_DIR/eval/SPLIT/ and prints the per-class table.
    """
    from vidshard.models.evaluate import evaluate, format_table

    metrics = evaluate(run_dir, data_dir, split, batch_size)
    click.echo(f"{split}: {metrics['num_clips']} clips of {metrics['num_videos']} videos; "
               f"loss {metrics['loss']:.4f}, accuracy {metrics['accuracy']:.3f}")
    click.echo(format_table(metrics))
    click.echo(f"results: {metrics['out_dir']}")
