"""Draw docs/img/sampling.png: which source frames each sampling strategy takes from one video.

Run from the repository root: ``python docs/figures/sampling_figure.py docs/img/sampling.png``.
Every mark comes from :func:`vidshard.sampling.clip_indices`, the function the pipeline uses.
"""
from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vidshard.sampling import ClipSpec, clip_indices  # noqa: E402

TOTAL, FPS = 300, 30000 / 1001  # a 10 s video at 29.97 fps
ROWS = [
    ("step (default), train: 10 frames every 15", ClipSpec(n_frames=10, frame_step=15, clips_per_video=2, seed=1), "train", None),
    ("step, test, --eval-clips 3: spread uniformly", ClipSpec(n_frames=10, frame_step=15, eval_clips=3), "test", None),
    ("time, --fps 5 (= --clip-seconds 2), train", ClipSpec(n_frames=10, sampling="time", fps=5.0, clips_per_video=2, seed=1), "train", FPS),
    ("time at 25 fps source, same seconds", ClipSpec(n_frames=10, sampling="time", fps=5.0, eval_clips=1), "test", 25.0),
    ("segments, train: seeded frame per segment", ClipSpec(n_frames=10, sampling="segments", clips_per_video=2, seed=1), "train", None),
    ("segments, test: centre of each segment", ClipSpec(n_frames=10, sampling="segments"), "test", None),
]


def main(path: str) -> None:
    fig, ax = plt.subplots(figsize=(10, 4.2))
    colours = ["tab:blue", "tab:orange", "tab:green"]
    for row, (label, spec, split, fps) in enumerate(ROWS):
        y = len(ROWS) - 1 - row
        # Seconds on the x axis: the 25 fps row shows the same time span with other frame numbers.
        rate = fps or FPS
        ax.hlines(y, 0, TOTAL / rate, color="0.85", linewidth=6)
        for clip, indices in enumerate(clip_indices("video.avi", TOTAL if rate == FPS else round(TOTAL * rate / FPS),
                                                    spec, split, fps)):
            kept = indices[indices >= 0]
            ax.plot(kept / rate, [y + 0.12 * (clip - 1)] * len(kept), "|", markersize=14, markeredgewidth=2,
                    color=colours[clip % 3])
        if spec.sampling == "segments":
            for i in range(1, spec.n_frames):
                ax.vlines((i * TOTAL // spec.n_frames) / rate, y - 0.3, y + 0.3, color="0.6", linewidth=0.8)
    ax.set_yticks(range(len(ROWS)), [row[0] for row in reversed(ROWS)])
    ax.set_xlabel("seconds into a 10 s video (29.97 fps unless the row says otherwise); one colour per clip")
    ax.set_xlim(0, TOTAL / FPS)
    ax.set_ylim(-0.6, len(ROWS) - 0.4)
    ax.set_title("Which frames each --sampling takes (10 frames per clip)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/img/sampling.png")
