"""Precision and recall of every quality flag on a mixed set of clean and defective videos (issue 24).

``python -m vidshard.bench.quality_flags [--per-defect N] [--clean N] [--size S] [--frame-step K]
[--frames F] [--anywhere]``
writes the set of :func:`vidshard.testing.defects.write_mixed_set` (XVID videos written with
OpenCV, defects injected), shards it with ``vidshard shard --audit`` in a subprocess, and prints a
Markdown table: for each flag the videos that should raise it, those that did, and precision and
recall.  Every video of the set is counted for every flag (a clean video that raises ``noisy`` is a
false positive of ``noisy``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Mapping

from vidshard.quality.flags import FLAGS
from vidshard.testing.defects import write_mixed_set


def precision_recall(truth: Mapping[str, set[str]], raised: Mapping[str, set[str]]) -> dict[str, dict[str, float]]:
    """``flag -> {expected, raised, true, precision, recall}`` over the videos of ``truth``."""
    table = {}
    for flag in FLAGS:
        expected = {video for video, flags in truth.items() if flag in flags}
        got = {video for video in truth if flag in raised.get(video, set())}
        hits = len(expected & got)
        if not expected and not got:
            continue
        table[flag] = {"expected": len(expected), "raised": len(got), "true": hits,
                       "precision": hits / len(got) if got else 1.0, "recall": hits / len(expected) if expected else 1.0}
    return table


def run(folder: str, per_defect: int, clean: int, size: int, frame_step: int, n_frames: int = 10,
        frames: int = 100, anywhere: bool = False) -> dict:
    """Write the set into ``folder/source``, shard it into ``folder/out`` with ``--audit``; the table."""
    source, out = os.path.join(folder, "source"), os.path.join(folder, "out")
    truth = write_mixed_set(source, per_defect=per_defect, clean=clean, copies=clean, frames=frames, anywhere=anywhere)
    subprocess.run([sys.executable, "-m", "vidshard.cli", "shard", source, out, "--split-by", "folder", "--audit",
                    "--size", str(size), "--frame-step", str(frame_step), "--n-frames", str(n_frames), "--quiet"],
                   check=True, capture_output=True, text=True)
    with open(os.path.join(out, "quality.jsonl"), encoding="utf-8") as fh:
        raised = {row["video_id"]: set(row["flags"]) for row in map(json.loads, fh)}
    return precision_recall(truth, raised)


def markdown(table: Mapping[str, Mapping[str, float]]) -> str:
    lines = ["| flag | should raise | raised | right | precision | recall |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {flag} | {row['expected']} | {row['raised']} | {row['true']} | {row['precision']:.2f} | "
              f"{row['recall']:.2f} |" for flag, row in table.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-defect", type=int, default=5)
    parser.add_argument("--clean", type=int, default=10)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--frame-step", type=int, default=15)
    parser.add_argument("--n-frames", type=int, default=10)
    parser.add_argument("--frames", type=int, default=100, help="length of every video (25 fps)")
    parser.add_argument("--anywhere", action="store_true", help="black and frozen stretches at random places")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vidshard-quality-") as folder:
        table = run(folder, args.per_defect, args.clean, args.size, args.frame_step, args.n_frames, args.frames,
                    args.anywhere)
    print(markdown(table))


if __name__ == "__main__":
    main()
