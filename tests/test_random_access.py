"""Random access over ArrayRecord shards: the split source, Grain (shuffle, clips, resume), map-style PyTorch.

Shards are written here without TensorFlow or Beam: raw frames whose first pixel names the video
(its number in the split) and the clip (:func:`vidshard.testing.shards.write_tagged_shards`), so every test can tell which
example and which clip a reader returned.  Grain imports JAX (where installed), so the Grain test runs in a
subprocess and this process checks what it saw.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from vidshard.errors import ShardFormatError
from vidshard.testing.shards import TAGGED_CLASSES as CLASSES
from vidshard.testing.shards import TAGGED_FRAMES as T
from vidshard.testing.shards import TAGGED_HEIGHT as H
from vidshard.testing.shards import TAGGED_WIDTH as W
from vidshard.testing.shards import write_tagged_shards

pytest.importorskip("array_record.python.array_record_module",
                    reason="random access needs the grain extra: pip install 'vidshard[grain]'")

from vidshard.readers.random_access import ClipDecoder, SplitSource  # noqa: E402

CLIPS = 3
SEED = 7


def write_array_record_shards(out, shard_sizes: list[int], split: str = "train") -> None:
    """One split of ``sum(shard_sizes)`` tagged raw videos of ``CLIPS`` clips, as ArrayRecord files."""
    write_tagged_shards(out, shard_sizes, clips=CLIPS, split=split, file_format="array_record")


def expected_clip(seed: int, epoch: int, key: int) -> int:
    """The clip ``ClipDecoder`` draws: from a generator seeded by (seed, epoch, key)."""
    return min(int(np.random.default_rng([seed, epoch, key]).random() * CLIPS), CLIPS - 1)


def test_split_source_reads_any_key_and_checks_counts(tmp_path):
    write_array_record_shards(tmp_path, [4, 0, 7])  # an empty shard too, as vidshard writes for all-failed shards
    source = SplitSource(tmp_path, "train")
    assert len(source) == 11
    decoder = ClipDecoder(source.info, source.split, len(source), seed=SEED, with_ids=True)
    for key in (10, 0, 4, 3):
        frames, label, video_id = decoder(2 * len(source) + key, source[key])  # epoch 2
        assert label == key % len(CLASSES) and label.dtype == np.int64 and video_id.endswith(f"_c{key:02d}.avi")
        assert frames.shape == (T, H, W, 3) and frames.dtype == np.uint8
        assert (frames[0, 0, 0, 0], frames[0, 0, 0, 1]) == (key, expected_clip(SEED, 2, key))
    assert [int(decoder(k, r)[0][0, 0, 0, 0]) for k, r in zip([5, 1], source.__getitems__([5, 1]))] == [5, 1]
    plain = ClipDecoder(source.info, source.split, len(source), seed=SEED, layout="CTHW")(3, source[3])
    assert len(plain) == 2 and plain[0].shape == (3, T, H, W) and plain[0].dtype == np.float32
    assert plain[0][0, 0, 0, 0] == np.float32(3) / np.float32(255)

    info = json.loads((tmp_path / "dataset_info.json").read_text())
    info["splits"]["train"]["shard_lengths"] = [4, 0, 6]
    (tmp_path / "dataset_info.json").write_text(json.dumps(info))
    with pytest.raises(ShardFormatError, match="train-00002-of-00003.array_record holds 7 records but dataset_info.json says 6"):
        SplitSource(tmp_path, "train")


def test_split_source_refuses_tfrecord_outputs(tmp_path):
    write_tagged_shards(tmp_path, [2])
    with pytest.raises(ShardFormatError, match="random access needs ArrayRecord: shard with `file_format` array_record"):
        SplitSource(tmp_path, "train")


def test_random_access_modules_import_no_ml_framework():
    code = ("import sys, vidshard.readers.random_access, vidshard.format.file_adapters, vidshard.format.arrayrecord; "
            "print(sorted(m for m in ('tensorflow', 'apache_beam', 'torch', 'jax', 'grain') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


#: Runs Grain in a subprocess; prints what each dataset yielded as (key, video pixel, clip pixel, label).
GRAIN_SCRIPT = """
import json, sys
import grain
from vidshard.readers.grain_data import make_dataset

out, seed = sys.argv[1], int(sys.argv[2])

def key_of(video_id):  # the tagged videos are named ..._cNN.avi, NN their number
    return int(str(video_id)[-6:-4])

def ids(elements):
    return [(key_of(video_id), int(frames[0, 0, 0, 0]), int(frames[0, 0, 0, 1]), int(label))
            for frames, label, video_id in elements]

def dataset(**options):
    return make_dataset(out, "train", with_ids=True, **options)

result = {"length": len(dataset(seed=seed, num_epochs=3)),
          "run": ids(dataset(seed=seed, num_epochs=3)),
          "again": ids(dataset(seed=seed, num_epochs=3)),
          "other_seed": ids(dataset(seed=seed + 1, num_epochs=1)),
          "ordered": ids(dataset(shuffle=False, clips=1, num_epochs=1))}
