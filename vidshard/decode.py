"""Decode the frames a clip needs from a video's bytes with OpenCV, resize-with-pad, BGR to RGB.

Same pixels as the tutorial's ``frames_from_video_file`` for the same start frame, with three of
its faults fixed: the header frame count is not trusted (real files over- and under-state it):
the stream's packets are counted without decoding them, and a stream that ends before the frames
they imply is re-planned on the frames that decoded; frames are reached by decoding (``grab``)
rather than by seeking, which is inexact for inter-coded streams, and only kept frames are
converted and resized — no per-frame TF ops.
"""
from __future__ import annotations

import os
import tempfile
from typing import Callable, NamedTuple

import cv2
import numpy as np

from vidshard.errors import DecodeError
from vidshard.sampling import PADDED, TRAIN_SPLIT, ClipSpec, clip_indices


class DecodedVideo(NamedTuple):
    """The clips of one video and the timing they were cut by."""

    frames: np.ndarray  #: uint8 RGB ``[clips, n_frames, height, width, 3]``
    indices: np.ndarray  #: int64 source frame of every stored frame ``[clips, n_frames]``, -1 where padded
    total_frames: int  #: frames the video's stream really holds
    source_fps: float  #: the container's frame rate (0.0 when it states none)


def padded_geometry(height: int, width: int, out_height: int, out_width: int) -> tuple[int, int, int, int]:
    """``(resized_h, resized_w, top, left)`` exactly as ``tf.image.resize_with_pad`` computes them.

    TensorFlow does this arithmetic in float32, where e.g. 64 / (64 / 30) floors to 29, so it is
    done in float32 here too.
    """
    f32 = np.float32
    ratio = max(f32(width) / f32(out_width), f32(height) / f32(out_height))
    exact_h, exact_w = f32(height) / ratio, f32(width) / ratio
    top = max(0, int(np.floor((f32(out_height) - exact_h) / f32(2))))
    left = max(0, int(np.floor((f32(out_width) - exact_w) / f32(2))))
    return int(np.floor(exact_h)), int(np.floor(exact_w)), top, left


def resize_with_pad(image: np.ndarray, out_height: int, out_width: int) -> np.ndarray:
    """Bilinear resize keeping the aspect ratio, centred on zero padding (uint8 in, uint8 out).

    Matches ``tf.image.resize_with_pad`` (half-pixel-centred bilinear, no antialiasing) within
    rounding; channel order is kept.
    """
    height, width = image.shape[:2]
    resized_h, resized_w, top, left = padded_geometry(height, width, out_height, out_width)
    out = np.zeros((out_height, out_width) + image.shape[2:], np.uint8)
    out[top:top + resized_h, left:left + resized_w] = cv2.resize(
        image, (resized_w, resized_h), interpolation=cv2.INTER_LINEAR
    )
    return out


def _scan(path: str, wanted_for_count: Callable[[int], np.ndarray], spec: ClipSpec,
          stop_after: int | None = None) -> tuple[dict[int, np.ndarray], int]:
    """Decode frames from the start, keeping the wanted ones resized and in RGB.

    ``wanted_for_count`` maps the container's claimed frame count (0 when absent) to the frame
    indices to keep.  Returns the kept frames and the number of frames that decoded before the
    stream ended (or before ``stop_after`` was passed).  A frame that grabs but does not
    retrieve ends the readable stream there.
    """
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    kept: dict[int, np.ndarray] = {}
    index = 0
    try:
        if not capture.isOpened():
            return kept, 0
        claimed = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        wanted = set(wanted_for_count(int(claimed) if claimed and claimed > 0 else 0).tolist())
        while (stop_after is None or index <= stop_after) and capture.grab():
            if index in wanted:
                ok, frame = capture.retrieve()
                if not ok or frame is None or frame.size == 0:
                    break
                if frame.ndim == 2:  # some backends hand grayscale streams back as one channel
                    frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
                kept[index] = cv2.cvtColor(resize_with_pad(frame, spec.height, spec.width), cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()
    return kept, index


def probe(path: str) -> tuple[int, float]:
    """``(packets, fps)``: the video stream's packets, read by FFmpeg's demuxer without decoding
    them (0 if it cannot), and the container's frame rate (0.0 when it states none).

    OpenCV's raw mode (``CAP_PROP_FORMAT`` -1) makes ``grab()`` hand over packets instead of
    decoded frames: about 3 ms for a 175-frame 320x240 XVID AVI, against 30 ms to decode it.
    Decoding reads the same packets through the same demuxer, so this count follows the stream
    (or the container's index, where the demuxer reads by it), not the header's claimed count.
    """
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_FORMAT, -1])
    count, fps = 0, 0.0
    try:
        if capture.isOpened():
            fps = capture.get(cv2.CAP_PROP_FPS)
            while capture.grab():
                count += 1
    finally:
        capture.release()
    return count, fps if fps and np.isfinite(fps) and fps > 0 else 0.0


