"""Issue 23's measurements of long videos: decoding from the keyframe, and a Kinetics-shaped job.

``python -m vidshard.bench.seek --workdir DIR [--json FILE]`` generates H.264 MP4s with PyAV
(B-frames, open GOPs, a fixed keyframe interval), then measures, in one run:

* **seek**: one 10-second segment at minute 5 of a 10-minute 30 fps video
  (``long.mp4#t=300,310``): the CPU time of :func:`vidshard.decode.decode_clips` (probe, keyframe
  seek, decode of the kept frames) against the same call decoding from frame 0 (``seek=False``,
  the ratio), and against grabbing only the segment's own GOPs, from the keyframe at or before
  its first frame to its last frame (the floor, no probe, nothing kept).
* **kinetics**: a Kinetics-style CSV (``label,youtube_id,time_start,time_end,split``) over
  segments of several full-length videos, sharded end to end with ``vidshard shard ...
  --path-template '{youtube_id}.mp4'`` (a subprocess, as a user runs it), against the
  tutorial's ``frames_from_video_file`` loop extended to segments (its start drawn inside each
  segment, in this process), on the same files; and the CPU per segment of either, one thread.

Every figure is taken in the same run, so the ratios hold on a shared machine; the timings are
the minimum over ``--repeats`` interleaved runs.  Nothing here asserts a timing.
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np


@dataclass(frozen=True)
class SeekConfig:
    """What to generate and measure (defaults: the issue's figures at a small resolution)."""

    workdir: str
    width: int = 160
    height: int = 120
    fps: int = 30
    gop: int = 250  #: keyframe interval in frames (x264's default ``keyint``)
    long_minutes: float = 10.0
    segment_start: float = 300.0
    segment_seconds: float = 10.0
    n_frames: int = 10  #: frames per clip; the seek row takes them TSN-style over the whole segment
    frame_step: int = 15  #: the Kinetics row's clips: the tutorial's 10 frames every 15th
    size: int = 224
    repeats: int = 3
    kinetics_videos: int = 6
    kinetics_seconds: float = 60.0
    segments_per_video: int = 3


def write_h264(path: Path, seconds: float, config: SeekConfig, seed: int = 0) -> Path:
    """A ``seconds``-long H.264 MP4 (B-frames, open GOPs, keyframes every ``config.gop`` frames)."""
    from vidshard.testing.codecs import write_codec_video

    if path.exists():
        return path
    gop = str(config.gop)
    return write_codec_video(path, "h264", frames=int(round(seconds * config.fps)), fps=config.fps,
                             width=config.width, height=config.height, seed=seed,
                             options={"g": gop, "x264-params": f"open-gop=1:keyint={gop}:min-keyint={gop}:scenecut=0"})


def _cpu(call: Callable[[], Any]) -> tuple[float, float, Any]:
    """(CPU seconds of this process, its threads included; wall seconds; the result) of ``call()``."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = call()
    return time.process_time() - cpu, time.perf_counter() - wall, result


def grab_span(path: Path, start_seconds: float, stop_seconds: float) -> int:
    """Decode (grab only) from the keyframe OpenCV seeks to for ``start_seconds`` until the first frame
    at or after ``stop_seconds``; return the frames grabbed.  The floor: no probe, nothing kept."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    grabbed = 0
    try:
        capture.set(cv2.CAP_PROP_POS_MSEC, start_seconds * 1000.0)
        while capture.grab():
            grabbed += 1
            if capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 >= stop_seconds - 1e-4:
                break
    finally:
        capture.release()
    return grabbed


def measure_seek(config: SeekConfig, log: Callable[[str], None]) -> dict[str, Any]:
    """The seek row: vidshard (seeking) vs from frame 0 vs the segment's GOPs, CPU seconds."""
    from vidshard.decode import decode_clips, probe
    from vidshard.sampling import ClipSpec

    work = Path(config.workdir)
    work.mkdir(parents=True, exist_ok=True)
    path = write_h264(work / "long.mp4", config.long_minutes * 60, config)
    data = path.read_bytes()
    start, end = config.segment_start, config.segment_start + config.segment_seconds
    video_id = f"long.mp4#t={start:g},{end:g}"
    # TSN over the segment, an evaluation split: the clip spans the segment, first part to last.
    spec = ClipSpec(n_frames=config.n_frames, height=config.size, width=config.size, sampling="segments")
    probed = probe(str(path))
    first = int(np.searchsorted(probed.times, start - 1e-4))
    keyframe = int(probed.keyframes[probed.keyframes <= first][-1])
    cv2.setNumThreads(1)  # as in a Beam worker
    log(f"seek: {path.name} ({probed.packets} frames, {len(data) / 2**20:.1f} MiB), segment {video_id} ...")
    runs: dict[str, list[tuple[float, float]]] = {"vidshard": [], "from_frame_0": [], "floor": [], "probe": []}
    decoded: dict[str, int] = {}
    for _ in range(config.repeats):
        cpu, wall, result = _cpu(lambda: decode_clips(data, video_id, spec, "val"))
        runs["vidshard"].append((cpu, wall))
        decoded["vidshard"], seeked, indices = result.decoded_frames, result.seeked, result.indices
        cpu, wall, result = _cpu(lambda: decode_clips(data, video_id, spec, "val", seek=False))
        runs["from_frame_0"].append((cpu, wall))
        decoded["from_frame_0"] = result.decoded_frames
        cpu, wall, grabbed = _cpu(lambda: grab_span(path, float(probed.times[keyframe]), end))
        runs["floor"].append((cpu, wall))
        decoded["floor"] = grabbed
        cpu, wall, _ = _cpu(lambda: probe(str(path)))
        runs["probe"].append((cpu, wall))
    best = {name: min(r[0] for r in values) for name, values in runs.items()}
    best_wall = {name: min(r[1] for r in values) for name, values in runs.items()}
    return {
        "video": {"frames": probed.packets, "bytes": len(data), "width": config.width, "height": config.height,
                  "fps": config.fps, "gop": config.gop, "segment": video_id},
        "seeked": seeked, "clip_frames": indices.tolist(), "segment_keyframe": keyframe,
        "cpu_seconds": best, "wall_seconds": best_wall, "decoded_frames": decoded,
        "ratio_from_frame_0": best["from_frame_0"] / best["vidshard"],
        "ratio_to_floor": best["vidshard"] / best["floor"],
    }


def write_kinetics(config: SeekConfig) -> tuple[Path, list[dict[str, Any]]]:
    """Full-length videos ``<youtube_id>.mp4`` and a Kinetics CSV of their segments (whole seconds)."""
    work = Path(config.workdir) / "kinetics"
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    rows = []
    for video in range(config.kinetics_videos):
        youtube_id = f"yt{video:03d}"
        write_h264(work / f"{youtube_id}.mp4", config.kinetics_seconds, config, seed=video)
        slots = int(config.kinetics_seconds // config.segment_seconds)
        for slot in sorted(rng.sample(range(slots), min(config.segments_per_video, slots))):
            start = int(slot * config.segment_seconds)
            rows.append({"label": ("walk", "run")[video % 2], "youtube_id": youtube_id, "time_start": start,
                         "time_end": int(start + config.segment_seconds), "split": "train"})
    table = Path(config.workdir) / "kinetics_train.csv"
    with table.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return table, rows


def tutorial_segments(folder: Path, rows: list[dict[str, Any]], config: SeekConfig) -> int:
    """The tutorial's loop extended to segments: ``frames_from_video_file`` with its start drawn the
    tutorial's way (``randint(0, max_start + 1)``) inside each segment; returns the clips read."""
    from vidshard.bench.tutorial import frames_from_video_file

    need = 1 + (config.n_frames - 1) * config.frame_step
    for row in rows:
        first = int(round(row["time_start"] * config.fps))
        frames = int(round((row["time_end"] - row["time_start"]) * config.fps))
        start = first + random.randint(0, max(frames - need, 0) + 1)
        frames_from_video_file(folder / f"{row['youtube_id']}.mp4", config.n_frames, (config.size, config.size),
                               config.frame_step, start=start)
    return len(rows)


def measure_kinetics(config: SeekConfig, log: Callable[[str], None]) -> dict[str, Any]:
    """The Kinetics row: ``vidshard shard`` end to end (wall) against the tutorial's loop over segments."""
    table, rows = write_kinetics(config)
    folder = Path(config.workdir) / "kinetics"
    out = Path(config.workdir) / "kinetics_shards"
    log(f"kinetics: {len(rows)} segments of {config.kinetics_videos} videos, vidshard shard vs the tutorial's loop ...")
    cmd = [sys.executable, "-m", "vidshard.cli", "shard", str(folder), str(out), "--manifest", str(table),
           "--path-template", "{youtube_id}.mp4", "--split-by", "manifest", "--overwrite",
           "--n-frames", str(config.n_frames), "--frame-step", str(config.frame_step), "--size", str(config.size)]
    random.seed(0)
    tutorial_segments(folder, rows[:1], config)  # warm-up: TensorFlow's first ops
    shard_runs, tutorial_runs = [], []
    for _ in range(config.repeats):
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        shard_runs.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError(f"vidshard shard failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        start = time.perf_counter()
        tutorial_segments(folder, rows, config)
        tutorial_runs.append(time.perf_counter() - start)
    info = json.loads((out / "dataset_info.json").read_text())
    written = info["splits"]["train"]["num_examples"]
    ours_cpu, tutorial_cpu = per_segment_cpu(folder, rows, config)
    return {"command": " ".join(cmd[1:]), "segments": len(rows), "written": written, "failed": info["num_failed"],
            "vidshard_seconds": min(shard_runs), "tutorial_seconds": min(tutorial_runs),
            "all_vidshard_seconds": shard_runs, "all_tutorial_seconds": tutorial_runs,
            "ratio": min(tutorial_runs) / min(shard_runs),
            "per_segment_cpu_ms": {"vidshard": 1000 * ours_cpu, "tutorial": 1000 * tutorial_cpu}}


def per_segment_cpu(folder: Path, rows: list[dict[str, Any]], config: SeekConfig) -> tuple[float, float]:
    """Mean CPU seconds per segment, one thread, in this process: vidshard's decode and JPEG encode of
    the segment's clip against the tutorial's ``frames_from_video_file`` at the same start frame."""
    from vidshard.bench.tutorial import frames_from_video_file
    from vidshard.decode import decode_clips
    from vidshard.format.schema import ClipRecord, encode_example
    from vidshard.sampling import ClipSpec, segment_id

    spec = ClipSpec(n_frames=config.n_frames, frame_step=config.frame_step, height=config.size, width=config.size)
    ours = tutorial = 0.0
    for row in rows:
        path = folder / f"{row['youtube_id']}.mp4"
        video_id = segment_id(path.name, row["time_start"], row["time_end"])
        cpu, _, _ = _cpu(lambda: encode_example(ClipRecord(
            video_id, 0, row["label"], *decode_clips(path.read_bytes(), video_id, spec)[:2])))
        ours += cpu
        start = int(decode_clips(path.read_bytes(), video_id, spec).indices.min())
        cpu, _, _ = _cpu(lambda: frames_from_video_file(path, config.n_frames, (config.size, config.size),
                                                        config.frame_step, start=start))
        tutorial += cpu
    return ours / len(rows), tutorial / len(rows)


def run(config: SeekConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Both measurements and the machine they ran on."""
    from vidshard.bench.measure import machine

    return {"machine": machine(), "config": asdict(config),
            "seek": measure_seek(config, log), "kinetics": measure_kinetics(config, log)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vidshard.bench.seek", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, help="where the videos and shards are written (reused)")
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--repeats", type=int, default=SeekConfig.repeats)
    parser.add_argument("--gop", type=int, default=SeekConfig.gop)
    parser.add_argument("--kinetics-videos", type=int, default=SeekConfig.kinetics_videos)
    parser.add_argument("--video-size", default=f"{SeekConfig.width}x{SeekConfig.height}", metavar="WxH",
                        help="resolution of the generated videos")
    args = parser.parse_args(argv)
    width, height = (int(part) for part in args.video_size.lower().split("x"))
    result = run(SeekConfig(args.workdir, width=width, height=height, repeats=args.repeats, gop=args.gop,
                            kinetics_videos=args.kinetics_videos))
    seek, kinetics = result["seek"], result["kinetics"]
    cpu, frames = seek["cpu_seconds"], seek["decoded_frames"]
    print(f"seek {seek['video']['segment']}: vidshard {1000 * cpu['vidshard']:.0f} ms ({frames['vidshard']} frames "
          f"decoded, probe {1000 * cpu['probe']:.0f} ms), from frame 0 {1000 * cpu['from_frame_0']:.0f} ms "
          f"({frames['from_frame_0']} frames): {seek['ratio_from_frame_0']:.1f}x; segment's GOPs "
          f"{1000 * cpu['floor']:.0f} ms ({frames['floor']} frames): vidshard is {seek['ratio_to_floor']:.2f}x the floor")
    per = kinetics["per_segment_cpu_ms"]
    print(f"kinetics {kinetics['segments']} segments: vidshard shard {kinetics['vidshard_seconds']:.2f} s, "
          f"tutorial's loop {kinetics['tutorial_seconds']:.2f} s: {kinetics['ratio']:.2f}x; CPU per segment, "
          f"one thread: vidshard {per['vidshard']:.0f} ms, tutorial {per['tutorial']:.0f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
