"""Train-time augmentation: the names, their parameters, and the NumPy implementation.

Two augmentations, each drawn once per clip and applied to all its frames alike, so the motion
between frames is kept:

- ``crop``: scale jitter.  A box of a random area fraction in [:data:`CROP_AREA`] of the frame,
  with the frame's aspect ratio, at a random position, resized back to the stored height and
  width (bilinear).
- ``flip``: the clip mirrored left-right, with probability 1/2.

Both readers apply them after their cache (so every epoch draws anew) and only to training
data.  Each clip's draw comes from four uniforms in [0, 1) (:func:`draw`); the NumPy reader
takes them from a seeded ``numpy.random.Generator``, the tf.data reader from stateless
TensorFlow ops keyed by its per-example random value, with the same formulas, so the two
readers augment alike in distribution but not pixel for pixel.  NumPy and OpenCV only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np

from vidshard.errors import VidshardError

#: The augmentation names, in the order they are applied: crop first, then flip.
AUGMENTATIONS = ("crop", "flip")
#: The crop box's area as a fraction of the frame's: drawn uniformly from this range.
CROP_AREA = (0.5, 1.0)
#: How many uniforms in [0, 1) one clip's draw takes (area, top, left, flip).
UNIFORMS_PER_CLIP = 4


def parse_augment(spec: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"flip,crop"`` (or a sequence of names) as a tuple of names in :data:`AUGMENTATIONS` order.

    Empty, ``None`` or ``"none"`` is no augmentation.  An unknown name raises one
    :class:`VidshardError` naming the valid ones.
    """
    if spec is None:
        return ()
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else [str(n).strip() for n in spec]
    names = [n for n in names if n and n != "none"]
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise VidshardError(f"unknown augmentation {', '.join(map(repr, unknown))}: valid ones are "
                            f"{', '.join(AUGMENTATIONS)} (comma-separated)")
    return tuple(n for n in AUGMENTATIONS if n in names)


@dataclass(frozen=True)
class Draw:
    """One clip's augmentation: a crop box ``(top, left, height, width)`` or None, and whether to flip."""

    box: tuple[int, int, int, int] | None
    flip: bool


def crop_box(area_u: float, top_u: float, left_u: float, height: int, width: int) -> tuple[int, int, int, int]:
    """The crop box from three uniforms in [0, 1): area fraction in :data:`CROP_AREA`, then position."""
    low, high = CROP_AREA
    side = math.sqrt(low + (high - low) * area_u)
    h, w = max(1, round(height * side)), max(1, round(width * side))
    top = min(int(top_u * (height - h + 1)), height - h)
    left = min(int(left_u * (width - w + 1)), width - w)
    return top, left, h, w


def draw(uniforms: np.ndarray, augment: tuple[str, ...], height: int, width: int) -> Draw:
    """One clip's :class:`Draw` from :data:`UNIFORMS_PER_CLIP` uniforms in [0, 1)."""
    area_u, top_u, left_u, flip_u = (float(u) for u in uniforms)
    box = crop_box(area_u, top_u, left_u, height, width) if "crop" in augment else None
    return Draw(box, "flip" in augment and flip_u < 0.5)


def apply(frames: np.ndarray, how: Draw) -> None:
    """Augment ``frames`` (uint8 ``[T, H, W, 3]``) in place: crop and resize back (bilinear), then flip."""
    if how.box is not None:
        top, left, h, w = how.box
        height, width = frames.shape[1:3]
        for t in range(frames.shape[0]):
            frames[t] = cv2.resize(np.ascontiguousarray(frames[t, top:top + h, left:left + w]), (width, height),
                                   interpolation=cv2.INTER_LINEAR)
    if how.flip:
        frames[:] = frames[:, :, ::-1]
