"""Per-video quality signals, measured on the frames the decode pass already holds (no second decode).

Which frames: exactly the frames a video's clips store (every clip of the video, each source frame
once, in source order), before they are encoded, and only inside the letterbox's content box (the
zero padding that ``resize_with_pad`` adds is left out).  The decode pass seeks to keyframes and
converts only the frames the clips keep, so these are the only decoded pixels there are; the
signals are therefore a sample of the video: a black or frozen stretch between two sampled frames,
or outside the span the clips cover, is not seen (docs/quality.md measures what that costs).  The
frames are a pure function of the clip spec, the seed and the video, so the signals are
deterministic.

Per frame (luma ``Y`` of BT.601, float32): mean and standard deviation; near-black (at least
:data:`BLACK_SHARE` of pixels at or below :data:`BLACK_LUMA`, FFmpeg ``blackdetect``'s rule);
near-uniform (spatial standard deviation below :data:`UNIFORM_STD`); Immerkaer's fast noise
estimate (J. Immerkaer, "Fast Noise Variance Estimation", CVIU 64(2), 1996): the standard deviation
of the image convolved with the difference of two Laplacians; blur as the variance of the Laplacian
(Pech-Pacheco et al., 2000), and ``sharpness``, that variance over the luma variance, which a dark
or low-contrast video does not lower; blockiness: the mean absolute luma step across the source's
8-pixel block boundaries (mapped through the resize) over the mean step elsewhere, about 1 for a
clean picture and 2 or more for heavy JPEG/MPEG blocking (DCT codecs code 8x8 blocks).  Between consecutive stored frames: mean absolute difference of luma;
a pair below the frozen threshold is "no change above the codec's noise".
"""
from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import cv2
import numpy as np

from vidshard.quality.hashing import phash

#: Luma at or below which a pixel counts as black (FFmpeg blackdetect's default pixel threshold, 0.10 of 255).
BLACK_LUMA = 25.5
#: Share of black pixels that makes a frame near-black (blackdetect's picture threshold).
BLACK_SHARE = 0.98
#: Spatial luma standard deviation below which a frame is near-uniform (blank: one colour, any colour).
UNIFORM_STD = 4.0
#: Mean absolute luma difference between consecutive stored frames below which they are the same picture.
FROZEN_DELTA = 0.5
#: Frames of a video that are perceptually hashed (spread evenly over its non-uniform stored frames).
HASHED_FRAMES = 4

_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def luma(frame: np.ndarray) -> np.ndarray:
    """BT.601 luma of a uint8 RGB (or already gray) frame, float32."""
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    return gray.astype(np.float32)


def immerkaer_sigma(gray: np.ndarray) -> float:
    """Immerkaer's estimate of the standard deviation of additive white noise (luma levels)."""
    height, width = gray.shape
    if height < 3 or width < 3:
        return 0.0
    response = cv2.filter2D(gray, cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_REPLICATE)[1:-1, 1:-1]
    return float(cv2.norm(response, cv2.NORM_L1) * math.sqrt(math.pi / 2) / (6.0 * (width - 2) * (height - 2)))


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the Laplacian: low for a blurred (or blocky, detail-free) picture."""
    return float(cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_32F))[1][0, 0] ** 2)


@functools.lru_cache(maxsize=64)
def _boundary_weights(length: int, scale: float) -> np.ndarray | None:
    """``[2, length]`` averaging weights of the steps within half a stored pixel of a source block
    boundary, and of the others; None if all or none are."""
    source = (np.arange(length) + 0.5) / scale  # where each step lies, in source pixels
    near = np.abs(source / 8 - np.round(source / 8)) * 8 * scale < 0.5
    if not near.any() or near.all():
        return None
    return np.stack([near / near.sum(), ~near / (~near).sum()]).astype(np.float32)


def _boundary_ratio(profile: np.ndarray, scale: float) -> float:
    """Mean of ``profile`` (steps between neighbouring columns or rows) at the source's block boundaries
    over its mean elsewhere; ``scale`` is stored pixels per source pixel."""
    weights = _boundary_weights(len(profile), scale)
    if weights is None:
        return 1.0
    near, far = (weights @ profile).tolist()
    return near / max(far, 1e-6)


def blockiness(gray: np.ndarray, scale: float = 1.0) -> float:
    """Luma steps across the source's 8x8 block grid over steps elsewhere (see the module docstring)."""
    if min(gray.shape) < 3:
        return 1.0
    across = cv2.reduce(cv2.absdiff(gray[:, 1:], gray[:, :-1]), 0, cv2.REDUCE_AVG).ravel()
    down = cv2.reduce(cv2.absdiff(gray[1:], gray[:-1]), 1, cv2.REDUCE_AVG).ravel()
    return (_boundary_ratio(across, scale) + _boundary_ratio(down, scale)) / 2


def frame_signals(gray: np.ndarray, scale: float = 1.0) -> dict[str, float | bool]:
    """The per-frame measurements of one luma frame (see the module docstring); ``scale``: stored
    pixels per source pixel, which places the source's block grid."""
    mean, std = (float(value[0, 0]) for value in cv2.meanStdDev(gray))
    blur = laplacian_variance(gray)
    return {"mean": mean, "std": std,
            "black": bool(np.count_nonzero(gray <= BLACK_LUMA) >= BLACK_SHARE * gray.size),
            "noise": immerkaer_sigma(gray), "blur": blur, "sharpness": blur / max(std * std, 1.0),
            "blockiness": blockiness(gray, scale)}


