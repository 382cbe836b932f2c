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
        import vidshard.readers.torch_data  # noqa: F401


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

    from vidshard.readers.torch_data import ShardIterableDataset

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

    from vidshard.readers.torch_data import ShardIterableDataset

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

    from vidshard.readers.torch_data import ShardIterableDataset

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


@pytest.mark.parametrize("ranks", [2, 3])
@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_run_the_same_number_of_batches_over_unevenly_divided_files(tmp_path, ranks, drop_last):
    """5 files of 5, 1, 4, 2, 3 examples: whole files per rank would give 2 ranks 9 and 6 examples (a DDP hang)."""
    pytest.importorskip("torch", reason=NO_TORCH)
    from torch.utils.data import DataLoader

    from vidshard.readers.torch_data import ShardIterableDataset

    write_shards(tmp_path, [5, 1, 4, 2, 3])
    size = 15 // ranks if drop_last else -(-15 // ranks)
    batches, seen = [], []
    for rank in range(ranks):
        dataset = ShardIterableDataset(tmp_path, "train", num_replicas=ranks, rank=rank, drop_last=drop_last, seed=2)
        assert len(dataset) == dataset.num_examples == size
        loader = DataLoader(dataset, batch_size=2, num_workers=2)
        videos = [v for v, _ in _ids(loader)]
        assert len(videos) == size
        batches.append(len(list(loader)))
        seen += videos
    assert len(set(batches)) == 1  # every rank steps as often: DistributedDataParallel never waits on one
    assert sorted(seen) == (list(range(size * ranks)) if drop_last else sorted([*range(15), *range(size * ranks - 15)]))


def test_len_is_unknown_when_the_workers_batch(tmp_path):
    pytest.importorskip("torch", reason=NO_TORCH)
    from vidshard.readers.torch_data import ShardIterableDataset

    write_shards(tmp_path, [3, 2])
    with pytest.raises(TypeError, match="num_workers"):
        len(ShardIterableDataset(tmp_path, "train", batch_size=2))


@pytest.mark.parametrize("layout, shape", [("TCHW", (T, 3, H, W)), ("CTHW", (3, T, H, W))])
def test_channels_first_float_layouts_for_torchvision(tmp_path, layout, shape):
    torch = pytest.importorskip("torch", reason=NO_TORCH)
    from torch.utils.data import DataLoader

    from vidshard.readers.torch_data import ShardIterableDataset

    write_shards(tmp_path, [3, 2])
    stored = ShardIterableDataset(tmp_path, "train", shuffle=False)
    changed = ShardIterableDataset(tmp_path, "train", shuffle=False, layout=layout)
    for (a, label_a), (b, label_b) in zip(DataLoader(stored, batch_size=2), DataLoader(changed, batch_size=2)):
        assert b.dtype == torch.float32 and tuple(b.shape[1:]) == shape and b.is_contiguous()
        assert torch.equal(label_a, label_b) and label_b.dtype == torch.int64
        back = b.permute(0, 1, 3, 4, 2) if layout == "TCHW" else b.permute(0, 2, 3, 4, 1)
        assert torch.equal(torch.round(back * 255).to(torch.uint8), a)  # [0, 1] floats of the same pixels
    with pytest.raises(ValueError, match="layout"):
        ShardIterableDataset(tmp_path, "train", layout="NHWC")


def test_with_ids_yields_the_video_id_of_every_example(tmp_path):
    torch = pytest.importorskip("torch", reason=NO_TORCH)
    from torch.utils.data import DataLoader

    from vidshard.readers.torch_data import ShardIterableDataset

    written = write_shards(tmp_path, [3, 2])
    loader = DataLoader(ShardIterableDataset(tmp_path, "train", shuffle=False, with_ids=True), batch_size=2)
    seen = [(video_id, int(label), int(frames[i, 0, 0, 0, 0]))
            for frames, labels, ids in loader for i, (label, video_id) in enumerate(zip(labels, ids))]
    assert all(labels.dtype == torch.int64 for _, labels, _ in loader)
    assert seen == [(r.video_id, r.label, v) for v, r in enumerate(written)]  # the id names the example yielded
