"""``vidshard evaluate RUN_DIR``: loss, clip and video accuracy, confusion matrix and per-class scores on one split."""
from __future__ import annotations

import click

from vidshard.cli_params import EXISTING_DIR


@click.command("evaluate")
@click.argument("run_dir", type=EXISTING_DIR)
@click.option("--data-dir", "--data", "data_dir", type=EXISTING_DIR, default=None,
              help="Shard directory (default: the one the run was trained on).")
@click.option("--split", default="test", show_default=True, metavar="SPLIT",
              help="Split of the shards to score (train, val, test, or any split the output has).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Default: the run's batch size.")
def evaluate_command(run_dir: str, data_dir: str | None, split: str, batch_size: int | None) -> None:
    """Score RUN_DIR's model.keras on one split of the shards, in one pass over the data.

    Scores every stored clip, and every video by the mean of its clips' softmax probabilities.
    Writes metrics.json, per_class.csv, predictions.csv (one row per video) and
    confusion_matrix.png to RUN_DIR/eval/SPLIT/ (RUN_DIR/eval/SPLIT-NAME/ for other shards, --data-dir
    .../NAME, so the run's own results stay) and prints the per-class table of videos.
    """
    from vidshard.models.evaluate import evaluate, format_table, summary_line

    metrics = evaluate(run_dir, data_dir, split, batch_size)
    click.echo(summary_line(metrics))
    click.echo(format_table(metrics))
    click.echo(f"results: {metrics['out_dir']}")
