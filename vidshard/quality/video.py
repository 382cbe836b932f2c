"""One video's quality row: its pixel signals (from the decoded clips) and its stream facts.

Called by the sharding pipeline on the frames it has just decoded (:mod:`vidshard.decode`), so
no video is decoded twice.  Whether a stream carries audio, which OpenCV cannot tell, is read from
the container's header bytes (:func:`has_audio`); for containers not read there ``audio`` is None
(unknown).
"""
from __future__ import annotations

import re
import struct
from typing import Any

from vidshard.decode import DecodedVideo, padded_geometry
from vidshard.quality.flags import Audit, describe, video_flags
from vidshard.quality.signals import video_signals
from vidshard.sampling import ClipSpec


def _mp4_moov(data: bytes) -> bytes | None:
    """The ``moov`` box of an ISO-BMFF file (MP4, MOV, M4V), found by walking the top-level boxes."""
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        header = 8
        if size == 1 and offset + 16 <= len(data):  # 64-bit size
            size, header = struct.unpack(">Q", data[offset + 8:offset + 16])[0], 16
        elif size == 0:  # to the end of the file
            size = len(data) - offset
        if size < header:
            return None
        if kind == b"moov":
            return data[offset:offset + size]
        offset += size
    return None


_MP4_SOUND = re.compile(rb"hdlr.{8}soun", re.DOTALL)  # a track whose handler is sound
_AVI_SOUND = re.compile(rb"strh.{4}auds", re.DOTALL)  # a stream header of an audio stream


def has_audio(data: bytes) -> bool | None:
    """Whether the container declares an audio stream, from its header; None for containers not read here.

    AVI: a stream header (``strh``) of type ``auds`` in the header list; MP4/MOV: a track whose
    handler (``hdlr``) is ``soun`` in the ``moov`` box.  Both are byte searches of the header (about
    microseconds), where PyAV's open costs about 1.3 ms a video.  Other containers (Matroska/WebM,
    MPEG-TS) give None: unknown.
    """
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        end = data.find(b"movi", 12, 1 << 20)
        return bool(_AVI_SOUND.search(data, 12, end if end > 0 else 1 << 20))
    if data[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        moov = _mp4_moov(data)
        return None if moov is None else bool(_MP4_SOUND.search(moov))
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
