"""vidshard shards as a PyTorch ``IterableDataset``, without TensorFlow.

Importing this module imports PyTorch; nothing else in vidshard does, so vidshard works
without it (``pip install 'vidshard[torch]'`` adds it).

Each ``DataLoader`` worker (and each data-parallel rank) reads a disjoint part of the split, so
one epoch yields every example exactly once: the parts are cut by shard file when there are at
least as many files as readers, else by record index modulo the number of readers (see
:meth:`vidshard.numpy_reader.Part.split`): first between ranks, then between a rank's workers.  Within its part a worker runs a
:class:`~vidshard.numpy_reader.ShardReader`.
"""
from __future__ import annotations

import os
from typing import Iterator

try:
    import torch
    from torch.utils.data import IterableDataset, get_worker_info
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("vidshard.torch_data needs PyTorch: pip install 'vidshard[torch]'") from exc

from vidshard.numpy_reader import Part, ShardReader
from vidshard.records import load_info


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
    own thread, usually right since the workers already run in parallel).
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
        # Fail here, in the main process, on a bad directory, split or argument, not in a worker.
        self._rank_part = Part.whole(self.data_dir, load_info(self.data_dir), split).split(rank, world_size)
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
            epoch=self.epoch, clips=self.clips, part=part,
        )

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for frames, labels in self._reader(self._rank_part.split(worker, num_workers)):
            yield torch.from_numpy(frames), torch.as_tensor(labels)
