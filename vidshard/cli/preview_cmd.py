"""``vidshard preview``: one stored clip as an animated GIF or a contact sheet of its frames."""
from __future__ import annotations

import click

from vidshard.cli.store_options import DATA_DIR, object_store_options


@click.command("preview")
@click.argument("data_dir", type=DATA_DIR)
@object_store_options()
@click.option("--split", default="train", show_default=True, help="Split to read from.")
@click.option("--index", default=0, show_default=True, type=int, help="Example number within the split (shard order).")
@click.option("--clip", default=0, show_default=True, type=int, help="Which of the example's clips.")
@click.option("--out", required=True, metavar="FILE",
              help="clip.gif for an animation (10 fps, as the tutorial's to_gif), or a contact sheet of the frames: "
                   "sheet.png, .jpg/.jpeg, .pdf or .svg. Its folder must exist.")
@click.option("--scale", type=click.IntRange(1, 16), default=1, show_default=True, metavar="N",
              help="Enlarge N times: every GIF pixel becomes NxN (nearest neighbour); sheet panels are N times larger.")
def preview_command(data_dir: str, split: str, index: int, clip: int, out: str, scale: int) -> None:
    """Write one clip of shard directory DATA_DIR to --out."""
    from vidshard.preview import preview  # matplotlib is imported only when a preview is asked for

    record = preview(data_dir, split, index, out, clip, scale)
    click.echo(f"{out}: {record.video_id} ({record.label_name}), clip {clip}, {record.frames.shape[1]} frames")
