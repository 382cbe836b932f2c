"""``vidshard audit``: one self-contained HTML page about an output sharded with --audit."""
from __future__ import annotations

import click

from vidshard.cli.store_options import DATA_DIR, object_store_options


@click.command("audit")
@click.argument("data_dir", type=DATA_DIR)
@object_store_options()
@click.option("--out", default="audit.html", show_default=True, metavar="FILE.html", help="Where to write the page.")
@click.option("--max-flagged", default=300, show_default=True, type=click.IntRange(min=0), metavar="N",
              help="Flagged videos and duplicate pairs shown with thumbnails; the rest are listed by id.")
def audit_command(data_dir: str, out: str, max_flagged: int) -> None:
    """Write an HTML report of DATA_DIR's quality.jsonl: counts, signal histograms, flagged videos with
    thumbnails, duplicate pairs side by side, and errors.jsonl (see docs/quality.md)."""
    from vidshard.quality.report import write_report  # matplotlib only when a report is asked for

    size = write_report(data_dir, out, max_flagged)
    click.echo(f"{out}: {size / 2**10:.0f} KiB")