def decode_clips(data: bytes, video_id: str, spec: ClipSpec, split: str = TRAIN_SPLIT) -> DecodedVideo:
    """Decode the clips of one video of ``split`` (``spec.clips_in(split)`` of them).

    Returns the uint8 RGB frames ``[clips, n_frames, height, width, 3]``, the int64 source frame
    indices ``[clips, n_frames]`` (-1 where a short video is padded with zeros), the true frame
    count and the frame rate.  Raises :class:`DecodeError` when not a single frame decodes, or
    when time sampling meets a video that states no frame rate.
    """
    if not data:
        raise DecodeError("empty file (0 bytes)")
    suffix = os.path.splitext(video_id)[1] or ".avi"
    # OpenCV's FFmpeg backend reads files; a temp file is as fast as its in-memory stream API
    # (measured: 29 ms vs 29 ms for a 175-frame 320x240 XVID) and works on every OpenCV 4/5.
    with tempfile.NamedTemporaryFile(suffix=suffix, prefix="vidshard-") as tmp:
        tmp.write(data)
        tmp.flush()
        packets, fps = probe(tmp.name)
        if spec.sampling == "time" and not fps:
            raise DecodeError("the container states no frame rate: cannot sample it by time")

        def choose(total: int) -> np.ndarray:
            return clip_indices(video_id, total, spec, split, fps or None)

        if packets:
            # The packet count decides the starts; decoding stops at the last frame they need.
            # If the stream ends before that frame, the scan has decoded to its end, and the
            # frames that decoded are the true count (re-planned below).
            wanted = choose(packets)
            wanted = wanted[wanted != PADDED]
            last = int(wanted.max())
            kept, total = _scan(tmp.name, lambda _claimed: wanted, spec, stop_after=last)
            if total > last:
                total = packets
        else:
            # No packets from the demuxer's raw mode: one pass decodes to the end, keeping the
            # frames the claimed count implies and measuring the true count.
            def implied_by_claim(claimed: int) -> np.ndarray:
                guess = choose(claimed) if claimed else np.empty(0, np.int64)
                return guess[guess != PADDED]

            kept, total = _scan(tmp.name, implied_by_claim, spec)
        if total == 0:
            raise DecodeError("no frame decodes (not a video, unsupported codec, or truncated before the first frame)")
        indices = choose(total)
        missing = set(indices[indices != PADDED].tolist()) - kept.keys()
        if missing:  # the header lied: decode again for the frames the true count selects
            needed = np.fromiter(missing, np.int64)
            more, _ = _scan(tmp.name, lambda _claimed: needed, spec, stop_after=int(needed.max()))
            kept.update(more)
            missing -= more.keys()
            if missing:
                raise DecodeError(f"frames {sorted(missing)[:5]} decoded on the first pass but not the second")
    frames = np.zeros((len(indices), spec.n_frames, spec.height, spec.width, 3), np.uint8)
    for clip, row in enumerate(indices):
        for position, source_index in enumerate(row):
            if source_index != PADDED:
                frames[clip, position] = kept[int(source_index)]
    return DecodedVideo(frames, indices, total, fps)
