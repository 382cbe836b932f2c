"""Clean test videos and the defects the quality audit must find, injected with OpenCV (issue 24).

A clean video is a slowly panning, textured scene (smooth shading, shapes with edges) with a moving
object, written as XVID at 25 fps: detail for the blur measure, change for the frozen one, little
pixel noise.  Each defect is a function of the clean frames:

* ``black``: a stretch of black frames; ``frozen``: one frame repeated (a stalled capture);
* ``dark``: the whole video at a fifth of its brightness (shot in the dark);
* ``gaussian`` and ``saltpepper`` noise; ``blocky``: every frame through JPEG at quality 3
  (heavy compression blocking); ``blur``: a Gaussian blur (sigma 2.5 pixels);
* ``copy``: the video rescaled and re-encoded (MJPG) under another name, for another split.

:func:`write_mixed_set` writes a folder source (``train/CLASS/...``, ``test/CLASS/...``) of clean
and defective videos and returns the truth: which flags each video should raise.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from vidshard.testing.synthetic import VideoSpec, write_video

FPS = 25.0
#: The defects :func:`inject` knows, and the flag each should raise.
DEFECT_FLAGS: dict[str, str] = {"black": "black", "frozen": "frozen", "dark": "dark", "gaussian": "noisy",
                                "saltpepper": "noisy", "blocky": "blocky", "blur": "blurry"}


def clean_frames(seed: int, frames: int = 100, width: int = 320, height: int = 240) -> list[np.ndarray]:
    """BGR frames of a clean scene: shaded, textured background panning slowly, and a moving disc."""
    rng = np.random.default_rng(seed)
    big_w, big_h = width + frames + 8, height + 8
    coarse = rng.uniform(60, 190, size=(6, 8, 3)).astype(np.float32)
    scene = cv2.resize(coarse, (big_w, big_h), interpolation=cv2.INTER_CUBIC)
    for _ in range(40):  # shapes with edges: the detail that blur removes
        x, y = int(rng.integers(0, big_w)), int(rng.integers(0, big_h))
        color = tuple(float(c) for c in rng.uniform(20, 235, 3))
        if rng.random() < 0.5:
            cv2.rectangle(scene, (x, y), (x + int(rng.integers(8, 40)), y + int(rng.integers(8, 40))), color, -1)
        else:
            cv2.circle(scene, (x, y), int(rng.integers(4, 20)), color, 2)
    scene = np.clip(scene, 0, 255).astype(np.uint8)
    speed = rng.uniform(1.5, 3.0)
    out = []
    for t in range(frames):
        frame = scene[4:4 + height, t:t + width].copy()
        cx = int(width * 0.2 + speed * t) % width
        cy = int(height / 2 + height / 4 * np.sin(t / 10))
        cv2.circle(frame, (cx, cy), 18, (30, 220, 240), -1)
        out.append(frame)
    return out


def _stretch(frames: list[np.ndarray], seconds: float, rng: np.random.Generator | None) -> range:
    """A stretch of ``seconds``: in the middle of the video, or (``rng``) anywhere in it."""
    length = int(round(seconds * FPS))
    start = max(1, (len(frames) - length) // 2) if rng is None else int(rng.integers(1, max(2, len(frames) - length)))
    return range(start, min(len(frames), start + length))


def inject(frames: list[np.ndarray], defect: str, seed: int = 0, anywhere: bool = False) -> list[np.ndarray]:
    """The frames with ``defect`` (a key of :data:`DEFECT_FLAGS`) injected; a black or frozen stretch lies in
    the middle of the video, or with ``anywhere`` at a random place (which the clips may not cover)."""
    rng = np.random.default_rng(seed)
    where = rng if anywhere else None
    out = [frame.copy() for frame in frames]
    if defect == "black":
        for t in _stretch(out, 2.0, where):
            out[t][:] = 0
    elif defect == "frozen":
        stretch = _stretch(out, 1.0, where)
        for t in stretch:
            out[t] = out[stretch.start - 1].copy()
    elif defect == "dark":
        out = [(frame.astype(np.float32) / 5).astype(np.uint8) for frame in out]
    elif defect == "gaussian":
        out = [np.clip(frame + rng.normal(0, 12, frame.shape), 0, 255).astype(np.uint8) for frame in out]
    elif defect == "saltpepper":
        for frame in out:
            mask = rng.random(frame.shape[:2])
            frame[mask < 0.02] = 0
            frame[mask > 0.98] = 255
    elif defect == "blocky":
        out = [cv2.imdecode(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 3])[1], cv2.IMREAD_COLOR)
               for frame in out]
    elif defect == "blur":
        out = [cv2.GaussianBlur(frame, (0, 0), 2.5) for frame in out]
    else:
        raise ValueError(f"unknown defect {defect!r}; known: {', '.join(DEFECT_FLAGS)}")
    return out


def rescaled(frames: Iterable[np.ndarray], width: int = 400, height: int = 300) -> list[np.ndarray]:
    """The frames resized (as a re-upload at another resolution)."""
    return [cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA) for frame in frames]


def write(path: Path, frames: list[np.ndarray], fourcc: str = "XVID") -> Path:
    """Write BGR frames as a 25 fps video (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    return write_video(path, iter(frames), VideoSpec(total_frames=len(frames), width=width, height=height, fps=FPS,
                                                     fourcc=fourcc))


def write_mixed_set(root: str | os.PathLike, per_defect: int = 3, clean: int = 6, copies: int = 3,
                    classes: tuple[str, ...] = ("Alpha", "Beta"), frames: int = 100,
                    anywhere: bool = False) -> dict[str, set[str]]:
    """A folder source of clean and defective videos; returns ``{video path relative to root: flags expected}``.

    Clean videos and every defect go to ``train/`` and ``test/`` in turn; each of ``copies`` clean
    train videos also has a rescaled MJPG copy in ``test/`` (both are flagged duplicate-across-splits).
    Videos are ``frames`` long (25 fps); ``anywhere`` places black and frozen stretches at random
    (see :func:`inject`).
    """
    root = Path(root)
    truth: dict[str, set[str]] = {}
    number = 0

    def add(split: str, frames: list[np.ndarray], flags: set[str], fourcc: str = "XVID", tag: str = "") -> str:
        nonlocal number
        name = f"{split}/{classes[number % len(classes)]}/v_{number:03d}{tag}.avi"
        number += 1
        write(root / name, frames, fourcc)
        truth[name] = flags
        return name

    seed = 1000
    for k in range(clean):
        seed += 1
        scene = clean_frames(seed, frames)
        original = add("train" if k % 2 == 0 else "test", scene, set())
        if k < copies:
            if not original.startswith("train/"):
                continue
            add("test", rescaled(scene), {"duplicate-across-splits"}, "MJPG", "_copy")
            truth[original] = {"duplicate-across-splits"}
    for defect, flag in DEFECT_FLAGS.items():
        for k in range(per_defect):
            seed += 1
            add("train" if k % 2 == 0 else "test", inject(clean_frames(seed, frames), defect, seed, anywhere), {flag})
    return truth
