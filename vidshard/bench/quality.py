"""What the quality audit costs (issue 24): extra CPU per video, and the near-duplicate search at UCF101's size.

``python -m vidshard.bench.quality cost [--videos N] [--repeats R]``: a zip of N UCF101-shaped
videos (320x240 XVID, 25 fps, 175 frames, :mod:`vidshard.testing.synthetic`) sharded by the real
``vidshard shard`` in a subprocess, with and without ``--audit``, R times each, interleaved; the
CPU time (user + system) of each run, the least of each kind kept, and the extra CPU per video
as a share of the job's; plus the CPU of :func:`vidshard.quality.video.audit_row` alone.  ``python -m vidshard.bench.quality duplicates [--videos 13320]``: that many
videos of 4 random 64-bit hashes each, with planted near-copies (random flips within the
threshold), searched by :func:`vidshard.quality.hashing.near_duplicates`; wall time, candidate
pairs compared against the n^2/2 of a full comparison, and whether every planted pair was found.
Both print one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def _job_cpu(source: str, out: str, audit: bool) -> float:
    """CPU seconds (user + system) of one ``vidshard shard`` subprocess on ``source``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "vidshard.cli", "shard", source, out, "--splits", "train=1.0", "--quiet",
                    "--overwrite", *(["--audit"] if audit else [])], check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cost(videos: int, size: int, repeats: int) -> dict:
    """CPU per video of the whole shard job, with and without ``--audit``; and of the audit's own function."""
    import cv2

    from vidshard.decode import decode_clips
    from vidshard.quality.flags import Audit
    from vidshard.quality.video import audit_row
    from vidshard.sampling import ClipSpec
    from vidshard.testing.synthetic import MOTION_CLASSES, make_ucf_zip

    cv2.setNumThreads(1)  # as a Beam worker does
    with tempfile.TemporaryDirectory(prefix="vidshard-bench-") as folder:
        source = os.path.join(folder, "ucf.zip")
        per_class = max(1, videos // 4)
        make_ucf_zip(source, classes=MOTION_CLASSES[:4], groups=per_class, clips_per_group=1)
        runs = {False: [], True: []}
        for _ in range(repeats):  # interleaved, so that load on a shared machine falls on both alike
            for audit in (False, True):
                runs[audit].append(_job_cpu(source, os.path.join(folder, "out"), audit))
        import zipfile
        with zipfile.ZipFile(source) as archive:
            name = next(member for member in archive.namelist() if member.endswith(".avi"))
            data = archive.read(name)
        spec = ClipSpec(height=size, width=size)
        decoded = decode_clips(data, name, spec, "train")
        started = time.process_time()
        for _ in range(20):
            audit_row(name, "train", "x", decoded, data, spec, Audit())
        own = (time.process_time() - started) / 20
    plain, audited = min(runs[False]), min(runs[True])
    count = per_class * 4
    return {"videos": count, "size": size, "repeats": repeats, "job_cpu_s": round(plain, 3),
            "job_cpu_audit_s": round(audited, 3), "job_ms_per_video": round(1000 * plain / count, 2),
            "extra_ms_per_video": round(1000 * (audited - plain) / count, 2),
            "extra_share": round((audited - plain) / plain, 4), "audit_row_ms": round(1000 * own, 2)}


def duplicates(videos: int, planted: int, bits: int, seed: int = 0) -> dict:
    """Time the multi-index search over ``videos`` synthetic videos with ``planted`` near-copies."""
    from vidshard.quality.hashing import near_duplicates

    rng = np.random.default_rng(seed)
    hashes = {f"v{k:05d}": [int.from_bytes(rng.bytes(8), "big") for _ in range(4)] for k in range(videos - planted)}
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
    one.add_argument("--repeats", type=int, default=3)
    two = sub.add_parser("duplicates")
    two.add_argument("--videos", type=int, default=13320)
    two.add_argument("--planted", type=int, default=200)
    two.add_argument("--bits", type=int, default=10)
    args = parser.parse_args(argv)
    result = cost(args.videos, args.size, args.repeats) if args.what == "cost" else duplicates(args.videos, args.planted, args.bits)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
