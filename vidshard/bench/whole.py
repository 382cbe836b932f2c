"""Issue 23 item 6's measurement: every frame stored, ``--sampling all`` against fixed-length padded clips.

``python -m vidshard.bench.whole --workdir DIR [--videos N] [--json FILE]`` writes UCF101-shaped
videos of varied length (320x240 XVID, 25 fps, 60 to 400 frames) in the tutorial's
``<class>/*.avi`` layout and shards them twice, each with ``vidshard shard`` in a subprocess, at
the videos' own size (as TFDS's ``ucf101_1`` config, which stores every frame):

* ``all``: ``--sampling all --frame-step 1`` (every frame, unpadded, each video its own length);
* ``padded``: ``--n-frames LONGEST --frame-step 1``, the only way to keep every frame before
  (the issue's 1810-frame run): every video padded with black frames to the longest.

* ``tfds`` (with ``--tfds``, needs ``vidshard[tfds]``): TFDS's own builder and ``Video`` feature
  with TFDS ucf101's features over the same files (:mod:`vidshard.bench.tfds_ucf101`).

It reports wall time, bytes written and frames stored (real and padding) of each.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from vidshard.testing.synthetic import MOTION_CLASSES, VideoSpec, direction_of, motion_frames, ucf_member_name, write_video


def write_videos(root: Path, count: int, classes: int = 4) -> list[int]:
    """``count`` UCF101-shaped videos of 60 to 400 frames; returns their frame counts."""
    lengths = []
    for i in range(count):
        name = MOTION_CLASSES[i % classes]
        frames = 60 + (i * 97) % 341
        spec = VideoSpec(total_frames=frames)
        path = root / ucf_member_name(name, i // classes + 1, 1, prefix=f"{name}/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            write_video(path, motion_frames(direction_of(name, i % classes, classes), spec, seed=i), spec)
        lengths.append(frames)
    return lengths


def shard(source: Path, out: Path, *options: str) -> dict[str, Any]:
    """Run ``vidshard shard`` as a user would; wall seconds, bytes and frames stored."""
    cmd = [sys.executable, "-m", "vidshard.cli", "shard", str(source), str(out), "--splits", "train=1.0",
           "--overwrite", "--size", "240x320", "--shards", "1", "--quiet", *options]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"vidshard shard failed:\n{done.stderr[-2000:]}")
    from vidshard.format.info import load_info
    from vidshard.format.schema import parse_example
    from vidshard.format.file_adapters import iter_shard

    info = load_info(str(out))
    real = padding = 0
    for name in info.splits["train"].shards:
        for serialized in iter_shard(out / name, info):
            indices = parse_example(serialized, info.encoding).frame_indices
            padding += int((indices < 0).sum())
            real += int((indices >= 0).sum())
    return {"command": " ".join(cmd[3:]), "seconds": seconds, "bytes": info.splits["train"].num_bytes,
            "real_frames": real, "padding_frames": padding, "videos": info.splits["train"].num_examples}


def tfds_build(source: Path, out: Path) -> dict[str, Any]:
    """TFDS's builder on the same videos (:mod:`vidshard.bench.tfds_ucf101`), in a subprocess; as :func:`shard`
    (its seconds: from the process's start to the end of the build)."""
    cmd = [sys.executable, "-m", "vidshard.bench.tfds_ucf101", str(source), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the TFDS build failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "command": " ".join(cmd[1:])}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vidshard.bench.whole", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--json")
    parser.add_argument("--tfds", action="store_true", help="also TFDS's builder on the same videos (vidshard[tfds])")
    args = parser.parse_args(argv)
    work = Path(args.workdir)
    lengths = write_videos(work / "videos", args.videos)
    result = {"videos": args.videos, "source_frames": sum(lengths), "longest": max(lengths),
              "all": shard(work / "videos", work / "all", "--sampling", "all", "--frame-step", "1"),
              "padded": shard(work / "videos", work / "padded", "--n-frames", str(max(lengths)), "--frame-step", "1")}
    if args.tfds:
        result["tfds"] = tfds_build(work / "videos", work / "tfds")
    for name in [name for name in ("all", "padded", "tfds") if name in result]:
        run = result[name]
        print(f"{name}: {run['seconds']:.1f} s, {run['bytes'] / 2**20:.1f} MiB, {run['real_frames']} real frames "
              f"+ {run['padding_frames']} padding")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