def stored_frames(frames: np.ndarray, indices: np.ndarray, times: np.ndarray | None,
                  box: tuple[int, int, int, int] | None) -> tuple[list[np.ndarray], list[int], list[float]]:
    """Each distinct stored source frame once, in source order, as luma cropped to ``box``.

    ``frames``: ``[clips, n, H, W, 3]``; ``indices``: ``[clips, n]`` (-1 where padded); ``box``:
    ``(top, left, height, width)`` of the content inside the letterbox, None for the whole frame.
    Returns the luma frames, their source numbers and their times (seconds, -1 where unknown).
    """
    seen: dict[int, tuple[int, int]] = {}
    for clip, row in enumerate(np.asarray(indices)):
        for position, index in enumerate(row.tolist()):
            if index >= 0 and index not in seen:
                seen[index] = (clip, position)
    order = sorted(seen)
    top, left, height, width = box if box is not None else (0, 0, frames.shape[2], frames.shape[3])
    grays = [luma(frames[seen[i][0], seen[i][1], top:top + height, left:left + width]) for i in order]
    when = [float(times[seen[i]]) if times is not None else -1.0 for i in order]
    return grays, order, when


def _longest_frozen(diffs: Sequence[float], indices: Sequence[int], times: Sequence[float], fps: float,
                    delta: float) -> tuple[float, int]:
    """(seconds, source frames) of the longest run of consecutive stored frames that do not change."""
    best_seconds, best_frames = 0.0, 0
    start = 0
    for position in range(1, len(indices) + 1):
        if position < len(indices) and diffs[position - 1] < delta:
            continue
        last = position - 1
        if last > start:
            frames = indices[last] - indices[start]
            seconds = (times[last] - times[start]) if times[start] >= 0 and times[last] >= 0 else \
                (frames / fps if fps else 0.0)
            if seconds > best_seconds or (seconds == best_seconds and frames > best_frames):
                best_seconds, best_frames = seconds, frames
        start = position
    return round(float(best_seconds), 4), int(best_frames)


def _rounded(value: float, digits: int = 4) -> float:
    return round(float(value), digits)


def video_signals(frames: np.ndarray, indices: np.ndarray, times: np.ndarray | None, fps: float,
                  box: tuple[int, int, int, int] | None = None, source_width: int = 0,
                  frozen_delta: float = FROZEN_DELTA) -> dict[str, Any]:
    """Every pixel signal of one video, from its stored clips (see the module docstring).

    Keys: ``frames_seen``; ``luma_mean``, ``luma_spread`` (mean of frame means and of frame
    standard deviations); ``black_share``, ``uniform_share`` (of frames seen; uniform counts blank frames that are not black); ``frozen_seconds``,
    ``frozen_frames`` (longest run of consecutive seen frames without change, in seconds and in
    source frames spanned; near-uniform frames, black ones included, never count as frozen: a black
    stretch is ``black``); ``motion`` (mean absolute luma difference of consecutive seen frames);
    ``noise`` (median Immerkaer sigma); ``blur`` (median Laplacian variance of non-uniform frames,
    0 if none), ``sharpness`` (median of its ratio to the luma variance), ``blockiness`` (median;
    ``source_width`` places the block grid, 0: the stored frames are the source's size); ``phash`` (hex pHashes of up to :data:`HASHED_FRAMES` non-uniform frames).
    """
    grays, order, when = stored_frames(frames, indices, times, box)
    if not grays:
        return {"frames_seen": 0}
    scale = grays[0].shape[1] / source_width if source_width else 1.0
    per_frame = [frame_signals(gray, scale) for gray in grays]
    column = {name: np.asarray([signal[name] for signal in per_frame]) for name in per_frame[0]}
    uniform = (column["std"] < UNIFORM_STD).tolist()
    diffs = [cv2.norm(a, b, cv2.NORM_L1) / a.size for a, b in zip(grays, grays[1:])]
    # A pair with a uniform frame never counts as frozen (a black stretch is black, not frozen).
    still = [diff if not (uniform[k] or uniform[k + 1]) else float("inf") for k, diff in enumerate(diffs)]
    frozen_seconds, frozen_frames = _longest_frozen(still, order, when, fps, frozen_delta)
    textured = [position for position, flat in enumerate(uniform) if not flat]
    picks = [textured[round(k * (len(textured) - 1) / max(HASHED_FRAMES - 1, 1))]
             for k in range(min(HASHED_FRAMES, len(textured)))]
    return {
        "frames_seen": len(grays),
        "luma_mean": _rounded(column["mean"].mean(), 2),
        "luma_spread": _rounded(column["std"].mean(), 2),
        "black_share": _rounded(column["black"].mean(), 3),
        "uniform_share": _rounded(((column["std"] < UNIFORM_STD) & ~column["black"]).mean(), 3),
        "frozen_seconds": frozen_seconds,
        "frozen_frames": frozen_frames,
        "motion": _rounded(np.mean(diffs), 3) if diffs else 0.0,
        "noise": _rounded(np.median(column["noise"]), 3),
        "blur": _rounded(np.median(column["blur"][textured]), 2) if textured else 0.0,
        "sharpness": _rounded(np.median(column["sharpness"][textured]), 3) if textured else 0.0,
        "blockiness": _rounded(np.median(column["blockiness"][textured]), 3) if textured else 0.0,
        "phash": [f"{phash(grays[p]):016x}" for p in dict.fromkeys(picks)],
    }
