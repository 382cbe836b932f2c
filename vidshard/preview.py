"""Look at one stored clip: an animated GIF (the tutorial's ``to_gif``) or a contact sheet.

The tutorial's ``to_gif`` writes frames at 10 fps with imageio; here Pillow (which matplotlib
already depends on) writes the GIF, and a matplotlib figure lays the clip's frames out on one
sheet with their source frame numbers, so padded frames (``-1``) are visible at a glance.  The
sheet is written in the format its suffix names (PNG, JPEG, PDF or SVG).  ``scale`` enlarges
small clips (a 32x32 GIF is hard to read): GIF pixels are repeated (nearest neighbour), sheet
panels are drawn ``scale`` times larger.
"""
from __future__ import annotations

import math
import os

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from vidshard.errors import ShardFormatError, VidshardError
from vidshard.format.info import DatasetInfo
from vidshard.format.schema import ClipRecord, parse_example
from vidshard.format.file_adapters import read_shard_record
from vidshard.format.splits import split_files

GIF_FPS = 10  #: the tutorial's to_gif frame rate
SHEET_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")


def load_example(data_dir: str, split: str, index: int) -> tuple[ClipRecord, DatasetInfo]:
    """The ``index``-th example of ``split`` in shard order (shard 0 first), and the dataset info."""
    info, paths = split_files(data_dir, split)
    split_info = info.splits[split]
    if not 0 <= index < split_info.num_examples:
        raise ShardFormatError(f"`index` {index} is out of range: split {split} has {split_info.num_examples} examples")
    offset = index
    for path, length in zip(paths, split_info.shard_lengths):
        if offset < length:
            return parse_example(read_shard_record(path, info, offset), info.encoding), info
        offset -= length
    raise ShardFormatError(f"shard lengths of split {split} add up to less than num_examples")


def enlarge(frames: np.ndarray, scale: int) -> np.ndarray:
    """Frames ``[T, H, W, 3]`` made ``scale`` times larger by repeating every pixel (nearest neighbour)."""
    return frames if scale == 1 else frames.repeat(scale, axis=1).repeat(scale, axis=2)


def save_gif(frames: np.ndarray, path: str, fps: int = GIF_FPS, scale: int = 1) -> None:
    """Write uint8 RGB frames ``[T, H, W, 3]`` as a looping GIF at ``fps`` frames per second, ``scale`` times larger."""
    images = [Image.fromarray(frame) for frame in enlarge(frames, scale)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)


def contact_sheet(record: ClipRecord, clip: int, split: str, columns: int = 5, scale: int = 1) -> Figure:
    """One clip's frames on a grid, each titled with its source frame number; the title names the split."""
    frames, indices = record.frames[clip], record.frame_indices[clip]
    rows = math.ceil(len(frames) / columns)
    cols = min(columns, len(frames))
    panel = 2.2 * scale  # inches per frame
    figure = Figure(figsize=(panel * cols, panel * rows * frames.shape[1] / frames.shape[2] + 0.6),
                    layout="constrained")
    figure.suptitle(f"{split}: {record.video_id} ({record.label_name}, label {record.label}), clip {clip}")
    axes = figure.subplots(rows, cols, squeeze=False)
    for position, ax in enumerate(axes.flat):
        ax.axis("off")
        if position < len(frames):
            ax.imshow(frames[position])
            source = int(indices[position])
            ax.set_title("padded" if source < 0 else f"frame {source}", fontsize=9)
    return figure


def preview(data_dir: str, split: str, index: int, out: str, clip: int = 0, scale: int = 1) -> ClipRecord:
    """Write clip ``clip`` of example ``index`` of ``split`` to ``out`` (.gif, or a sheet: .png, ...).

    ``out`` is checked (suffix, existing folder) before any record is read.
    """
    suffix = os.path.splitext(out)[1].lower()
    if suffix != ".gif" and suffix not in SHEET_SUFFIXES:
        raise VidshardError(f"`out` {out}: use .gif for an animation or {', '.join(SHEET_SUFFIXES)} for a contact sheet")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise VidshardError(f"`out` {out}: folder {folder} does not exist")
    if scale < 1:
        raise VidshardError(f"`scale` must be at least 1, got {scale}")
    record, _ = load_example(data_dir, split, index)
    if not 0 <= clip < record.frames.shape[0]:
        raise VidshardError(f"`clip` {clip} is out of range: the example holds {record.frames.shape[0]} clip(s)")
    if suffix == ".gif":
        save_gif(record.frames[clip], out, scale=scale)
    else:
        contact_sheet(record, clip, split, scale=scale).savefig(out, dpi=100)
    return record
