"""Sampling by time and by segments, and evaluation clips: the rules, then the CLI on real videos.

The CLI tests write "counter" videos with OpenCV: frame i is a flat grey of value 10 + 5i/2, so the
stored pixels tell which source frame was taken (matched against an independent decode of the
video), independently of the stored frame indices.
"""
from __future__ import annotations

import hashlib
import json
import os

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from vidshard.cli import main
from vidshard.format.info import load_info
from vidshard.sampling import ClipSpec, clip_indices, clip_starts
from vidshard.testing.shards import read_records

NTSC = 30000 / 1001
FRAMES = 90


# --- the rules -------------------------------------------------------------------------------

@pytest.mark.parametrize("source_fps", [25.0, NTSC, 50.0])
def test_time_sampling_takes_the_frame_nearest_each_time(source_fps):
    spec = ClipSpec(n_frames=8, sampling="time", fps=4.0, clips_per_video=3, seed=2)
    indices = clip_indices("v.avi", 300, spec, "train", source_fps)
    for row in indices:
        elapsed = (row - row[0]) / source_fps  # seconds after the clip's first frame
        assert np.all(np.abs(elapsed - np.arange(8) / 4.0) <= 0.5 / source_fps + 1e-9)


def test_time_sampling_covers_the_same_seconds_at_25_and_29_97_fps():
    spec = ClipSpec(n_frames=10, sampling="time", fps=5.0)
    spans = [float(np.ptp(clip_indices("v.avi", 400, spec, "train", fps)[0])) / fps for fps in (25.0, NTSC)]
    assert abs(spans[0] - 1.8) < 1e-9 and abs(spans[1] - 1.8) <= 0.5 / NTSC
    # Counting frames instead (the tutorial's step) covers 17% less time at 29.97 fps.
    step = ClipSpec(n_frames=10, frame_step=5)
    assert float(np.ptp(clip_indices("v.avi", 400, step)[0])) / NTSC < 0.84 * 1.8


