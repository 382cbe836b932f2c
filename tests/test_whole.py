"""Whole videos at a chosen rate (issue 23, item 6): ``--sampling all``, clips drawn when reading.

Videos whose frames are numbered by their grey level are sharded through the CLI; every stored
frame is identified by its level, so the tests check which source frames were stored and which
ones each reader's clip holds, not only shapes.
"""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from vidshard.cli import main
from vidshard.format.info import load_info
from vidshard.readers.numpy_reader import ShardReader
from vidshard.sampling import ClipSpec, draw_stored, whole_indices
from vidshard.testing.shards import read_records

FRAMES = {"Jump": (90, 60), "Walk": (75, 45)}  #: frames of each class's two videos (25 fps)


def _level(i: int) -> int:
    return 10 + 2 * i


@pytest.fixture(scope="module")
def counters(tmp_path_factory):
    root = tmp_path_factory.mktemp("whole") / "src"
    for cls, lengths in FRAMES.items():
        (root / cls).mkdir(parents=True)
        for n, frames in enumerate(lengths):
            writer = cv2.VideoWriter(str(root / cls / f"{cls.lower()}_{n}.avi"), cv2.VideoWriter_fourcc(*"MJPG"),
                                     25.0, (64, 48))
            for i in range(frames):
                writer.write(np.full((48, 64, 3), _level(i), np.uint8))
            writer.release()
    capture = cv2.VideoCapture(str(root / "Jump" / "jump_0.avi"))
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        _DECODED.append(float(frame.mean()))
    return root


_DECODED: list[float] = []  #: every frame's grey level as OpenCV decodes the longest video


def _source_index(frame: np.ndarray) -> int:
    """The source frame a stored frame shows, by its grey level (-1 for a zero-padded frame)."""
    if not frame.any():
        return -1
    return int(np.abs(np.asarray(_DECODED) - frame[12:20, 12:20].mean()).argmin())


def test_whole_indices_keep_every_kth_frame_or_the_frames_at_a_rate():
    assert whole_indices(10, ClipSpec(sampling="all", frame_step=3)).tolist() == [0, 3, 6, 9]
    assert whole_indices(100, ClipSpec(sampling="all", frame_step=2), window=(31, 38)).tolist() == [31, 33, 35, 37]
    # 25 fps at 10 fps: the frame nearest every 0.1 s (0.5 ties go to the later frame).
    at_10 = whole_indices(25, ClipSpec(sampling="all", frame_step=1, fps=10.0), source_fps=25.0)
    assert at_10.tolist() == [0, 3, 5, 8, 10, 13, 15, 18, 20, 23]
    # Variable rate: by the frame times, never index / fps; above the source rate, each frame once.
    times = np.array([0, 0.1, 0.2, 1.2, 2.2])
    assert whole_indices(5, ClipSpec(sampling="all", frame_step=1, fps=1.0), 2.0, times).tolist() == [0, 3, 4]
    assert whole_indices(5, ClipSpec(sampling="all", frame_step=1, fps=50.0), 2.0, times).tolist() == [0, 1, 2, 3, 4]


