"""One video's quality row: its pixel signals (from the decoded clips) and its stream facts.

Called by the sharding pipeline on the frames it has just decoded (:mod:`vidshard.decode`), so
no video is decoded twice.  Whether a stream carries audio is read from the container's header
with PyAV when it is installed (``pip install 'vidshard[quality]'``); OpenCV cannot tell, so
without PyAV ``audio`` is None (unknown).
"""
from __future__ import annotations

import io
from typing import Any

from vidshard.decode import DecodedVideo, padded_geometry
from vidshard.quality.flags import Audit, describe, video_flags
from vidshard.quality.signals import video_signals
from vidshard.sampling import ClipSpec


def has_audio(data: bytes) -> bool | None:
    """Whether the container holds an audio stream (its header only); None without PyAV or when it cannot tell."""
    try:
        import av
    except ImportError:
        return None
    try:
        with av.open(io.BytesIO(data), "r") as container:
            return len(container.streams.audio) > 0
    except Exception:  # noqa: BLE001 - PyAV raises its own error classes per FFmpeg error; unknown is the answer
        return None


def content_box(decoded: DecodedVideo, spec: ClipSpec) -> tuple[int, int, int, int] | None:
    """``(top, left, height, width)`` of the picture inside the stored letterboxed frame; None when the
    source size is unknown (then the signals see the whole frame, padding included)."""
    if not decoded.width or not decoded.height:
        return None
    height, width, top, left = padded_geometry(decoded.height, decoded.width, spec.height, spec.width)
    return top, left, height, width


def measure(decoded: DecodedVideo, data: bytes, spec: ClipSpec) -> dict[str, Any]:
    """The signals of :func:`vidshard.quality.signals.video_signals` plus the stream facts: ``duration``
    (seconds), ``fps``, ``frames``, ``width``, ``height``, ``codec``, ``audio`` and ``bytes``."""
    fps = float(decoded.source_fps)
    stream = {"duration": round(decoded.total_frames / fps, 3) if fps else None, "fps": round(fps, 3),
              "frames": int(decoded.total_frames), "width": decoded.width, "height": decoded.height,
              "codec": decoded.codec, "audio": has_audio(data), "bytes": len(data)}
    signals = video_signals(decoded.frames, decoded.indices, decoded.times, fps, content_box(decoded, spec),
                            decoded.width)
    return {**stream, **signals}


def audit_row(video_id: str, split: str, class_name: str, decoded: DecodedVideo, data: bytes, spec: ClipSpec,
              audit: Audit) -> tuple[dict[str, Any], str | None]:
    """The video's ``quality.jsonl`` row, and the reason to leave it out (the first excluded flag it
    raises, with its signal and value; None to keep it)."""
    measured = measure(decoded, data, spec)
    raised = video_flags(measured, audit.thresholds)
    excluded = next((flag for flag in audit.exclude if flag in raised), None)
    row = {"video_id": video_id, "split": split, "class_name": class_name, **measured,
           "flags": raised, "excluded": excluded}
    return row, describe(excluded, raised[excluded], audit.thresholds) if excluded else None