iterator = iter(dataset(seed=seed, num_epochs=3))
result["head"] = ids(next(iterator) for _ in range(15))  # 11 per epoch: stop 4 elements into epoch 1
state = iterator.get_state()
result["tail"] = ids(iterator)
resumed = iter(dataset(seed=seed, num_epochs=3))  # a fresh process would do the same
resumed.set_state(json.loads(json.dumps(state)))                     # (the state survives JSON)
result["resumed"] = ids(resumed)
batches = dataset(seed=seed, num_epochs=2, batch_size=4)
result["batches"] = [(list(frames.shape), [key_of(v) for v in video_ids], frames[:, 0, 0, 0, 1].tolist())
                     for frames, labels, video_ids in batches.to_iter_dataset(grain.ReadOptions(num_threads=2))]
print(json.dumps(result))
"""


def test_grain_global_shuffle_new_clips_per_epoch_and_exact_resume(tmp_path):
    pytest.importorskip("grain", reason="needs the grain extra: pip install 'vidshard[grain]'")
    write_array_record_shards(tmp_path, [4, 3, 4])
    proc = subprocess.run([sys.executable, "-c", GRAIN_SCRIPT, str(tmp_path), str(SEED)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    n = 11
    run = [tuple(e) for e in result["run"]]
    assert result["length"] == len(run) == 3 * n
    epochs = [run[e * n:(e + 1) * n] for e in range(3)]
    for epoch, elements in enumerate(epochs):
        assert sorted(key for key, *_ in elements) == list(range(n))  # every example once per epoch
        for key, video, clip, label in elements:
            assert video == key and label == key % len(CLASSES)
            assert clip == expected_clip(SEED, epoch, key)  # the clip of (seed, epoch, key)
    assert len({tuple(key for key, *_ in elements) for elements in epochs}) == 3  # a new order every epoch
    assert {tuple(sorted((key, clip) for key, _, clip, _ in elements)) for elements in epochs}.__len__() > 1
    assert [tuple(e) for e in result["again"]] == run  # seeded: the same run again
    assert [tuple(e) for e in result["other_seed"]] != epochs[0]
    assert [tuple(e) for e in result["ordered"]] == [(k, k, 1, k % len(CLASSES)) for k in range(n)]
    # checkpoint mid-epoch: the resumed iterator yields exactly what the first one did after the checkpoint
    assert [tuple(e) for e in result["head"]] == run[:15]
    assert [tuple(e) for e in result["tail"]] == run[15:]
    assert [tuple(e) for e in result["resumed"]] == run[15:]
    # batch_size: batches within each epoch (11 = 4 + 4 + 3), same order and clips, read by 2 threads
    assert [shape for shape, _, _ in result["batches"]] == [[4, T, H, W, 3], [4, T, H, W, 3], [3, T, H, W, 3]] * 2
    assert [(key, clip) for _, keys, clips in result["batches"] for key, clip in zip(keys, clips)] \
        == [(key, clip) for key, _, clip, _ in epochs[0] + epochs[1]]


#: Two DistributedSampler ranks, each through a DataLoader with two workers, over two epochs;
#: prints every (epoch, key, clip, label) seen and what indexing does at the ends.
TORCH_SCRIPT = """
import json, sys
import torch
from torch.utils.data import DataLoader, DistributedSampler
from vidshard.readers.torch_data import ArrayRecordDataset

out, seed, context = sys.argv[1], int(sys.argv[2]), sys.argv[3] or None
dataset = ArrayRecordDataset(out, "train", seed=seed)
seen = []
for epoch in range(2):
    dataset.set_epoch(epoch)
    for rank in range(2):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        for frames, labels in DataLoader(dataset, batch_size=3, sampler=sampler, num_workers=2,
                                         multiprocessing_context=context):
            assert frames.dtype == torch.uint8 and labels.dtype == torch.int64, (frames.dtype, labels.dtype)
            seen += [(epoch, rank, int(f[0, 0, 0, 0]), int(f[0, 0, 0, 1]), int(label), list(f.shape))
                     for f, label in zip(frames, labels)]
fixed = ArrayRecordDataset(out, "train", clips=2)
try:
    fixed[len(fixed)]
    beyond = "no error"
except IndexError as exc:
    beyond = "IndexError"
print(json.dumps({"length": len(dataset), "seen": seen, "fixed_last_clip": int(fixed[len(fixed) - 1][0][0, 0, 0, 1]),
                  "beyond": beyond}))
"""


# DataLoader workers fork the process: run in a fresh interpreter, not in pytest's, which has run
# TensorFlow, Beam and ArrayRecord writers in-process by then (a forked worker crashed there, twice).
# spawn: each worker unpickles the dataset (its source pickles without open files) in a fresh interpreter.
@pytest.mark.parametrize("context", ["", pytest.param("spawn", marks=pytest.mark.slow)])
def test_torch_map_style_dataset_with_distributed_sampler(tmp_path, context):
    pytest.importorskip("torch")
    write_array_record_shards(tmp_path, [5, 5])
    proc = subprocess.run([sys.executable, "-c", TORCH_SCRIPT, str(tmp_path), str(SEED), context],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["length"] == 10
    for epoch in range(2):
        seen = [entry for entry in result["seen"] if entry[0] == epoch]
        assert sorted(key for _, _, key, _, _, _ in seen) == list(range(10))  # the two ranks cover the split once
        assert {rank for _, rank, *_ in seen} == {0, 1}
        for _, _, key, clip, label, shape in seen:
            assert shape == [T, H, W, 3] and label == key % len(CLASSES)
            assert clip == expected_clip(SEED, epoch, key)  # set_epoch reached the workers
    assert result["fixed_last_clip"] == 2 and result["beyond"] == "IndexError"
