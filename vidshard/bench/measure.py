"""The measurements of ``vidshard bench``: vidshard against the tutorial's path, same videos, one run.

Every figure is a ratio taken in the same run on the same files, so it survives a change of
machine; absolute numbers are reported beside it.  Nothing here asserts a timing.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import psutil

from vidshard.errors import VidshardError
from vidshard.testing.synthetic import MOTION_CLASSES, VideoSpec, direction_of, motion_frames, ucf_member_name, write_video


@dataclass(frozen=True)
class BenchConfig:
    """What to generate and measure; the defaults are UCF101-shaped (320x240 XVID, 25 fps, 7 s)."""

    workdir: str
    videos: int = 200
    small_videos: int = 50
    classes: int = 4
    video: VideoSpec = VideoSpec()
    n_frames: int = 10
    frame_step: int = 15
    height: int = 224
    width: int = 224
    batch_size: int = 8
    train_videos: int = 32
    workers: int = os.cpu_count() or 1
    #: Job sizes of the cost curve (f, g): each is sharded end to end and run through the tutorial's loop.
    job_sizes: tuple[int, ...] = (1, 60, 500)

    def __post_init__(self) -> None:
        """Refuse sizes that leave a measurement without videos, before any video is written."""
        counts = {"videos": self.videos, "small_videos": self.small_videos, "train_videos": self.train_videos,
                  "batch_size": self.batch_size, "n_frames": self.n_frames, "frame_step": self.frame_step,
                  "height": self.height, "width": self.width, "workers": self.workers,
                  "video_frames": self.video.total_frames, "job_sizes": min(self.job_sizes, default=1)}
        low = [f"`{name}` {value}" for name, value in counts.items() if value < 1]
        if low:
            raise VidshardError(f"bench needs at least 1 of each count, got {', '.join(low)}")
        if not 1 <= self.classes <= len(MOTION_CLASSES):
            raise VidshardError(f"`classes` must be between 1 and {len(MOTION_CLASSES)} (the synthetic motions), "
                                f"got {self.classes}")


@dataclass
class Row:
    """One line of the result table."""

    key: str
    what: str
    vidshard: float
    baseline: float | None
    unit: str
    ratio: float | None
    target: str
    met: bool | None
    detail: dict[str, Any] = field(default_factory=dict)


def write_video_folder(root: Path, count: int, config: BenchConfig) -> list[Path]:
    """Write ``count`` videos as ``root/<Class>/v_<Class>_gGG_cCC.avi`` (the tutorial's layout)."""
    classes = MOTION_CLASSES[: config.classes]
    paths = []
    for i in range(count):
        class_index = i % len(classes)
        group, clip = divmod(i // len(classes), 5)
        path = root / ucf_member_name(classes[class_index], group + 1, clip + 1, prefix=f"{classes[class_index]}/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            write_video(path, motion_frames(direction_of(classes[class_index], class_index, len(classes)), config.video, seed=i), config.video)
        paths.append(path)
    return paths


def _peak_tree_rss(process: subprocess.Popen, poll: float = 0.05) -> Callable[[], int]:
    """Sample the summed RSS of a process and its descendants until it exits; return a getter of the peak."""
    peak = [0]

    def sample() -> None:
        try:
            root = psutil.Process(process.pid)
        except psutil.NoSuchProcess:
            return
        while process.poll() is None:
            total = 0
            try:
                for proc in [root] + root.children(recursive=True):
                    try:
                        total += proc.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                break
            peak[0] = max(peak[0], total)
            time.sleep(poll)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    return lambda: (thread.join(), peak[0])[1]


def run_shard(source: Path, data_dir: Path, config: BenchConfig, encoding: str = "jpeg",
              beam_args: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Run ``vidshard shard`` in a subprocess, as a user would; return wall seconds and peak tree RSS.

    ``beam_args`` default to the DirectRunner in ``multi_processing`` mode on ``config.workers``
    workers; ``()`` runs the command as a user types it, with vidshard's own choice of mode.
    """
    if beam_args is None:
        beam_args = ("--direct_num_workers", str(config.workers), "--direct_running_mode", "multi_processing")
    cmd = [
        sys.executable, "-m", "vidshard.cli", "shard", str(source), str(data_dir),
        "--splits", "train=1.0", "--overwrite", "--encoding", encoding,
        "--n-frames", str(config.n_frames), "--frame-step", str(config.frame_step),
        "--size", f"{config.height}x{config.width}", *beam_args,
    ]
    start = time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = _peak_tree_rss(process)
    out, _ = process.communicate()
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"vidshard shard failed ({process.returncode}):\n{out[-3000:]}")
    info = json.loads((data_dir / "dataset_info.json").read_text())
    return {"seconds": seconds, "peak_rss": peak(), "written": info["splits"]["train"]["num_examples"],
            "failed": info["num_failed"], "bytes": info["splits"]["train"]["num_bytes"]}


def _tutorial_preprocess(paths: list[Path], config: BenchConfig) -> float:
    """Seconds for the tutorial's ``frames_from_video_file`` over every video, one process."""
    from vidshard.bench import tutorial

    tutorial.frames_from_video_file(paths[0], config.n_frames, (config.height, config.width), config.frame_step)  # warm-up
    start = time.perf_counter()
    for path in paths:
        tutorial.frames_from_video_file(path, config.n_frames, (config.height, config.width), config.frame_step)
    return time.perf_counter() - start


def _grab_floor(path: Path, last_index: int) -> None:
    """Decode (grab only) frames 0..last_index: the least any decoder of this clip must do."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    for _ in range(last_index + 1):
        capture.grab()
    capture.release()


def _decode_costs(paths: list[Path], config: BenchConfig) -> dict[str, Any]:
    """Per-clip CPU seconds of vidshard's decode (and encode) against the grab-only floor, one thread."""
    from vidshard.decode import decode_clips
    from vidshard.format.schema import ClipRecord, encode_example
    from vidshard.sampling import ClipSpec

    cv2.setNumThreads(1)  # as in a Beam worker
    spec = ClipSpec(config.n_frames, config.frame_step, config.height, config.width)
    decode_s = floor_s = encode_s = 0.0
    sizes: dict[str, list[int]] = {"jpeg": [], "jpeg_q90": [], "png": [], "raw": []}
    for i, path in enumerate(paths):
        data = path.read_bytes()
        t0 = time.process_time()
        frames, indices, *_ = decode_clips(data, path.name, spec)
        t1 = time.process_time()
        _grab_floor(path, int(indices.max()))
        t2 = time.process_time()
        record = ClipRecord(path.name, 0, "x", frames, indices)
        sizes["jpeg"].append(len(encode_example(record, "jpeg", 95)))
        t3 = time.process_time()
        if i < 20:  # png and raw sizes settle quickly; png encoding is slow
            sizes["png"].append(len(encode_example(record, "png")))
            sizes["raw"].append(len(encode_example(record, "raw")))
            sizes["jpeg_q90"].append(len(encode_example(record, "jpeg", 90)))
        decode_s, floor_s, encode_s = decode_s + t1 - t0, floor_s + t2 - t1, encode_s + t3 - t2
    n = len(paths)
    return {"decode_ms": 1000 * decode_s / n, "floor_ms": 1000 * floor_s / n, "encode_ms": 1000 * encode_s / n,
            "bytes": {k: float(np.mean(v)) for k, v in sizes.items()}}


def _iterate(dataset, min_seconds: float = 0.0, max_epochs: int = 1, warmup_batches: int = 2) -> tuple[int, float]:
    """Clips and seconds to iterate ``dataset`` for up to ``max_epochs`` (stopping once past ``min_seconds``).

    A few batches are taken first and not timed, so one-off start-up (tf.data tracing, TF's first
    ops) is not counted as throughput, for vidshard's reader and the tutorial's alike.
    """
    for _ in dataset.take(warmup_batches):
        pass
    clips, start = 0, time.perf_counter()
    for _ in range(max_epochs):
        for frames, _labels in dataset:
            clips += int(frames.shape[0])
        if time.perf_counter() - start >= min_seconds:
            break
    return clips, time.perf_counter() - start


def _input_rates(shards: Path, folder: Path, config: BenchConfig) -> dict[str, float]:
    """Training-input clips/s without a model: vidshard's reader (uncached, cached) and the tutorial's."""
    from vidshard.bench.tutorial import tutorial_dataset
    from vidshard.readers.tf_data import make_dataset

    uncached = make_dataset(str(shards), "train", config.batch_size, shuffle=True, cache=False)
    clips, seconds = _iterate(uncached)
    cached = make_dataset(str(shards), "train", config.batch_size, shuffle=True, cache=True)
    _iterate(cached, warmup_batches=0)  # the first epoch fills the cache
    cached_clips, cached_seconds = _iterate(cached, min_seconds=3.0, max_epochs=50)
    baseline = tutorial_dataset(folder, config.n_frames, config.batch_size, (config.height, config.width),
                                config.frame_step, training=True)
    base_clips, base_seconds = _iterate(baseline)
    return {"uncached": clips / seconds, "cached": cached_clips / cached_seconds, "tutorial": base_clips / base_seconds}


def _training_epochs(shards: Path, folder: Path, config: BenchConfig, num_classes: int) -> dict[str, float]:
    """Seconds per step of one CPU training epoch: from shards, from the tutorial's pipeline, from memory."""
    import keras
    import tensorflow as tf

    from vidshard.bench.tutorial import tutorial_dataset
    from vidshard.models.resnet21d import build_model
    from vidshard.readers.tf_data import make_dataset

    steps = max(1, config.train_videos // config.batch_size)
    model = build_model(config.n_frames, config.height, config.width, num_classes)
    model.compile(optimizer=keras.optimizers.Adam(1e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    shape = (config.batch_size, config.n_frames, config.height, config.width, 3)
    synthetic = tf.data.Dataset.from_tensors(
        (tf.zeros(shape, tf.uint8), tf.zeros((config.batch_size,), tf.int64))).repeat(steps)
    model.fit(synthetic.take(2), epochs=1, verbose=0)  # compile and warm up outside the timings

    def per_step(dataset) -> float:
        start = time.perf_counter()
        model.fit(dataset.take(steps), epochs=1, verbose=0)
        return (time.perf_counter() - start) / steps

    tutorial = tutorial_dataset(folder, config.n_frames, config.batch_size, (config.height, config.width),
                                config.frame_step, training=True)
    return {
        "shards": per_step(make_dataset(str(shards), "train", config.batch_size, shuffle=True, cache=False)),
        "tutorial": per_step(tutorial),
        "memory": per_step(synthetic),
        "steps": steps,
    }


def machine() -> dict[str, Any]:
    """Where the numbers were taken."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    from vidshard.version import __version__

    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "opencv": cv2.__version__, "vidshard": __version__}


def _subset(work: Path, name: str, paths: list[Path]) -> Path:
    """A folder of hard links to ``paths`` (same files, same layout), for a run on part of the videos."""
    folder = work / name
    for path in paths:
        link = folder / path.relative_to(work / "videos")
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            os.link(path, link)
    return folder


#: Targets of the job-size rows (issue 13): the ratio against the tutorial, or the wall time of one video.
_JOB_TARGETS = {1: ("<= 1.5 s wall", lambda seconds, _ratio: seconds <= 1.5),
                60: (">= 1.5x", lambda _seconds, ratio: ratio >= 1.5),
                500: (">= 4x", lambda _seconds, ratio: ratio >= 4)}


def _job_size_rows(work: Path, paths: list[Path], config: BenchConfig, log: Callable[[str], None]) -> list[Row]:
    """f: each job size end to end (the command as a user types it) against the tutorial's loop on the
    same videos; g: the cost curve's fixed and marginal cost, a least-squares line through the sizes."""
    rows, points = [], []
    for size in config.job_sizes:
        log(f"f: {size} videos, vidshard shard vs the tutorial's loop ...")
        folder = _subset(work, f"videos_{size}", paths[:size])
        run = run_shard(folder, work / f"shards_{size}", config, beam_args=())
        tutorial_seconds = _tutorial_preprocess(paths[:size], config)
        ours, base = run["written"] / run["seconds"], size / tutorial_seconds
        target, met = _JOB_TARGETS.get(size, ("report", lambda _s, _r: None))
        rows.append(Row("f", f"{size} videos, end to end (wall {run['seconds']:.2f} s vs {tutorial_seconds:.2f} s)",
                        ours, base, "clips/s", ours / base, target, met(run["seconds"], ours / base),
                        {"vidshard_seconds": run["seconds"], "tutorial_seconds": tutorial_seconds,
                         "peak_rss_mib": run["peak_rss"] / 2**20, "failed": run["failed"]}))
        points.append((size, run["seconds"], tutorial_seconds))
    if len(points) >= 2:
        sizes = np.array([p[0] for p in points], float)
        marginal, fixed = np.polyfit(sizes, np.array([p[1] for p in points]), 1)
        base_marginal, base_fixed = np.polyfit(sizes, np.array([p[2] for p in points]), 1)
        rows.append(Row("g", "cost curve: seconds per extra video (fixed cost in detail)", marginal, base_marginal,
                        "s/video", base_marginal / marginal, "report", None,
                        {"vidshard_fixed_seconds": fixed, "tutorial_fixed_seconds": base_fixed,
                         "points": [{"videos": n, "vidshard_seconds": a, "tutorial_seconds": b} for n, a, b in points]}))
    return rows


def run_benchmark(config: BenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Generate the videos, take every measurement, and return the rows and the machine."""
    work = Path(config.workdir)
    count = max(config.videos, *config.job_sizes) if config.job_sizes else config.videos
    log(f"writing {count} videos ({config.video.width}x{config.video.height} {config.video.fourcc}, "
        f"{config.video.total_frames} frames) ...")
    everything = write_video_folder(work / "videos", count, config)
    paths = everything[: config.videos]
    small = _subset(work, "videos_small", paths[: config.small_videos])

    log("a: vidshard shard (all cores) vs the tutorial's frames_from_video_file (one process) ...")
    big = run_shard(_subset(work, "videos_main", paths), work / "shards", config)
    tutorial_seconds = _tutorial_preprocess(paths, config)
    log("d: peak memory of shard, small run ...")
    small_run = run_shard(small, work / "shards_small", config)
    log("a2, c: per-clip decode cost and bytes per clip ...")
    costs = _decode_costs(paths, config)
    log("b: training input without a model ...")
    rates = _input_rates(work / "shards", work / "videos", config)
    log("e: one CPU training epoch ...")
    epochs = _training_epochs(work / "shards", work / "videos", config, config.classes)

    ours_rate, base_rate = big["written"] / big["seconds"], len(paths) / tutorial_seconds
    # The small run shares the big one's fixed cost (Beam start-up, planning, final writes), so the
    # difference of the two runs is the rate at which more videos go through.
    marginal_rate = (big["written"] - small_run["written"]) / max(big["seconds"] - small_run["seconds"], 1e-9)
    raw = costs["bytes"]["raw"]
    rows = [
        Row("a", "preprocessing, clips/s", ours_rate, base_rate, "clips/s", ours_rate / base_rate, ">= 4x",
            ours_rate / base_rate >= 4, {"vidshard_seconds": big["seconds"], "tutorial_seconds": tutorial_seconds,
                                         "workers": config.workers, "failed": big["failed"],
                                         "small_run_seconds": small_run["seconds"]}),
        Row("a", f"preprocessing, clips/s beyond the first {config.small_videos} (fixed cost removed)",
            marginal_rate, base_rate, "clips/s", marginal_rate / base_rate, ">= 4x", marginal_rate / base_rate >= 4),
        Row("a2", "decode cost per clip (one thread)", costs["decode_ms"], costs["floor_ms"], "ms",
            costs["decode_ms"] / costs["floor_ms"], "<= 1.5x the grab-only floor",
            costs["decode_ms"] / costs["floor_ms"] <= 1.5, {"jpeg_encode_ms": costs["encode_ms"]}),
        Row("b", "training input, uncached", rates["uncached"], rates["tutorial"], "clips/s",
            rates["uncached"] / rates["tutorial"], ">= 25x", rates["uncached"] / rates["tutorial"] >= 25),
        Row("b", "training input, cached", rates["cached"], rates["tutorial"], "clips/s",
            rates["cached"] / rates["tutorial"], ">= 100x and >= 700 clips/s",
            rates["cached"] / rates["tutorial"] >= 100 and rates["cached"] >= 700),
        Row("c", "bytes per clip, jpeg (q95)", costs["bytes"]["jpeg"], raw, "bytes", costs["bytes"]["jpeg"] / raw,
            "<= 1/8 of raw", costs["bytes"]["jpeg"] / raw <= 1 / 8,
            {"png": costs["bytes"]["png"], "raw": raw, "jpeg_q90": costs["bytes"]["jpeg_q90"],
             "stored_jpeg_per_clip": big["bytes"] / max(big["written"], 1)}),
        Row("d", f"peak memory of shard, {config.videos} vs {config.small_videos} videos", big["peak_rss"] / 2**20,
            small_run["peak_rss"] / 2**20, "MiB", big["peak_rss"] / small_run["peak_rss"], "<= 1.3",
            big["peak_rss"] / small_run["peak_rss"] <= 1.3),
        Row("e", "CPU training, seconds per step", epochs["shards"], epochs["tutorial"], "s/step",
            epochs["tutorial"] / epochs["shards"], "report", None,
            {"model_only_s_per_step": epochs["memory"], "steps": epochs["steps"], "batch_size": config.batch_size}),
    ]
    rows += _job_size_rows(work, everything, config, log)
    return {"machine": machine(), "config": _config_dict(config), "rows": [asdict(r) for r in rows]}


def _config_dict(config: BenchConfig) -> dict[str, Any]:
    data = asdict(config)
    data["video"] = asdict(config.video)
    return data


def to_markdown(result: dict[str, Any]) -> str:
    """The result table as Markdown (ratio = vidshard over baseline; for e, tutorial over vidshard)."""
    lines = ["| # | what | vidshard | baseline | ratio | target | met |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in result["rows"]:
        base = "—" if row["baseline"] is None else f"{row['baseline']:.4g} {row['unit']}"
        met = {True: "yes", False: "**no**", None: "—"}[row["met"]]
        lines.append(f"| {row['key']} | {row['what']} | {row['vidshard']:.4g} {row['unit']} | {base} | "
                     f"{row['ratio']:.3g}x | {row['target']} | {met} |")
    m = result["machine"]
    lines.append("")
    lines.append(f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}, "
                 f"OpenCV {m['opencv']}, vidshard {m['vidshard']}.")
    return "\n".join(lines)


def save_json(result: dict[str, Any], path: str) -> None:
    Path(path).write_text(json.dumps(result, indent=2, default=float))
