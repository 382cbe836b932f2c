"""The PyTorch IterableDataset: every example exactly once per epoch through a multi-worker DataLoader.

Runs where PyTorch is importable (``pip install -e '.[torch]'``); shards are written without
TensorFlow, so this module needs neither TensorFlow nor Beam.
"""
from __future__ import annotations

import importlib.util

import pytest

from vidshard.testing.shards import TAGGED_CLASSES as CLASSES
from vidshard.testing.shards import TAGGED_FRAMES as T
from vidshard.testing.shards import TAGGED_HEIGHT as H
from vidshard.testing.shards import TAGGED_WIDTH as W
from vidshard.testing.shards import write_tagged_shards as write_shards

NO_TORCH = "PyTorch is not installed (an optional extra): pip install -e '.[torch]'"


def test_without_torch_the_import_error_names_the_extra():
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("PyTorch is installed")
    with pytest.raises(ImportError, match=r"vidshard\[torch\]"):
        import vidshard.torch_data  # noqa: F401


def _ids(loader) -> list[tuple[int, int]]:
    """(video, clip) of every example the loader yields, from the tagged first pixel."""
    import torch

    out = []
    for frames, labels in loader:
        assert frames.dtype == torch.uint8 and labels.dtype == torch.int64
        assert frames.shape[1:] == (T, H, W, 3) and labels.shape == frames.shape[:1]
        for f, label in zip(frames, labels):
            video = int(f[0, 0, 0, 0])
            assert int(label) == video % len(CLASSES)
            out.append((video, int(f[0, 0, 0, 1])))
    return out


# 3 shards for 2 workers: split by file; 1 shard: split by record index.  The default start method
# (fork on Linux) is fast; spawn (macOS/Windows default) unpickles the dataset in fresh interpreters
# that import torch again, several seconds per epoch on 2 cores.
@pytest.mark.parametrize("shard_sizes, context", [
    ([4, 3, 4], None), ([11], None), pytest.param([4, 3, 4], "spawn", marks=pytest.mark.slow),
])
def test_dataloader_with_two_workers_yields_each_example_once(tmp_path, shard_sizes, context):
    torch = pytest.importorskip("torch", reason=NO_TORCH)
    from torch.utils.data import DataLoader

    from vidshard.torch_data import ShardIterableDataset

    write_shards(tmp_path, shard_sizes, clips=2)
    dataset = ShardIterableDataset(tmp_path, "train", shuffle_buffer=4, seed=1)
    assert dataset.num_examples == 11
    loader = DataLoader(dataset, batch_size=3, num_workers=2, multiprocessing_context=context)
    epochs = []
    for epoch in range(2):
        dataset.set_epoch(epoch)
        seen = _ids(loader)
        assert sorted(v for v, _ in seen) == list(range(11))
        epochs.append(seen)
    assert [v for v, _ in epochs[0]] != [v for v, _ in epochs[1]]
    assert dict(epochs[0]) != dict(epochs[1])  # new clips each epoch
    torch.manual_seed(0)  # (DataLoader seeds; the order must not depend on torch's RNG)
    dataset.set_epoch(0)
    assert _ids(loader) == epochs[0]


def test_worker_batches_and_ranks_cover_the_split_once(tmp_path):
    pytest.importorskip("torch", reason=NO_TORCH)
    from torch.utils.data import DataLoader

    from vidshard.torch_data import ShardIterableDataset

    write_shards(tmp_path, [3, 3, 2])
    seen = []
    for rank in range(2):  # two data-parallel processes, each with two loader workers
        dataset = ShardIterableDataset(tmp_path, "train", batch_size=2, num_replicas=2, rank=rank, num_threads=1)
        loader = DataLoader(dataset, batch_size=None, num_workers=2)
        part = [v for v, _ in _ids(loader)]
        assert len(part) == dataset.num_examples
        seen += part
    assert sorted(seen) == list(range(8))


def test_augment_reaches_the_reader_in_every_worker(tmp_path):
    torch = pytest.importorskip("torch", reason=NO_TORCH)
    from torch.utils.data import DataLoader

    from vidshard.torch_data import ShardIterableDataset

    write_shards(tmp_path, [4, 3, 4], clips=1)
    plain = ShardIterableDataset(tmp_path, "train", shuffle=False, seed=3)
    flipped = ShardIterableDataset(tmp_path, "train", shuffle=False, seed=3, augment="flip")
    pairs = zip(*(list(DataLoader(d, batch_size=None, num_workers=2)) for d in (plain, flipped)))
    mirrored = []
    for (a, label_a), (b, label_b) in pairs:
        assert int(label_a) == int(label_b)
        mirrored.append(torch.equal(torch.flip(a, dims=[2]), b))
        assert mirrored[-1] or torch.equal(a, b)  # each clip is itself or its mirror image
    assert len(mirrored) == 11 and any(mirrored) and not all(mirrored)
