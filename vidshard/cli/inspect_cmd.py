"""``vidshard inspect``: what a shard directory holds, and with ``--verify`` whether it is intact."""
from __future__ import annotations

import click

from vidshard.cli.store_options import DATA_DIR, object_store_options
from vidshard.inspect import format_summary, summarize, verify


@click.command("inspect")
@click.argument("data_dir", type=DATA_DIR)
@object_store_options()
@click.option("--verify", "check", is_flag=True,
              help="Read every record (CRC checks), parse it and compare counts and shapes with dataset_info.json.")
def inspect_command(data_dir: str, check: bool) -> None:
    """Per-split counts, classes, shard sizes and bytes per clip of DATA_DIR.

    Exits with status 1 and one line per problem if a shard is missing or, with --verify, any
    record is corrupt or disagrees with dataset_info.json.
    """
    summary = summarize(data_dir)
    for line in format_summary(summary):
        click.echo(line)
    problems = verify(data_dir) if check else summary.problems()
    for problem in problems:
        click.echo(f"PROBLEM: {problem}", err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) found in {data_dir}")
    if check:
        total = sum(split.num_examples for split in summary.info.splits.values())
        click.echo(f"verified: {total} records, all CRCs, shapes and counts match dataset_info.json")
