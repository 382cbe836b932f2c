"""What the quality audit costs (issue 24): extra CPU per video, and the near-duplicate search at UCF101's size.

``python -m vidshard.bench.quality cost [--videos N] [--repeats R]``: a zip of N UCF101-shaped
videos (320x240 XVID, 25 fps, 175 frames, :mod:`vidshard.testing.synthetic`) sharded by the real
``vidshard shard`` in a subprocess, with and without ``--audit``, R times each, interleaved; the
CPU time (user + system) of each run, the least of each kind kept, and the extra CPU per video
as a share of the job's; plus the CPU of :func:`vidshard.quality.video.audit_row` alone.  ``python -m vidshard.bench.quality duplicates [--videos 13320]``: that many
videos of 4 random 64-bit hashes each, with planted near-copies (random flips within the
threshold), searched by :func:`vidshard.quality.hashing.near_duplicates`; wall time, candidate
pairs compared against the n^2/2 of a full comparison, and whether every planted pair was found.
``python -m vidshard.bench.quality report [--videos 13320] [--stored-pairs P]``: the ``vidshard audit``
page of that many rows: a real audited output's (by default a small one; with P, one of P
cross-split copies and about P videos with injected defects, 40 frames each, so the page carries
thumbnails up to its caps) and synthetic rows up to N (jittered copies of its clean rows, about 3%
flagged, not stored): its size and thumbnails, the time to render it, and headless Chromium's time
to load it less its time for an empty page.  Each prints one JSON object.
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


def _synthetic_rows(template: list[dict], videos: int, seed: int = 0) -> list[dict]:
    """``videos`` quality rows shaped like UCF101's (101 classes, train/test), signals jittered from real rows:
    about 3% flagged and 1% in near-duplicate pairs.  Their ids (``split/ClassNNN/...``) sort after the
    mixed set's (``split/Alpha/...``), so a page's first pairs are the stored ones."""
    rng = np.random.default_rng(seed)
    clean = [row for row in template if not row["flags"]] or template
    rows = []
    for number in range(videos):
        base = dict(clean[number % len(clean)])
        name = f"v_Class{number % 101:03d}_g{number // 101 % 25 + 1:02d}_c{number % 7 + 1:02d}_{number}.avi"
        split = "test" if number % 25 < 7 else "train"
        base.update(video_id=f"{split}/Class{number % 101:03d}/{name}", split=split,
                    class_name=f"Class{number % 101:03d}", duplicates=[], flags={}, excluded=None)
        for key in ("luma_mean", "noise", "blur", "sharpness", "blockiness", "motion"):
            base[key] = round(float(base[key]) * float(rng.lognormal(0, 0.2)), 3)
        base["duration"] = round(float(rng.uniform(1, 71)), 2)
        if rng.random() < 0.03:
            base["flags"] = {"noisy": base["noise"]}
        rows.append(base)
    for number in range(0, videos // 100 * 2, 2):
        a, b = rows[number], rows[number + 1]
        a["duplicates"] = [{"video_id": b["video_id"], "split": b["split"], "bits": 3}]
        b["duplicates"] = [{"video_id": a["video_id"], "split": a["split"], "bits": 3}]
        a["flags"]["duplicate"] = b["flags"]["duplicate"] = 3
    return rows


def _chromium_seconds(chromium: str, page: str, profile: str) -> float:
    """Wall seconds of headless Chromium loading ``page`` and dumping its DOM (start-up included)."""
    started = time.perf_counter()
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                    "--dump-dom", "file://" + page], check=True, capture_output=True, timeout=300)
    return time.perf_counter() - started


def report(videos: int, repeats: int, stored_pairs: int = 0) -> dict:
    """The audit page of ``videos`` rows: a real audited output's (``stored_pairs`` cross-split copies and
    about as many injected defects, or a small set) and synthetic rows after them in its quality.jsonl;
    size, thumbnails, render time, and headless Chromium's load time less its time for an empty page."""
    import shutil

    from vidshard.quality.report import write_report
    from vidshard.quality.table import QUALITY_FILE, to_jsonl
    from vidshard.testing.defects import DEFECT_FLAGS, write_mixed_set

    with tempfile.TemporaryDirectory(prefix="vidshard-bench-") as folder:
        source, out = os.path.join(folder, "source"), os.path.join(folder, "out")
        if stored_pairs:
            write_mixed_set(source, per_defect=-(-stored_pairs // len(DEFECT_FLAGS)), clean=2 * stored_pairs,
                            copies=2 * stored_pairs, frames=40)
        else:
            write_mixed_set(source, per_defect=1, clean=4, copies=2)
        subprocess.run([sys.executable, "-m", "vidshard.cli", "shard", source, out, "--split-by", "folder", "--audit",
                        "--quiet"], check=True, capture_output=True)
        with open(os.path.join(out, QUALITY_FILE), encoding="utf-8") as fh:
            template = [json.loads(line) for line in fh]
        rows = template + _synthetic_rows(template, videos - len(template))
        with open(os.path.join(out, QUALITY_FILE), "w", encoding="utf-8") as fh:
            fh.write(to_jsonl(rows))
        page = os.path.join(folder, "audit.html")
        started = time.perf_counter()
        size = write_report(out, page)
        render = time.perf_counter() - started
        with open(page, encoding="utf-8") as fh:
            thumbnails = fh.read().count('<img class="strip"')
        result = {"videos": len(rows), "stored": len(template), "flagged": sum(bool(row["flags"]) for row in rows),
                  "page_bytes": size, "thumbnails": thumbnails, "render_seconds": round(render, 2)}
        chromium = shutil.which("chromium")
        if chromium:
            empty = os.path.join(folder, "empty.html")
            with open(empty, "w", encoding="utf-8") as fh:
                fh.write("<!DOCTYPE html><html><body></body></html>")
            profile = os.path.join(folder, "profile")
            base = min(_chromium_seconds(chromium, empty, profile) for _ in range(repeats))
            load = min(_chromium_seconds(chromium, page, profile) for _ in range(repeats))
            result.update(chromium_empty_seconds=round(base, 2), chromium_page_seconds=round(load, 2),
                          load_seconds=round(load - base, 2))
    return result


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
    three = sub.add_parser("report")
    three.add_argument("--videos", type=int, default=13320)
    three.add_argument("--repeats", type=int, default=3)
    three.add_argument("--stored-pairs", type=int, default=0)
    args = parser.parse_args(argv)
    if args.what == "cost":
        result = cost(args.videos, args.size, args.repeats)
    elif args.what == "duplicates":
        result = duplicates(args.videos, args.planted, args.bits)
    else:
        result = report(args.videos, args.repeats, args.stored_pairs)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
