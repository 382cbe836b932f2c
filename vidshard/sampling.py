"""Which source frames make a clip: seeded, order-free starts and the tutorial's frame stepping.

The tutorial draws ``start = random.randint(0, max_start + 1)``, which can start one frame too
late (and then pads a real frame with zeros), and depends on the global random state, so a clip
changes with worker and order.  Here a clip's start is uniform over every valid start and is a
pure function of (seed, video id, clip index, true frame count).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

PADDED = -1  #: frame index stored for positions past the end of a short video


@dataclass(frozen=True)
class ClipSpec:
    """How clips are cut from every video (defaults are the tutorial's)."""

    n_frames: int = 10
    frame_step: int = 15
    height: int = 224
    width: int = 224
    clips_per_video: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_frames", "frame_step", "height", "width", "clips_per_video"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    @property
    def span(self) -> int:
        """Source frames one clip covers, first to last: ``1 + (n_frames - 1) * frame_step``."""
        return 1 + (self.n_frames - 1) * self.frame_step


def _uniform(seed: int, video_id: str, clip: int, choices: int) -> int:
    """A stable draw in ``range(choices)`` keyed by (seed, video, clip); never Python's salted hash()."""
    digest = hashlib.blake2b(f"{seed}\0{video_id}\0{clip}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % choices


def clip_starts(video_id: str, total_frames: int, spec: ClipSpec) -> list[int]:
    """First source frame of each of the video's clips.

    Uniform over the ``total_frames - span + 1`` valid starts; 0 when the video is shorter than
    one clip (the rest is padded, as in the tutorial).
    """
    valid_starts = total_frames - spec.span + 1
    if valid_starts <= 1:
        return [0] * spec.clips_per_video
    return [_uniform(spec.seed, video_id, clip, valid_starts) for clip in range(spec.clips_per_video)]


def clip_indices(video_id: str, total_frames: int, spec: ClipSpec) -> np.ndarray:
    """Source frame index of every frame of every clip, ``int64 [clips, n_frames]``, -1 where padded."""
    starts = np.asarray(clip_starts(video_id, total_frames, spec), np.int64)
    indices = starts[:, None] + np.arange(spec.n_frames, dtype=np.int64)[None, :] * spec.frame_step
    indices[indices >= total_frames] = PADDED
    return indices
