"""Test videos in today's codecs and containers, written with PyAV (FFmpeg's encoders).

UCF101 is XviD in AVI; Kinetics and phone footage are H.264 or HEVC in MP4 with B-frames,
Something-Something is VP9 in WebM, phone footage is variable-frame-rate.  :data:`CODECS` names
one case for each, :func:`write_codec_video` writes it (the motion pattern of
:mod:`vidshard.testing.synthetic`, so frames differ from one another), :func:`vfr_times` gives the
frame times of the issue's variable-rate file.  PyAV is a test dependency (the ``dev`` extra);
the library itself decodes with OpenCV only.
"""
from __future__ import annotations

import fractions
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from vidshard.testing.synthetic import VideoSpec, motion_frames

#: Keyframe interval of every case: several GOPs in a 60-frame video, so seeking has something to skip.
GOP = 12


@dataclass(frozen=True)
class CodecCase:
    """One encoder in one container, with the options that give it the structure under test."""

    encoder: str
    suffix: str
    pix_fmt: str = "yuv420p"
    options: dict[str, str] = field(default_factory=dict)


#: name -> case.  ``h264`` has B-frames and open GOPs (leading B-frames reference the GOP before).
CODECS: dict[str, CodecCase] = {
    "h264": CodecCase("libx264", ".mp4", options={
        "bf": "3", "g": str(GOP), "x264-params": f"open-gop=1:keyint={GOP}:min-keyint={GOP}:scenecut=0"}),
    "hevc": CodecCase("libx265", ".mp4", options={
        "x265-params": f"keyint={GOP}:min-keyint={GOP}:bframes=3:scenecut=0:log-level=error"}),
    "vp9": CodecCase("libvpx-vp9", ".webm", options={"g": str(GOP), "lag-in-frames": "8", "auto-alt-ref": "1"}),
    "mpeg4": CodecCase("mpeg4", ".mp4", options={"g": str(GOP), "bf": "2"}),
    "mjpeg": CodecCase("mjpeg", ".avi", pix_fmt="yuvj420p"),
}


def available(name: str) -> bool:
    """Whether this PyAV's FFmpeg has the encoder of case ``name`` (HEVC needs libx265 in the wheel)."""
    import av

    return CODECS[name].encoder in av.codecs_available


def vfr_times(fast: int = 30, slow: int = 30) -> list[float]:
    """The issue's variable-rate timing: ``fast`` frames 1/30 s apart, then ``slow`` frames 1/5 s apart."""
    return [i / 30 for i in range(fast)] + [fast / 30 + i / 5 for i in range(slow)]


def write_codec_video(path: str | os.PathLike, name: str, frames: int = 60, fps: int = 30,
                      width: int = 160, height: int = 120, times: Sequence[float] | None = None,
                      audio: bool = False, seed: int = 0, options: dict[str, str] | None = None) -> Path:
    """Write a motion video with case ``name``'s encoder; return its path (suffix as the case's).

    ``times`` (seconds, one per frame) makes a variable-rate stream (millisecond time base);
    without it frames are ``1 / fps`` apart.  ``audio`` adds a silent AAC track, interleaved.
    ``options`` replace the case's encoder options of the same names (e.g. a longer GOP).
    """
    import av

    case = CODECS[name]
    path = Path(path)
    if times is not None and len(times) != frames:
        raise ValueError(f"{len(times)} times for {frames} frames")
    time_base = fractions.Fraction(1, 1000) if times is not None else fractions.Fraction(1, fps)
    spec = VideoSpec(total_frames=frames, width=width, height=height, fps=fps)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(case.encoder, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, case.pix_fmt
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        stream.options = {**case.options, **(options or {})}
        sound = container.add_stream("aac", rate=44100) if audio else None
        for index, bgr in enumerate(motion_frames(0.7, spec, seed)):
            frame = av.VideoFrame.from_ndarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), format="rgb24")
            frame.pts = round(times[index] * 1000) if times is not None else index
            frame.time_base = time_base
            container.mux(stream.encode(frame))
            if sound is not None:
                # 1/30 s of silence per frame, so the tracks interleave through the file.
                chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1470), np.float32), format="fltp", layout="mono")
                chunk.sample_rate = 44100
                container.mux(sound.encode(chunk))
        container.mux(stream.encode())
        if sound is not None:
            container.mux(sound.encode())
    return path