@pytest.mark.parametrize("total", [7, 23, 100, 301])
def test_segments_take_one_frame_from_each_equal_part_and_cover_the_video(total):
    spec = ClipSpec(n_frames=6, sampling="segments", clips_per_video=4, seed=3)
    bounds = [(i * total) // 6 for i in range(7)]
    train = clip_indices("v.avi", total, spec, "train")
    for row in train:
        for i, index in enumerate(row):
            assert bounds[i] <= index < max(bounds[i + 1], bounds[i] + 1)
    assert train[:, 0].min() < bounds[1] and train[:, -1].max() >= bounds[5]  # the whole video
    assert np.array_equal(train, clip_indices("v.avi", total, spec, "train"))  # seeded
    if total >= 100:
        assert not np.array_equal(train, clip_indices("v.avi", total, ClipSpec(
            n_frames=6, sampling="segments", clips_per_video=4, seed=4), "train"))
    centre = clip_indices("v.avi", total, ClipSpec(n_frames=6, sampling="segments"), "test")
    assert centre.tolist() == [[bounds[i] + (bounds[i + 1] - bounds[i]) // 2 for i in range(6)]]


def test_evaluation_clips_are_spread_uniformly_and_train_stays_random():
    spec = ClipSpec(n_frames=5, frame_step=3, clips_per_video=2, eval_clips=4, seed=1)
    assert spec.span == 13
    assert clip_starts("v.avi", 100, spec, "test") == [0, 29, 58, 87]  # 87 = the last valid start
    assert clip_starts("v.avi", 100, spec, "val") == clip_starts("w.avi", 100, spec, "val")  # by position only
    assert clip_starts("v.avi", 100, spec, "train") == clip_starts("v.avi", 100, ClipSpec(
        n_frames=5, frame_step=3, clips_per_video=2, seed=1), "train")
    assert clip_starts("v.avi", 100, ClipSpec(n_frames=5, frame_step=3, eval_clips=1), "test") == [43]  # the middle of 0..87
    # Without eval_clips, step keeps the tutorial's seeded starts on every split (its bytes).
    plain = ClipSpec(n_frames=5, frame_step=3, clips_per_video=2, seed=1)
    assert clip_starts("v.avi", 100, plain, "test") == clip_starts("v.avi", 100, plain, "train")


@pytest.mark.parametrize("kwargs, message", [
    ({"sampling": "time"}, "`fps` is needed by time sampling"),
    ({"fps": 5.0}, "`fps` is for time sampling only"),
    ({"sampling": "time", "fps": -1.0}, "`fps` must be a positive number"),
    ({"sampling": "jump"}, "`sampling` must be one of step, time, segments"),
    ({"eval_clips": 0}, "`eval_clips` must be a positive integer"),
])
def test_clip_spec_refuses_options_that_do_not_fit(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClipSpec(**kwargs)


# --- through the CLI, on real videos -----------------------------------------------------------

def _counter_video(path, fps: float) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    for i in range(FRAMES):
        writer.write(np.full((48, 64, 3), 10 + (5 * i) // 2, np.uint8))
    writer.release()


@pytest.fixture(scope="module")
def counters(tmp_path_factory):
    """Two classes, each with two 25 fps and two 29.97 fps videos of 90 frames."""
    root = tmp_path_factory.mktemp("counters") / "src"
    for cls in ("Jump", "Walk"):
        (root / cls).mkdir(parents=True)
        for i, fps in enumerate((25.0, NTSC, 25.0, NTSC)):
            _counter_video(root / cls / f"{cls.lower()}_{i}.avi", fps)
    return root


def shard(*args: str):
    return CliRunner().invoke(main, ["shard", *args, "--size", "32", "--splits", "train=0.5,test=0.5",
                                     "--quiet"], catch_exceptions=False)


def _levels(path) -> np.ndarray:
    """The grey level of every frame of a counter video, decoded independently with OpenCV."""
    capture = cv2.VideoCapture(str(path))
    levels = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return np.asarray(levels)
        levels.append(frame.mean())


def _source_frames(root, record) -> list[list[int]]:
    """Which source frame each stored (letterboxed) frame shows: the nearest grey level's."""
    levels = _levels(root / record.video_id)
    assert len(levels) == FRAMES
    return [[int(np.abs(levels - frame[12:20, 12:20].mean()).argmin()) for frame in clip] for clip in record.frames]


def _records(out) -> dict[str, list]:
    return {split: read_records(out, split) for split in load_info(str(out)).splits}


def test_clip_seconds_sampling_end_to_end(counters, tmp_path):
    out = tmp_path / "time"
    result = shard(str(counters), str(out), "--clip-seconds", "2", "--n-frames", "5", "--eval-clips", "3")
    assert result.exit_code == 0, result.output
    info = load_info(str(out))
    assert info.format_version == 5 and (info.clip.sampling, info.clip.fps, info.clip.eval_clips) == ("time", 2.5, 3)
    records = _records(out)
    assert {len(r.frames) for r in records["train"]} == {1} and {len(r.frames) for r in records["test"]} == {3}
    fps_seen = set()
    for record in records["train"] + records["test"]:
        assert record.source_frames == FRAMES
        fps_seen.add(round(record.source_fps, 2))
        # The stored pixels are the source frames the record says it took, shown at the times it says.
        assert _source_frames(counters, record) == record.frame_indices.tolist()
        np.testing.assert_allclose(record.frame_times, record.frame_indices / record.source_fps, atol=1e-3)
        for row in record.frame_indices:
            # 5 frames at 2.5 fps: 1.6 s from the first to the last, whatever the source's rate.
            assert abs((row[-1] - row[0]) / record.source_fps - 1.6) <= 0.5 / record.source_fps
        if len(record.frames) == 3:  # evaluation clips: first and last valid start, and the middle
            span = int(record.frame_indices[0, -1] - record.frame_indices[0, 0]) + 1
            assert record.frame_indices[:, 0].tolist() == [0, (FRAMES - span) // 2, FRAMES - span]
    assert fps_seen == {25.0, 29.97}
    verified = CliRunner().invoke(main, ["inspect", str(out), "--verify"])
    assert verified.exit_code == 0 and "at 2.5 fps; 3 spread uniformly per video outside train" in verified.output

    same = tmp_path / "fps"
    assert shard(str(counters), str(same), "--fps", "2.5", "--n-frames", "5", "--eval-clips", "3").exit_code == 0
    digest = [hashlib.sha256((folder / name).read_bytes()).hexdigest() for folder in (out, same)
              for name in sorted(os.listdir(out)) if name.endswith(".tfrecord")]
    assert digest[:len(digest) // 2] == digest[len(digest) // 2:]  # --clip-seconds 2 is --fps 5/2


def test_segment_sampling_end_to_end(counters, tmp_path):
    out = tmp_path / "segments"
    result = shard(str(counters), str(out), "--sampling", "segments", "--n-frames", "6", "--clips-per-video", "2")
    assert result.exit_code == 0, result.output
    records = _records(out)
    bounds = [(i * FRAMES) // 6 for i in range(7)]
    for split, split_records in records.items():
        for record in split_records:
            assert len(record.frames) == 2 and record.source_frames == FRAMES
            assert _source_frames(counters, record) == record.frame_indices.tolist()
            for row in record.frame_indices:
                assert all(bounds[i] <= index < bounds[i + 1] for i, index in enumerate(row))
            if split == "test":  # evaluation: clip j of 2 in the middle of the j-th half of each segment
                assert record.frame_indices.tolist() == [[b + 15 // 4 for b in bounds[:6]],
                                                         [b + 45 // 4 for b in bounds[:6]]]
    assert json.loads((out / "dataset_info.json").read_text())["clip"]["sampling"] == "segments"


def test_eval_clips_reach_every_reader(counters, tmp_path):
    import tensorflow as tf  # noqa: F401 (the tf.data reader)

    from vidshard.readers.numpy_reader import ShardReader
    from vidshard.readers.tf_data import make_dataset

    out = tmp_path / "eval"
    assert shard(str(counters), str(out), "--n-frames", "4", "--frame-step", "5", "--eval-clips", "3").exit_code == 0
    info = load_info(str(out))
    assert info.format_version == 4 and not info.clip.needs_timing
    test_videos = info.splits["test"].num_examples
    clips = [x for x, _ in make_dataset(str(out), "test", 2, shuffle=False, cache=False, clips="all")]
    assert sum(len(batch) for batch in clips) == 3 * test_videos
    reader = ShardReader(str(out), "test", batch_size=None, shuffle=False, clips="all")
    assert len(reader) == 3 * test_videos and sum(1 for _ in reader) == 3 * test_videos
    train = [x for x, _ in make_dataset(str(out), "train", 2, shuffle=False, cache=False, clips="all")]
    assert sum(len(batch) for batch in train) == info.splits["train"].num_examples


def test_time_sampled_outputs_with_frame_times_reach_every_reader(counters, tmp_path):
    """Version 5 (records with frame_times) reads in tf.data, the NumPy reader and inspect --verify."""
    import tensorflow as tf  # noqa: F401 (the tf.data reader)

    from vidshard.readers.numpy_reader import ShardReader
    from vidshard.readers.tf_data import make_dataset

    out = tmp_path / "v5"
    assert shard(str(counters), str(out), "--fps", "5", "--n-frames", "4").exit_code == 0
    info = load_info(str(out))
    assert info.format_version == 5 and "frame_times" in info.features
    videos = info.splits["test"].num_examples
    assert sum(len(x) for x, _ in make_dataset(str(out), "test", 2, shuffle=False, cache=False)) == videos
    assert sum(1 for _ in ShardReader(str(out), "test", batch_size=None, shuffle=False)) == videos
    assert CliRunner().invoke(main, ["inspect", str(out), "--verify"]).exit_code == 0


@pytest.mark.parametrize("args, message", [
    (["--fps", "5", "--clip-seconds", "2"], "give --fps or --clip-seconds, not both"),
    (["--sampling", "time"], "--sampling time needs --fps F or --clip-seconds S"),
    (["--sampling", "segments", "--fps", "5"], "--fps applies to --sampling time, not segments"),
    (["--fps", "5", "--frame-step", "3"], "--frame-step applies to --sampling step, not time"),
    (["--fps", "zero"], "Invalid value for '--fps': 'zero' is not a number"),
    (["--clip-seconds", "-2"], "Invalid value for '--clip-seconds': must be a positive number"),
    (["--eval-clips", "0"], "Invalid value for '--eval-clips': 0 is not in the range x>=1."),
    (["--sampling", "tsn"], "Invalid value for '--sampling': 'tsn' is not one of 'step', 'time', 'segments', 'all'."),
])
def test_sampling_options_that_do_not_fit_are_one_line_before_any_work(counters, tmp_path, args, message):
    out = tmp_path / "never"
    result = CliRunner().invoke(main, ["shard", str(counters), str(out), *args])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and lines[-1].startswith(f"Error: {message}") and not out.exists()  # a usage error