def test_draw_stored_is_seeded_fresh_per_key_and_centred_for_evaluation():
    spec = ClipSpec(n_frames=4, sampling="all", frame_step=1)
    draws = {tuple(draw_stored("v.avi", 30, spec, key).tolist()) for key in range(20)}
    assert len(draws) > 5 and all(np.all(np.diff(d) == 1) and 0 <= d[0] <= 26 for d in draws)
    assert draw_stored("v.avi", 30, spec, 7).tolist() == draw_stored("v.avi", 30, spec, 7).tolist()
    assert draw_stored("v.avi", 30, spec, None).tolist() == [13, 14, 15, 16]  # the middle start of 27
    assert draw_stored("v.avi", 2, spec, 3).tolist() == [0, 1, -1, -1]  # shorter than a clip: padded
    tsn = ClipSpec(n_frames=4, sampling="all", frame_step=1, draw="segments")
    draws = [draw_stored("v.avi", 40, tsn, key) for key in range(20)]
    assert all([int(d) // 10 for d in draw] == [0, 1, 2, 3] for draw in draws)  # one from each tenth-of-40 part
    assert len({tuple(d.tolist()) for d in draws}) > 5
    assert draw_stored("v.avi", 40, tsn, None).tolist() == [5, 15, 25, 35]  # centred in each part


def test_sampling_all_end_to_end_through_the_cli_the_numpy_and_tf_data_readers(counters, tmp_path):
    out = tmp_path / "whole"
    result = CliRunner().invoke(main, ["shard", str(counters), str(out), "--sampling", "all", "--frame-step", "3",
                                       "--n-frames", "4", "--size", "32", "--splits", "train=0.5,test=0.5", "--shards", "1",
                                       "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    info = load_info(str(out))
    assert info.format_version == 6 and info.whole and "frame_times" in info.features
    assert info.clip_shape == (4, 32, 32, 3)
    lengths = {}
    for split in ("train", "test"):
        for record in read_records(out, split):
            total = FRAMES[record.label_name][int(record.video_id[-5])]
            # every third frame, unpadded, with its time; one sequence of its own length
            assert record.frame_indices.tolist() == [list(range(0, total, 3))]
            assert np.allclose(record.frame_times, record.frame_indices / 25.0, atol=1e-3)
            assert record.source_frames == total and record.frames.shape[:2] == (1, len(range(0, total, 3)))
            assert [_source_index(f) for f in record.frames[0]] == record.frame_indices[0].tolist()
            lengths[record.video_id] = record.frames.shape[1]
    assert len(set(lengths.values())) > 1  # variable length

    def clip_sources(clip):
        return [_source_index(frame) for frame in clip]

    # NumPy reader: each clip is 4 consecutive stored frames; a new epoch draws new clips, the same seed the same.
    reader = ShardReader(str(out), "train", batch_size=None, shuffle=False, seed=3, num_workers=0)
    epochs = [[clip_sources(x) for x, _ in reader] for _ in range(4)]
    for clips in epochs:
        assert len(clips) == info.splits["train"].num_examples
        assert all(np.all(np.diff(c) == 3) and c[0] % 3 == 0 for c in clips)
    assert len({tuple(map(tuple, clips)) for clips in epochs}) > 1
    again = ShardReader(str(out), "train", batch_size=None, shuffle=False, seed=3, num_workers=0)
    assert [clip_sources(x) for x, _ in again] == epochs[0]
    centred = [clip_sources(x) for x, _ in ShardReader(str(out), "test", batch_size=None, shuffle=False, clips="all")]
    ids = [r.video_id for r in read_records(out, "test")]
    for video_id, clip in zip(ids, centred):
        stored = lengths[video_id]
        assert clip[0] == 3 * ((stored - 4) // 2)  # the middle of the valid starts, every epoch

    # tf.data: the same rules, drawn after the cache every epoch; evaluation clips equal the NumPy reader's.
    from vidshard.readers.tf_data import make_dataset

    ds = make_dataset(str(out), "train", 2, shuffle=False, seed=5, cache=True)
    tf_epochs = [[clip_sources(clip) for batch, _ in ds for clip in batch.numpy()] for _ in range(4)]
    for clips in tf_epochs:
        assert len(clips) == info.splits["train"].num_examples
        assert all(np.all(np.diff(c) == 3) and c[0] % 3 == 0 for c in clips)
    assert len({tuple(map(tuple, clips)) for clips in tf_epochs}) > 1
    tf_centred = [clip_sources(clip) for batch, _ in make_dataset(str(out), "test", 2, shuffle=False, cache=False,
                                                                  clips="all") for clip in batch.numpy()]
    assert tf_centred == centred
    numpy_frames = np.stack([x for x, _ in ShardReader(str(out), "test", batch_size=None, shuffle=False, clips="all")])
    tf_frames = np.concatenate([b.numpy() for b, _ in make_dataset(str(out), "test", 2, shuffle=False, cache=False,
                                                                   clips="all")])
    assert np.array_equal(numpy_frames, tf_frames)  # the same pixels from both readers
    assert CliRunner().invoke(main, ["inspect", str(out), "--verify"]).exit_code == 0


def test_draw_segments_gives_tsn_clips_from_the_stored_sequence_every_epoch(counters, tmp_path):
    out = tmp_path / "tsn"
    result = CliRunner().invoke(main, ["shard", str(counters), str(out), "--sampling", "all", "--draw", "segments",
                                       "--n-frames", "3", "--size", "32", "--splits", "train=1.0", "--shards", "1",
                                       "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    info = load_info(str(out))
    assert info.clip.draw == "segments" and info.format_version == 6
    lengths = {r.video_id: r.frames.shape[1] for r in read_records(out, "train")}
    ids = [r.video_id for r in read_records(out, "train")]
    reader = ShardReader(str(out), "train", batch_size=None, shuffle=False, seed=1, num_workers=0)
    epochs = [[[_source_index(f) for f in x] for x, _ in reader] for _ in range(3)]
    for clips in epochs:
        for video_id, clip in zip(ids, clips):
            parts = [(i * lengths[video_id]) // 3 for i in range(4)]
            assert all(parts[i] <= clip[i] < parts[i + 1] for i in range(3)), (video_id, clip)
    assert len({tuple(map(tuple, clips)) for clips in epochs}) > 1


def test_sampling_all_at_an_fps(counters, tmp_path):
    out = tmp_path / "fps"
    result = CliRunner().invoke(main, ["shard", str(counters), str(out), "--sampling", "all", "--fps", "10",
                                       "--n-frames", "3", "--size", "32", "--splits", "train=1.0", "--shards", "1", "--quiet"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for record in read_records(out, "train"):
        total = FRAMES[record.label_name][int(record.video_id[-5])]
        expected = whole_indices(total, ClipSpec(sampling="all", frame_step=1, fps=10.0), source_fps=25.0)
        assert record.frame_indices[0].tolist() == expected.tolist()
        assert np.all(np.abs(np.diff(record.frame_times[0]) - 0.1) <= 0.02 + 1e-6)


@pytest.mark.parametrize("args, message", [
    (["--sampling", "all", "--fps", "5", "--frame-step", "2"], "--sampling all stores every --frame-step-th frame or"),
    (["--sampling", "all", "--clips-per-video", "2"], "--sampling all stores one sequence per video"),
    (["--sampling", "all", "--clip-seconds", "2"], "--clip-seconds applies to --sampling time, not all"),
    (["--draw", "segments"], "--draw applies to --sampling all, not step"),
])
def test_sampling_all_options_that_do_not_fit_are_usage_errors(counters, tmp_path, args, message):
    """Click's usage error, exit status 2, as for every bad value: one Error: line after the usage."""
    out = tmp_path / "never"
    result = CliRunner().invoke(main, ["shard", str(counters), str(out), *args])
    errors = [line for line in result.stderr.strip().splitlines() if line.startswith("Error:")]
    assert result.exit_code == 2 and len(errors) == 1 and errors[0].startswith(f"Error: {message}"), result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


#: Grain in a subprocess (a second framework): each epoch's clips as the mean grey level of each frame.
GRAIN_SCRIPT = """
import json, sys
from vidshard.readers.grain_data import make_dataset

def levels(dataset):
    return [[float(f[12:20, 12:20].mean()) if f.any() else -1.0 for f in frames] for frames, _ in dataset]

out = sys.argv[1]
print(json.dumps({"epochs": levels(make_dataset(out, "train", seed=4, shuffle=False, num_epochs=3)),
                  "centred": levels(make_dataset(out, "train", shuffle=False, clips=0, num_epochs=1))}))
"""


def test_sampling_all_in_array_record_reads_in_grain_with_a_fresh_clip_per_epoch(counters, tmp_path):
    import json
    import subprocess
    import sys

    pytest.importorskip("grain", reason="needs the grain extra: pip install 'vidshard[grain]'")
    out = tmp_path / "ar"
    result = CliRunner().invoke(main, ["shard", str(counters), str(out), "--sampling", "all", "--frame-step", "2",
                                       "--n-frames", "5", "--size", "32", "--splits", "train=1.0", "--shards", "1", "--format",
                                       "array_record", "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    proc = subprocess.run([sys.executable, "-c", GRAIN_SCRIPT, str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    decoded = np.asarray(_DECODED)

    def sources(clip):
        return [int(np.abs(decoded - level).argmin()) for level in clip]

    epochs = [sources(clip) for clip in found["epochs"]]
    assert len(epochs) == 3 * 4 and all(np.all(np.diff(c) == 2) and c[0] % 2 == 0 for c in epochs)
    assert len({tuple(map(tuple, epochs[e * 4:(e + 1) * 4])) for e in range(3)}) > 1  # new clips per epoch
    from vidshard.format.schema import parse_example
    from vidshard.readers.random_access import SplitSource

    source = SplitSource(out, "train")
    lengths = [parse_example(source[i], "jpeg").frames.shape[1] for i in range(len(source))]
    assert [sources(c)[0] for c in found["centred"]] == [2 * ((n - 5) // 2) for n in lengths]


#: TFDS in a subprocess (TensorFlow starts there): export, then every train example's frames and indices.
TFDS_SCRIPT = """
import sys
import numpy as np
import tensorflow_datasets as tfds
from vidshard.cli import main
from vidshard.tfds_export import exact_decoders

out, npz = sys.argv[1], sys.argv[2]
main(["export-tfds", out], standalone_mode=False)
builder = tfds.builder_from_directory(out + "/tfds")
arrays = {}
for i, example in enumerate(tfds.as_numpy(builder.as_dataset(split="train", shuffle_files=False,
                                                             decoders=exact_decoders("jpeg")))):
    arrays[f"{i}/frames"], arrays[f"{i}/indices"] = example["frames"], example["frame_indices"]
    arrays[f"{i}/times"], arrays[f"{i}/id"] = example["frame_times"], np.array(example["video_id"])
np.savez(npz, **arrays)
"""


def test_export_tfds_declares_sequences_of_their_own_length(counters, tmp_path):
    import subprocess
    import sys

    pytest.importorskip("tensorflow_datasets", reason="export-tfds needs the tfds extra: pip install 'vidshard[tfds]'")
    out = tmp_path / "tfds_whole"
    result = CliRunner().invoke(main, ["shard", str(counters), str(out), "--sampling", "all", "--frame-step", "4",
                                       "--n-frames", "3", "--size", "24x32", "--splits", "train=1.0", "--shards", "1",
                                       "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    npz = tmp_path / "tfds.npz"
    proc = subprocess.run([sys.executable, "-c", TFDS_SCRIPT, str(out), str(npz)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = read_records(out, "train")
    with np.load(npz) as arrays:
        assert len(records) == 4 and {key.split("/")[0] for key in arrays} == {"0", "1", "2", "3"}
        for i, record in enumerate(records):
            assert str(arrays[f"{i}/id"].item().decode()) == record.video_id
            np.testing.assert_array_equal(arrays[f"{i}/frames"], record.frames[0])  # the same pixels, own length
            assert arrays[f"{i}/indices"].tolist() == record.frame_indices[0].tolist()
            np.testing.assert_allclose(arrays[f"{i}/times"], record.frame_times[0], atol=1e-6)


#: Run in a subprocess (PyTorch beside the TensorFlow and Beam that this module's other tests load): the
#: clips ShardIterableDataset yields for 3 epochs, through a DataLoader of 0 or 2 workers, saved as .npy.
_TORCH_EPOCHS = r"""
import sys
import numpy as np
import torch
from torch.utils.data import DataLoader
from vidshard.readers.torch_data import ShardIterableDataset

data, workers, save = sys.argv[1], int(sys.argv[2]), sys.argv[3]
dataset = ShardIterableDataset(data, "train", shuffle=False, seed=3)
epochs = []
for epoch in range(3):
    dataset.set_epoch(epoch)
    clips = [frames.numpy() for frames, _ in DataLoader(dataset, batch_size=None, num_workers=workers)]
    epochs.append(np.stack(clips))
np.save(save, np.stack(epochs))
"""


@pytest.mark.parametrize("workers", [0, 2])
def test_torch_dataset_draws_a_fresh_clip_per_epoch_by_the_numpy_readers_rules(counters, tmp_path, workers):
    """PyTorch's ShardIterableDataset over whole videos: each epoch a new clip of 4 consecutive stored frames,
    the very clip the NumPy reader draws for the same (seed, epoch) and part (each loader worker reads one)."""
    import importlib.util
    import subprocess
    import sys

    from vidshard.parts import Part

    if importlib.util.find_spec("torch") is None:
        pytest.skip("PyTorch is not installed (an optional extra): pip install -e '.[torch]'")
    out = tmp_path / "whole"
    result = CliRunner().invoke(main, ["shard", str(counters), str(out), "--sampling", "all", "--frame-step", "2",
                                       "--n-frames", "4", "--size", "32", "--splits", "train=1.0", "--quiet"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    saved = tmp_path / "torch.npy"
    run = subprocess.run([sys.executable, "-c", _TORCH_EPOCHS, str(out), str(workers), str(saved)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    torch_epochs = np.load(saved)
    assert torch_epochs.shape == (3, 4, 4, 32, 32, 3)  # epochs, videos, frames of a clip
    whole = Part.whole(str(out), None, "train")
    for epoch, clips in enumerate(torch_epochs):
        # The dataset reads rank 0 of 1's part, cut between its loader workers (none: the loader's own process).
        parts = [whole.for_rank(0, 1).split(w, max(workers, 1)) for w in range(max(workers, 1))]
        expected = [x for part in parts for x, _ in ShardReader(str(out), "train", batch_size=None, shuffle=False,
                                                                 seed=3, epoch=epoch, num_workers=0, part=part)]
        if workers == 2:  # the DataLoader takes one example from each worker in turn
            expected = [x for pair in zip(expected[:2], expected[2:]) for x in pair]
        assert np.array_equal(clips, np.stack(expected))
        for clip in clips:
            sources = [_source_index(frame) for frame in clip]
            assert np.all(np.diff(sources) == 2) and sources[0] % 2 == 0  # 4 consecutive stored frames
    assert len({torch_epochs[e].tobytes() for e in range(3)}) == 3  # a fresh clip every epoch


def test_sampling_all_without_shards_is_auto_through_the_cli(counters, tmp_path):
    out = tmp_path / "auto"
    result = CliRunner().invoke(main, ["shard", str(counters), str(out), "--sampling", "all", "--n-frames", "4",
                                       "--size", "32", "--splits", "train=0.5,test=0.5", "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    info = load_info(str(out))
    assert {split: s.shards for split, s in info.splits.items()} == {
        "train": ["train-00000-of-00001.tfrecord"], "test": ["test-00000-of-00001.tfrecord"]}
    assert sum(s.num_examples for s in info.splits.values()) == 4


def _noise_videos(root, frames: int, per_class: int = 4) -> None:
    """``per_class`` MJPG videos of ``frames`` noise frames in each of two class folders (JPEG cannot shrink noise)."""
    rng = np.random.default_rng(frames)
    for cls in ("Jump", "Walk"):
        (root / cls).mkdir(parents=True)
        for n in range(per_class):
            writer = cv2.VideoWriter(str(root / cls / f"{cls.lower()}_{n}.avi"), cv2.VideoWriter_fourcc(*"MJPG"),
                                     25.0, (64, 48))
            for _ in range(frames):
                writer.write(rng.integers(0, 256, (48, 64, 3), np.uint8))
            writer.release()


def _whole_job(source, out, beam_args, shard_bytes: int, resume: bool = False):
    """--sampling all, --shards auto (None) aiming at ``shard_bytes``: the request and its result."""
    from vidshard.pipelines.launch import ShardRequest, run_job
    from vidshard.sampling import EncodeSettings
    from vidshard.planning import Selection, catalog_of, plan
    from vidshard.sources import open_source

    with open_source(str(source)) as src:
        planned = plan(catalog_of(src.list_members(), None, None), Selection(splits="train=0.5,test=0.5", seed=3))
    spec = ClipSpec(n_frames=4, frame_step=1, height=32, width=32, sampling="all", seed=3)
    request = ShardRequest(str(source), str(out), planned, EncodeSettings(spec, "jpeg", 90), shard_bytes=shard_bytes)
    return request, run_job(request, beam_args, resume=resume)


def test_shards_auto_for_whole_videos_follows_the_real_bytes(tmp_path):
    """Long videos get more shards than as many short ones; the count and the cut are the real bytes'
    (shards_for_bytes of the split's framed examples), and the bytes are the same on 1 or 2 workers."""
    import hashlib

    from vidshard.format import naming

    _noise_videos(tmp_path / "short", 10)
    _noise_videos(tmp_path / "long", 60)
    target = 120_000  # the long split (about 313 KB) takes 3 shards, below its cap of 4 videos
    counts = {}
    for name in ("short", "long"):
        out = tmp_path / f"{name}-out"
        _, result = _whole_job(tmp_path / name, out, ["--direct_running_mode=in_memory", "--direct_num_workers=1"],
                               target)
        info = load_info(str(out))
        for split, split_info in info.splits.items():
            files = [out / shard for shard in split_info.shards]
            total = sum(path.stat().st_size for path in files)  # TFRecord: every example plus its 16-byte framing
            assert len(files) == naming.shards_for_bytes(split_info.num_examples, total, target)
            assert [f.name for f in files] == [naming.shard_name(split, i, len(files)) for i in range(len(files))]
            # the cut is assign_shards' over the split's order: contiguous runs whose lengths differ by at most one
            ids = [r.video_id for r in read_records(out, split)]
            assert ids == sorted(ids, key=lambda video_id: naming.order_key(3, video_id))
            assert max(split_info.shard_lengths) - min(split_info.shard_lengths) <= 1
            counts[name, split] = len(files)
        assert info.extra["shards_requested"] == "auto" and result.failed == {"train": 0, "test": 0}
    assert counts["short", "train"] == 1 and counts["long", "train"] == 3

    # The same job on two worker processes writes the same bytes, dataset_info.json included.
    again = tmp_path / "long-again"
    _whole_job(tmp_path / "long", again, ["--direct_running_mode=multi_processing", "--direct_num_workers=2"], target)
    first = tmp_path / "long-out"
    names = sorted(os.listdir(first))
    assert names == sorted(os.listdir(again))
    digest = {name: hashlib.sha256((first / name).read_bytes()).hexdigest() for name in names}
    assert digest == {name: hashlib.sha256((again / name).read_bytes()).hexdigest() for name in names}


def test_shards_auto_for_whole_videos_resumes_byte_identically(tmp_path):
    """--resume of a byte-sized run reuses the examples staged at their ranks and writes the same shards."""
    import dataclasses
    import filecmp

    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline

    from vidshard.pipelines import staging
    from vidshard.pipelines import resume
    from vidshard.pipelines.launch import _describe_source, plan_layout, run_job
    from vidshard.pipelines.transforms import FetchDecodeEncode

    _noise_videos(tmp_path / "long", 60)
    args = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    request, _ = _whole_job(tmp_path / "long", tmp_path / "full", args, 60_000)
    # An interrupted run: its manifest, and 3 videos staged by the real DoFn (at shard 0, their rank).
    cut = dataclasses.replace(request, data_dir=str(tmp_path / "resumed"))
    items, slots = plan_layout(cut)
    assert slots == [] and {item.shard for item in items} == {0}
    staging.write_manifest(cut.data_dir, resume.manifest(_describe_source(cut.source), cut.plan, cut.settings,
                                                         cut.compression, cut.shards, items, slots))
    with TestPipeline() as pipeline:
        _ = (pipeline | beam.Create(items[:3]) | beam.ParDo(FetchDecodeEncode(
            cut.source, cut.source_options, cut.settings, cut.data_dir)))
    result = run_job(cut, args, resume=True)
    assert result.reused == 3
    names = sorted(os.listdir(tmp_path / "full"))
    assert names == sorted(os.listdir(tmp_path / "resumed"))
    assert filecmp.cmpfiles(tmp_path / "full", tmp_path / "resumed", names, shallow=False)[1:] == ([], [])
