"""What the quality audit costs (issue 24): extra CPU per video, and the near-duplicate search at UCF101's size.

``python -m vidshard.bench.quality cost [--videos N] [--size S]``: N UCF101-shaped videos (320x240
XVID, 25 fps, 175 frames, :mod:`vidshard.testing.synthetic`); for each, the process CPU time of
what a sharding worker does anyway (decode the clip's frames, encode the Example as JPEG) and of
what ``--audit`` adds (:func:`vidshard.quality.video.audit_row`: signals, hashes, stream facts),
and their ratio.  ``python -m vidshard.bench.quality duplicates [--videos 13320]``: that many
videos of 4 random 64-bit hashes each, with planted near-copies (random flips within the
threshold), searched by :func:`vidshard.quality.hashing.near_duplicates`; wall time, candidate
pairs compared against the n^2/2 of a full comparison, and whether every planted pair was found.
Both print one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np


def cost(videos: int, size: int) -> dict:
    """CPU seconds per video of decode + encode, and of the audit on top."""
    import cv2

    from vidshard.decode import decode_clips
    from vidshard.format.schema import ClipRecord, encode_example
    from vidshard.quality.flags import Audit
    from vidshard.quality.video import audit_row
    from vidshard.sampling import ClipSpec
    from vidshard.testing.synthetic import VideoSpec, motion_frames, write_video

    cv2.setNumThreads(1)  # as a Beam worker does
    spec = ClipSpec(height=size, width=size)
    base, extra = [], []
    with tempfile.TemporaryDirectory(prefix="vidshard-bench-") as folder:
        for number in range(videos):
            path = os.path.join(folder, f"v_{number}.avi")
            write_video(path, motion_frames(0.3 * number, VideoSpec(), seed=number), VideoSpec())
            data = open(path, "rb").read()
            started = time.process_time()
            decoded = decode_clips(data, path, spec, "train")
            encode_example(ClipRecord(video_id=path, label=0, label_name="x", frames=decoded.frames,
                                      frame_indices=decoded.indices), "jpeg", 95)
            middle = time.process_time()
            audit_row(path, "train", "x", decoded, data, spec, Audit())
            base.append(middle - started)
            extra.append(time.process_time() - middle)
    return {"videos": videos, "size": size, "decode_encode_ms": round(1000 * float(np.median(base)), 2),
            "audit_ms": round(1000 * float(np.median(extra)), 2),
            "audit_share": round(float(np.sum(extra) / np.sum(base)), 4)}


def duplicates(videos: int, planted: int, bits: int, seed: int = 0) -> dict:
    """Time the multi-index search over ``videos`` synthetic videos with ``planted`` near-copies."""
    from vidshard.quality.hashing import near_duplicates

    rng = np.random.default_rng(seed)
    hashes = {f"v{k:05d}": [int(h) for h in rng.integers(0, 2**63, 4, dtype=np.int64) * 2 + rng.integers(0, 2, 4)]
              for k in range(videos - planted)}
    originals = sorted(hashes)[:planted]
    for number, original in enumerate(originals):
        copy = []
        for value in hashes[original]:
            for bit in rng.choice(64, size=int(rng.integers(0, bits + 1)), replace=False):
                value ^= 1 << int(bit)
            copy.append(value)
        hashes[f"w{number:05d}"] = copy
    started = time.perf_counter()
    pairs = near_duplicates(hashes, bits)
    seconds = time.perf_counter() - started
    found = {(a, b) for a, b, _ in pairs}
    missed = [original for number, original in enumerate(originals) if (original, f"w{number:05d}") not in found]
    return {"videos": videos, "hashes_per_video": 4, "threshold_bits": bits, "planted_pairs": planted,
            "pairs_found": len(pairs), "planted_missed": len(missed), "seconds": round(seconds, 3),
            "all_pairs_would_be": videos * (videos - 1) // 2}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    one = sub.add_parser("cost")
    one.add_argument("--videos", type=int, default=20)
    one.add_argument("--size", type=int, default=224)
    two = sub.add_parser("duplicates")
    two.add_argument("--videos", type=int, default=13320)
    two.add_argument("--planted", type=int, default=200)
    two.add_argument("--bits", type=int, default=12)
    args = parser.parse_args(argv)
    result = cost(args.videos, args.size) if args.what == "cost" else duplicates(args.videos, args.planted, args.bits)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
