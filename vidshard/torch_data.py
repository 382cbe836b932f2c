"""vidshard shards as PyTorch datasets, without TensorFlow.

Importing this module imports PyTorch; nothing else in vidshard does, so vidshard works
without it (``pip install 'vidshard[torch]'`` adds it).

:class:`ShardIterableDataset` (TFRecord or ArrayRecord shards): each ``DataLoader`` worker (and
each data-parallel rank) reads a disjoint part of the split, so one epoch yields every example
exactly once: the parts are cut by shard file when there are at least as many files as readers,
else by record index modulo the number of readers (see :meth:`vidshard.parts.Part.split`):
first between ranks, then between a rank's workers.  Within its part a worker runs a
:class:`~vidshard.numpy_reader.ShardReader`.

:class:`ArrayRecordDataset` is the map-style counterpart over an ArrayRecord output
(``vidshard shard --format array_record``): ``dataset[key]`` reads one example by its number,
so ``DataLoader(shuffle=True)``, ``DistributedSampler`` and any other sampler work.
"""
from __future__ import annotations

import os
from typing import Iterator

try:
    import torch
    from torch.utils.data import Dataset, IterableDataset, get_worker_info
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("vidshard.torch_data needs PyTorch: pip install 'vidshard[torch]'") from exc

from vidshard.numpy_reader import ShardReader
from vidshard.parts import Part


class ShardIterableDataset(IterableDataset):
    """Examples ``(frames uint8 [T, H, W, 3], label int64)`` of one split, as torch tensors.

    Use it with ``DataLoader(dataset, batch_size=B, num_workers=N)``; or pass ``batch_size``
    here to have each worker build whole batches ``[B, T, H, W, 3]`` (then
    ``DataLoader(dataset, batch_size=None, ...)``; each worker's last batch may be short).

    Epochs: call ``set_epoch(epoch)`` before each epoch, as with ``DistributedSampler``; the order
    and the clips are a function of ``(seed, epoch)``.  Workers receive a copy of the dataset when
    an epoch starts, so keep ``persistent_workers=False`` (the default) or they never see the new
    epoch.  ``rank``/``world_size`` give each data-parallel process its own part, split again
    between its workers.  ``num_threads`` decode threads per worker (0: decode in the worker's
    own thread, usually right since the workers already run in parallel).  ``augment`` names the
    train-time augmentations (``("crop", "flip")``, see :mod:`vidshard.augment`), as for ShardReader.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        split: str,
        batch_size: int | None = None,
        *,
        shuffle: bool = True,
        shuffle_buffer: int = 256,
        seed: int = 0,
        epoch: int = 0,
        clips: str | int = "random",
        drop_remainder: bool = False,
        num_threads: int = 0,
        prefetch: int = 2,
        rank: int = 0,
        world_size: int = 1,
        augment: str | tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.data_dir = os.fspath(data_dir)
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.epoch = epoch
        self.clips = clips
        self.drop_remainder = drop_remainder
        self.num_threads = num_threads
        self.prefetch = prefetch
        self.rank = rank
        self.world_size = world_size
        self.augment = augment
        # Fail here, in the main process, on a bad directory, split or argument, not in a worker.
        self._rank_part = Part.whole(self.data_dir, None, split).split(rank, world_size)
        #: Examples this rank yields per epoch, over all its loader workers.
        self.num_examples = self._reader(self._rank_part).num_examples

    def set_epoch(self, epoch: int) -> None:
        """Make the next epoch (the next ``iter(DataLoader)``) use ``epoch``'s order and clips."""
        if epoch < 0:
            raise ValueError("epoch must be >= 0")
        self.epoch = epoch

    def _reader(self, part: Part) -> ShardReader:
        return ShardReader(
            self.data_dir, self.split, self.batch_size, shuffle=self.shuffle, shuffle_buffer=self.shuffle_buffer,
            seed=self.seed, num_workers=self.num_threads, prefetch=self.prefetch, drop_remainder=self.drop_remainder,
            epoch=self.epoch, clips=self.clips, part=part, augment=self.augment,
        )

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for frames, labels in self._reader(self._rank_part.split(worker, num_workers)):
            yield torch.from_numpy(frames), torch.as_tensor(labels)


class ArrayRecordDataset(Dataset):
    """Map-style ``dataset[key] -> (frames uint8 [T, H, W, 3], label int64)`` over an ArrayRecord output.

    ``key`` is the example's number in ``split`` (the order of ``dataset_info.json``); any sampler
    chooses the order: ``DataLoader(dataset, shuffle=True)``, or
    ``DistributedSampler(dataset, num_replicas=world_size, rank=rank)`` for data parallelism.
    ``clips="random"`` draws each example's clip from ``(seed, epoch, key)``: call
    ``set_epoch(epoch)`` before each epoch (as ``DistributedSampler.set_epoch``) for new clips;
    with ``persistent_workers=False`` (the default) workers see the new epoch.  An int always
    takes that stored clip.  Needs ``array_record`` (``pip install 'vidshard[grain]'``).
    """

    def __init__(self, data_dir: str | os.PathLike, split: str, *, seed: int = 0, clips: str | int = "random",
                 epoch: int = 0) -> None:
        from vidshard.random_access import ClipDecoder, SplitSource  # array_record: an optional extra

        super().__init__()
        self.source = SplitSource(data_dir, split)
        self.decoder = ClipDecoder(self.source.info, self.source.split, len(self.source), seed=seed, clips=clips,
                                   where=f"{self.source.data_dir} split {split}")
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Make the next epoch use ``epoch``'s clip draws."""
        if epoch < 0:
            raise ValueError("epoch must be >= 0")
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= key < len(self.source):
            raise IndexError(f"key {key} is not in [0, {len(self.source)})")
        element = self.decoder(self.epoch * len(self.source) + key, self.source[key])
        return torch.from_numpy(element["frames"]), torch.as_tensor(element["label"])
