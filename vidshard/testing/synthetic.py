"""UCF101-shaped synthetic videos written with OpenCV, for the demo, the benchmark and tests.

Each class is a learnable motion pattern (a bright square moving in one direction, on a noisy
background), so that a model trained on a few clips per class beats chance by a clear margin,
and the files have UCF101's names (``UCF101/v_<Class>_g<GG>_c<CC>.avi``), codecs and frame rate.
"""
from __future__ import annotations

import math
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

#: Class names of the synthetic set: motion directions, 45 degrees apart.
MOTION_CLASSES: tuple[str, ...] = (
    "MoveRight", "MoveDownRight", "MoveDown", "MoveDownLeft",
    "MoveLeft", "MoveUpLeft", "MoveUp", "MoveUpRight",
)


@dataclass(frozen=True)
class VideoSpec:
    """What one synthetic video looks like."""

    total_frames: int = 175
    width: int = 320
    height: int = 240
    fps: float = 25.0
    fourcc: str = "XVID"
    color: bool = True


def direction_of(class_name: str, class_index: int, num_classes: int) -> float:
    """Motion angle (radians, clockwise in image coordinates) of a class.

    Names of :data:`MOTION_CLASSES` move the way they say (45 degrees apart); other names split
    the turn evenly by their index.
    """
    if class_name in MOTION_CLASSES:
        return 2 * math.pi * MOTION_CLASSES.index(class_name) / len(MOTION_CLASSES)
    return 2 * math.pi * class_index / max(num_classes, 1)


def motion_frames(angle: float, spec: VideoSpec, seed: int) -> Iterator[np.ndarray]:
    """Yield BGR (or gray) uint8 frames of a square moving at ``angle`` (see :func:`direction_of`).

    The start point, speed and background noise vary with ``seed`` so clips of one class are
    not identical.
    """
    rng = np.random.default_rng(seed)
    dx, dy = math.cos(angle), math.sin(angle)
    side = max(4, min(spec.width, spec.height) // 6)
    speed = rng.uniform(0.6, 1.2) * min(spec.width, spec.height) / max(spec.total_frames, 1) * 2
    x0 = rng.uniform(side, spec.width - side)
    y0 = rng.uniform(side, spec.height - side)
    background = rng.integers(0, 60, size=(spec.height, spec.width, 3), dtype=np.uint8)
    color = tuple(int(c) for c in rng.integers(150, 256, size=3))
    for t in range(spec.total_frames):
        frame = background.copy()
        # Wrap around the frame so the square stays visible for the whole clip.
        cx = int((x0 + dx * speed * t) % spec.width)
        cy = int((y0 + dy * speed * t) % spec.height)
        cv2.rectangle(frame, (cx - side // 2, cy - side // 2), (cx + side // 2, cy + side // 2), color, -1)
        yield frame if spec.color else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def write_video(path: str | os.PathLike, frames: Iterator[np.ndarray], spec: VideoSpec) -> Path:
    """Write ``frames`` to an AVI with OpenCV's VideoWriter; raise if the codec is unavailable."""
    path = Path(path)
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*spec.fourcc), spec.fps, (spec.width, spec.height), spec.color
    )
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {spec.fourcc} video to {path}")
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    return path


def ucf_member_name(class_name: str, group: int, clip: int, prefix: str = "UCF101/") -> str:
    """The UCF101 member name of one video, e.g. ``UCF101/v_Archery_g01_c02.avi``."""
    return f"{prefix}v_{class_name}_g{group:02d}_c{clip:02d}.avi"


def make_ucf_zip(
    zip_path: str | os.PathLike,
    classes: Sequence[str] = MOTION_CLASSES[:4],
    groups: int = 3,
    clips_per_group: int = 2,
    spec: VideoSpec = VideoSpec(),
    seed: int = 0,
    extra_members: dict[str, bytes] | None = None,
) -> list[str]:
    """Write a UCF101-shaped zip of motion videos and return its video member names.

    Members are stored uncompressed, as in the real UCF101 zip.  ``extra_members`` adds other
    members verbatim (directories, text files, corrupt videos) for tests.
    """
    names: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("UCF101/", b"")
        for class_index, class_name in enumerate(classes):
            for group in range(1, groups + 1):
                for clip in range(1, clips_per_group + 1):
                    name = ucf_member_name(class_name, group, clip)
                    video_seed = seed * 1_000_003 + class_index * 10_007 + group * 101 + clip
                    local = write_video(
                        Path(tmp) / "v.avi", motion_frames(direction_of(class_name, class_index, len(classes)), spec, video_seed), spec
                    )
                    zf.write(local, name)
                    names.append(name)
        for name, data in (extra_members or {}).items():
            zf.writestr(name, data)
    return names
