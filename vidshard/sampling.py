"""Which source frames make a clip: by frame step (the tutorial's), by time, or by segments (TSN).

The tutorial draws ``start = random.randint(0, max_start + 1)``, which can start one frame too
late (and then pads a real frame with zeros), and depends on the global random state, so a clip
changes with worker and order.  Here every choice is a pure function of (seed, video id, clip
index, the video's true frame count and, for time sampling, its frame rate):

* ``step`` (default, the tutorial's): ``n_frames`` frames ``frame_step`` source frames apart.
* ``time``: ``n_frames`` frames ``1 / fps`` seconds apart, each the source frame nearest its
  time, so a clip covers the same time in a 25 fps and a 29.97 fps video.
* ``segments`` (TSN): the video is cut into ``n_frames`` equal segments and one frame is taken
  from each, so a clip covers the whole video.
* ``all``: no clip is cut at sharding time.  Every ``frame_step``-th frame of the video (or
  segment) is stored, or, with ``fps``, the frame nearest every ``1 / fps`` seconds, variable
  length and unpadded (:func:`whole_indices`); readers draw an ``n_frames`` clip of consecutive
  stored frames at read time (:func:`draw_stored`), a fresh one per epoch.

Training clips (split ``train``) start at seeded uniform positions (segments: seeded offsets
within each segment).  Evaluation clips (every other split) are placed deterministically, spread
uniformly over the video (segments: centred in their share of each segment), when ``eval_clips``
is set or the sampling is not ``step``; ``step`` without ``eval_clips`` keeps the tutorial's
seeded random starts on every split, so its outputs keep their bytes.

Frame times.  A constant-rate video's frame ``i`` is at ``i / fps``, and the index arithmetic
above is exact.  A variable-rate video (phone footage) is not: :func:`clip_indices` then takes
``frame_times`` (each frame's presentation time, read from the stream by :mod:`vidshard.decode`)
and time sampling picks, for each clip position, the frame nearest the asked time.

Segments.  An example may be a segment of a longer video, named by its id in the Media Fragments
form ``path#t=START,END`` (seconds; :func:`segment_id`, :func:`parse_segment`).  Every sampling
mode then works inside the segment's frames (``window``): the same rules on the frames whose
times lie in ``[START, END)``, stored with their frame numbers in the whole video.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

import numpy as np

from vidshard.quality.flags import Audit

PADDED = -1  #: frame index stored for positions past the end of a short video
SAMPLINGS = ("step", "time", "segments", "all")
DRAWS = ("step", "segments")  #: how readers draw a clip from a stored sequence (``all`` sampling)
TRAIN_SPLIT = "train"  #: the split whose clips are drawn at random; every other split is evaluated


@dataclass(frozen=True)
class ClipSpec:
    """How clips are cut from every video (defaults are the tutorial's).

    ``fps`` is the sampling rate of ``time`` sampling (``--clip-seconds S`` is ``fps = n_frames / S``);
    ``eval_clips`` is the number of clips of every split but ``train`` (``None``: ``clips_per_video``).
    With ``sampling="all"``, ``frame_step`` / ``fps`` say which frames are stored, ``n_frames``
    is the length of the clips readers draw from them, and ``draw`` (:data:`DRAWS`) how: ``step``,
    consecutive stored frames (stored at ``fps``, that is time sampling at ``fps``), or
    ``segments``, TSN over the whole stored sequence.
    """

    n_frames: int = 10
    frame_step: int = 15
    height: int = 224
    width: int = 224
    clips_per_video: int = 1
    seed: int = 0
    sampling: str = "step"
    fps: float | None = None
    eval_clips: int | None = None
    draw: str = "step"

    def __post_init__(self) -> None:
        for name in ("n_frames", "frame_step", "height", "width", "clips_per_video"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"`sampling` must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        if self.sampling == "time" and self.fps is None:
            raise ValueError("`fps` is needed by time sampling")
        if self.sampling not in ("time", "all") and self.fps is not None:
            raise ValueError(f"`fps` is for time sampling only (and the stored rate of all sampling), not {self.sampling}")
        if self.sampling == "all" and self.fps is not None and self.frame_step != 1:
            raise ValueError("all sampling stores every `frame_step`-th frame or the frames at `fps`, not both")
        if self.draw not in DRAWS:
            raise ValueError(f"`draw` must be one of {', '.join(DRAWS)}, got {self.draw!r}")
        if self.draw != "step" and self.sampling != "all":
            raise ValueError(f"`draw` applies to `sampling` all, not {self.sampling}")
        if self.sampling == "all" and (self.clips_per_video != 1 or self.eval_clips is not None):
            raise ValueError("`sampling` all stores one sequence per video: readers draw the clips "
                             "(`clips_per_video` and `eval_clips` do not apply)")
        if self.fps is not None and not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"`fps` must be a positive number, got {self.fps!r}")
        if self.eval_clips is not None and (not isinstance(self.eval_clips, int) or self.eval_clips < 1):
            raise ValueError(f"`eval_clips` must be a positive integer, got {self.eval_clips!r}")

    @property
    def span(self) -> int:
        """Source frames one ``step`` clip covers, first to last: ``1 + (n_frames - 1) * frame_step``."""
        return 1 + (self.n_frames - 1) * self.frame_step

    @property
    def needs_timing(self) -> bool:
        """Whether clips depend on a video's frame rate and length beyond the step rule: then each
        record stores its video's source fps and frame count (format version 4)."""
        return self.sampling != "step"

    @property
    def places_eval_clips(self) -> bool:
        """Whether evaluation splits get deterministic, uniformly spread clips."""
        return self.eval_clips is not None or self.sampling != "step"

    def describe(self) -> str:
        """How many clips of how many frames, and how their frames are chosen, in words."""
        if self.sampling == "all":
            kept = f"at {self.fps:g} fps" if self.fps is not None else (
                "every frame" if self.frame_step == 1 else f"one frame in {self.frame_step}")
            how = "consecutive" if self.draw == "step" else "one from each of as many segments (TSN)"
            return f"{kept} of each video, unpadded; clips of {self.n_frames} stored frames ({how}) drawn when reading"
        if self.sampling == "time":
            how = f"at {self.fps:g} fps"
        elif self.sampling == "segments":
            how = "one from each of as many segments (TSN)"
        else:
            how = f"every {self.frame_step} frames"
        line = f"{self.clips_per_video} clip(s) of {self.n_frames} frames {how}"
        if self.eval_clips is not None:
            line += f"; {self.eval_clips} spread uniformly per video outside train"
        elif self.places_eval_clips:
            line += "; spread uniformly outside train"
        return line

    def clips_in(self, split: str) -> int:
        """Clips stored per video of ``split``."""
        if split != TRAIN_SPLIT and self.eval_clips is not None:
            return self.eval_clips
        return self.clips_per_video


@dataclass(frozen=True)
class EncodeSettings:
    """How clips are cut and stored: the clip spec plus the image encoding (``jpeg``/``png``) and its quality.

    Not Beam's: the CLI, the demo and the Python API build it, the pipeline carries it to the workers.
    """

    clip_spec: ClipSpec
    encoding: str
    quality: int
    audit: Audit | None = None  #: measure every video's quality signals (quality.jsonl), and leave out what it excludes


def _uniform(seed: int, video_id: str, clip: int | str, choices: int) -> int:
    """A stable draw in ``range(choices)`` keyed by (seed, video, clip); never Python's salted hash()."""
    digest = hashlib.blake2b(f"{seed}\0{video_id}\0{clip}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % choices


def _spread(count: int, choices: int) -> list[int]:
    """``count`` positions spread uniformly over ``range(choices)``, ends included; the middle for one."""
    if count == 1:
        return [(choices - 1) // 2]
    return [(j * (choices - 1)) // (count - 1) for j in range(count)]


def _offsets(spec: ClipSpec, source_fps: float | None) -> np.ndarray:
    """Source-frame offset of each clip position from the clip's first frame (step and time)."""
    positions = np.arange(spec.n_frames, dtype=np.int64)
    if spec.sampling == "step":
        return positions * spec.frame_step
    if source_fps is None or not math.isfinite(source_fps) or source_fps <= 0:
        raise ValueError(f"time sampling needs the video's frame rate, got {source_fps!r}")
    # The source frame nearest each time k / fps after the start; floor(x + 0.5), not Python's
    # round-half-to-even, so a tie always goes the same way.
    return np.floor(positions * (source_fps / spec.fps) + 0.5).astype(np.int64)


def clip_starts(video_id: str, total_frames: int, spec: ClipSpec, split: str = TRAIN_SPLIT,
                source_fps: float | None = None) -> list[int]:
    """First source frame of each of the video's clips in ``split`` (``step`` and ``time`` sampling).

    Training: uniform over the ``total_frames - span + 1`` valid starts, seeded; evaluation (see
    :attr:`ClipSpec.places_eval_clips`): spread uniformly over them.  0 when the video is shorter
    than one clip (the rest is padded, as in the tutorial).
    """
    span = int(_offsets(spec, source_fps)[-1]) + 1
    count = spec.clips_in(split)
    valid_starts = total_frames - span + 1
    if valid_starts <= 1:
        return [0] * count
    if split != TRAIN_SPLIT and spec.places_eval_clips:
        return _spread(count, valid_starts)
    return [_uniform(spec.seed, video_id, clip, valid_starts) for clip in range(count)]


def _segment_indices(video_id: str, total_frames: int, spec: ClipSpec, split: str) -> np.ndarray:
    """TSN: one frame from each of ``n_frames`` equal segments; seeded for training, centred for evaluation."""
    count = spec.clips_in(split)
    bounds = [(i * total_frames) // spec.n_frames for i in range(spec.n_frames + 1)]
    indices = np.empty((count, spec.n_frames), np.int64)
    for i in range(spec.n_frames):
        first, length = bounds[i], bounds[i + 1] - bounds[i]
        if length == 0:  # fewer frames than segments: the segment holds no frame of its own
            indices[:, i] = min(first, total_frames - 1)
        elif split != TRAIN_SPLIT:  # places_eval_clips always holds for segments
            # Clip j of K takes the middle of the j-th of K equal parts of the segment: the centre for K=1.
            indices[:, i] = [first + ((2 * j + 1) * length) // (2 * count) for j in range(count)]
        else:
            indices[:, i] = [first + _uniform(spec.seed, video_id, f"{clip}:{i}", length) for clip in range(count)]
    return indices


def _nearest(times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of the frame nearest each target time; a tie goes to the later frame (as ``floor(x + 0.5)``).

    Times within a nanosecond count as a tie, so float noise (2.6 - 2.5 > 2.5 - 2.4) cannot break one.
    """
    after = np.clip(np.searchsorted(times, targets, side="left"), 1, len(times) - 1)
    before = after - 1
    return np.where(times[after] - targets <= targets - times[before] + 1e-9, after, before)


def _timed_indices(video_id: str, times: np.ndarray, spec: ClipSpec, split: str) -> np.ndarray:
    """Time sampling on a variable-rate video: positions ``k / fps`` after the clip's first frame.

    The rules of :func:`clip_starts` in time: a valid start is a frame from which the clip's last
    asked time still falls on the video (within half its last frame interval); training draws one
    of them, evaluation spreads clips over them; each position takes the frame nearest its time,
    and positions past the video's end are padded.
    """
    count = spec.clips_in(split)
    if len(times) == 1:
        row = np.full(spec.n_frames, PADDED, np.int64)
        row[0] = 0
        return np.tile(row, (count, 1))
    end = times[-1] + (times[-1] - times[-2]) / 2
    length = (spec.n_frames - 1) / spec.fps
    valid = np.flatnonzero(times + length <= end)
    if len(valid) <= 1:
        starts = [0] * count
    elif split != TRAIN_SPLIT and spec.places_eval_clips:
        starts = [int(valid[j]) for j in _spread(count, len(valid))]
    else:
        starts = [int(valid[_uniform(spec.seed, video_id, clip, len(valid))]) for clip in range(count)]
    targets = times[np.asarray(starts)][:, None] + np.arange(spec.n_frames)[None, :] / spec.fps
    indices = _nearest(times, targets).astype(np.int64)
    indices[targets > end] = PADDED
    return indices


def clip_indices(video_id: str, total_frames: int, spec: ClipSpec, split: str = TRAIN_SPLIT,
                 source_fps: float | None = None, frame_times: np.ndarray | None = None,
                 window: tuple[int, int] | None = None) -> np.ndarray:
    """Source frame index of every frame of every clip, ``int64 [clips, n_frames]``, -1 where padded.

    ``source_fps`` (the video's frame rate) is needed by ``time`` sampling only.  ``frame_times``
    (seconds, one per frame, increasing) is given for a variable-rate video: time sampling then
    follows them instead of ``index / source_fps``.  ``window`` ``(first, stop)`` restricts the
    clips to frames ``first .. stop - 1`` (a segment); indices stay those of the whole video.
    """
    first, stop = window if window is not None else (0, total_frames)
    frames = stop - first
    if frames < 1:
        return np.full((spec.clips_in(split), spec.n_frames), PADDED, np.int64)
    if spec.sampling == "all":
        return whole_indices(total_frames, spec, source_fps, frame_times, (first, stop))[None, :]
    if spec.sampling == "segments":
        indices = _segment_indices(video_id, frames, spec, split)
    elif spec.sampling == "time" and frame_times is not None:
        indices = _timed_indices(video_id, np.asarray(frame_times, np.float64)[first:stop], spec, split)
    else:
        starts = np.asarray(clip_starts(video_id, frames, spec, split, source_fps), np.int64)
        indices = starts[:, None] + _offsets(spec, source_fps)[None, :]
        indices[indices >= frames] = PADDED
    indices[indices != PADDED] += first
    return indices


def whole_indices(total_frames: int, spec: ClipSpec, source_fps: float | None = None,
                  frame_times: np.ndarray | None = None, window: tuple[int, int] | None = None) -> np.ndarray:
    """The frames ``all`` sampling stores, int64 ``[L]``: every ``frame_step``-th frame of the window
    from its first, or, with ``spec.fps``, the frame nearest each ``k / fps`` seconds after the
    window's first frame (by ``frame_times`` when given, else ``index / source_fps``), each once."""
    first, stop = window if window is not None else (0, total_frames)
    if spec.fps is None:
        return np.arange(first, stop, spec.frame_step, dtype=np.int64)
    if frame_times is not None:
        times = np.asarray(frame_times, np.float64)[first:stop]
    elif source_fps:
        times = np.arange(first, stop) / float(source_fps)
    else:
        raise ValueError(f"all sampling at an fps needs the video's frame rate, got {source_fps!r}")
    if len(times) == 1:
        return np.array([first], np.int64)
    end = times[-1] + (times[-1] - times[-2]) / 2
    targets = times[0] + np.arange(int(np.floor((end - times[0]) * spec.fps)) + 1) / spec.fps
    targets = targets[targets <= end]
    return np.unique(_nearest(times, targets)).astype(np.int64) + first


def draw_stored(video_id: str, stored: int, spec: ClipSpec, key: int | None) -> np.ndarray:
    """Positions in a stored sequence (``all`` sampling) of the ``n_frames``-frame clip a reader takes,
    int64 ``[n_frames]``, -1 past the sequence's end.

    ``spec.draw`` ``step``: the rule of :func:`clip_starts` on the stored frames, one apart;
    ``segments``: the TSN rule of :func:`clip_indices` on the stored sequence.  ``key`` (a
    reader's seeded, per-epoch draw) seeds the training draw, so each epoch gets a fresh clip;
    ``key=None`` takes the evaluation clip, centred.
    """
    rule = ClipSpec(n_frames=spec.n_frames, frame_step=1, height=spec.height, width=spec.width,
                    seed=0 if key is None else key, eval_clips=1, sampling=spec.draw)
    return clip_indices(video_id, stored, rule, TRAIN_SPLIT if key is not None else "eval")[0]


#: ``path#t=START,END`` (either bound may be left out, as Media Fragments allow: ``#t=10``, ``#t=,20``).
_FRAGMENT = re.compile(r"(?P<path>.*)#t=(?:npt:)?(?P<start>[0-9.]*)(?:,(?P<end>[0-9.]*))?")


def _seconds(value: float) -> str:
    """A time as the shortest decimal to the millisecond: ``10``, ``2.5``, ``0.125``."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def segment_id(path: str, start: float | None, end: float | None) -> str:
    """The stable id of a segment of ``path``: ``path#t=START,END`` (``path`` itself for the whole video)."""
    if start is None and end is None:
        return path
    return f"{path}#t={'' if start is None else _seconds(start)}" + ("" if end is None else f",{_seconds(end)}")


def parse_segment(video_id: str) -> tuple[str, float | None, float | None]:
    """``(path, start, end)`` of an id made by :func:`segment_id`; ``(video_id, None, None)`` for a whole video."""
    match = _FRAGMENT.fullmatch(video_id)
    if match is None or (not match["start"] and not match["end"]):
        return video_id, None, None
    try:
        start = float(match["start"]) if match["start"] else None
        end = float(match["end"]) if match["end"] else None
    except ValueError:
        return video_id, None, None
    return match["path"], start, end
