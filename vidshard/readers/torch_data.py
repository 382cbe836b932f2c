"""vidshard shards as PyTorch datasets, without TensorFlow.

Importing this module imports PyTorch; nothing else in vidshard does, so vidshard works
without it (``pip install 'vidshard[torch]'`` adds it).

:class:`ShardIterableDataset` (TFRecord or ArrayRecord shards): each ``DataLoader`` worker (and
each data-parallel rank) reads a disjoint part of the split, so one epoch yields every example
exactly once; data-parallel ranks (``num_replicas``, ``rank``, ``drop_last``, as PyTorch's
``DistributedSampler``) each get an equal share (:meth:`vidshard.parts.Part.for_rank`: padded by
repeating the first records, or with ``drop_last`` the last ones left out), so every rank runs the
same number of steps per epoch.  A rank's share is cut again between its loader workers
(:meth:`vidshard.parts.Part.split`); within its part a worker runs a
:class:`~vidshard.readers.numpy_reader.ShardReader`.  Both datasets yield the element of every
reader (:mod:`vidshard.readers.records`) as tensors: ``(frames, label)``, with ``with_ids=True``
``(frames, label, video_id)`` (ids stay ``str``; the default collate makes a batch's a list), and
``layout`` chooses what a clip looks like: ``"THWC"`` uint8 as stored, or ``"TCHW"`` / ``"CTHW"``
float32 in [0, 1] (torchvision's video models take ``[C, T, H, W]``).

:class:`ArrayRecordDataset` is the map-style counterpart over an ArrayRecord output
(``vidshard shard --format array_record``): ``dataset[key]`` reads one example by its number,
so ``DataLoader(shuffle=True)``, ``DistributedSampler`` and any other sampler work.
"""
from __future__ import annotations

import os
from typing import Any, Iterator

try:
    import torch
    from torch.utils.data import Dataset, IterableDataset, get_worker_info
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("vidshard.readers.torch_data needs PyTorch: pip install 'vidshard[torch]'") from exc

from vidshard.parts import Part
from vidshard.readers.numpy_reader import ShardReader


class ShardIterableDataset(IterableDataset):
    """Examples ``(frames [T, H, W, 3] uint8, label int64)`` of one split (or ``part``), as torch tensors.

    Use it with ``DataLoader(dataset, batch_size=B, num_workers=N)``; or pass ``batch_size``
    here to have each worker build whole batches ``[B, T, H, W, 3]`` (then
    ``DataLoader(dataset, batch_size=None, ...)``; each worker's last batch may be short).

    ``reader_options`` are :class:`~vidshard.readers.numpy_reader.ShardReader`'s, which every
    worker runs over its part, with the same meaning and defaults: ``shuffle``, ``shuffle_buffer``,
    ``seed``, ``epoch``, ``clips``, ``drop_remainder``, ``augment``, ``with_ids``, ``layout``
    (``"TCHW"`` or ``"CTHW"``: float32 frames in [0, 1], channels first), ``prefetch``, ``verify``.
    ``num_threads`` is the reader's ``num_workers``: decode threads per loader worker (default 0:
    decode in the worker's own thread, usually right since the workers already run in parallel).

    Epochs: call ``set_epoch(epoch)`` before each epoch, as with ``DistributedSampler``; the order
    and the clips are a function of ``(seed, epoch)``.  Workers receive a copy of the dataset when
    an epoch starts, so keep ``persistent_workers=False`` (the default) or they never see the new
    epoch.  ``num_replicas``/``rank``/``drop_last`` give each data-parallel process an equal share
    (see the module doc), split again between its workers; ``len(dataset)`` is that share's
    number of examples (without ``batch_size``; with it the count of batches depends on the
    loader's workers, and ``len()`` raises TypeError).  ``part`` reads a part of the split made by
    the caller (a slice, see :func:`vidshard.load`) instead of the whole split.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        split: str,
        batch_size: int | None = None,
        *,
        num_threads: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
        part: Part | None = None,
        **reader_options: Any,
    ) -> None:
        super().__init__()
        if "num_workers" in reader_options or "shard_index" in reader_options or "num_shards" in reader_options:
            raise TypeError("the DataLoader's workers and the ranks choose each reader's part: give num_threads, "
                            "num_replicas and rank, not num_workers, shard_index or num_shards")
        self.data_dir = os.fspath(data_dir)
        self.split = split
        self.batch_size = batch_size
        self.epoch = reader_options.pop("epoch", 0)
        self._options = {"num_workers": num_threads, **reader_options}
        # Fail here, in the main process, on a bad directory, split or argument, not in a worker.
        whole = part if part is not None else Part.whole(self.data_dir, None, split)
        self._rank_part = whole.for_rank(rank, num_replicas, drop_last)
        #: Examples this rank yields per epoch, over all its loader workers (the same on every rank).
        self.num_examples = self._reader(self._rank_part).num_examples

    def __len__(self) -> int:
        """Examples this rank yields per epoch; TypeError with ``batch_size`` (batches depend on the workers)."""
        if self.batch_size is not None:
            raise TypeError("len() of a ShardIterableDataset that batches in its workers is unknown: the number "
                            "of batches depends on the DataLoader's num_workers; use num_examples")
        return self.num_examples

    def set_epoch(self, epoch: int) -> None:
        """Make the next epoch (the next ``iter(DataLoader)``) use ``epoch``'s order and clips."""
        if epoch < 0:
            raise ValueError("epoch must be >= 0")
        self.epoch = epoch

    def _reader(self, part: Part) -> ShardReader:
        return ShardReader(self.data_dir, self.split, self.batch_size, epoch=self.epoch, part=part, **self._options)

    def __iter__(self) -> Iterator[tuple]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for element in self._reader(self._rank_part.split(worker, num_workers)):
            yield _tensors(element)


class ArrayRecordDataset(Dataset):
    """Map-style ``dataset[key] -> (frames uint8 [T, H, W, 3], label int64)`` over an ArrayRecord output.

    ``key`` is the example's number in ``split`` (the order of ``dataset_info.json``); any sampler
    chooses the order: ``DataLoader(dataset, shuffle=True)``, or
    ``DistributedSampler(dataset, num_replicas=world_size, rank=rank)`` for data parallelism.
    ``clips="random"`` draws each example's clip from ``(seed, epoch, key)``: call
    ``set_epoch(epoch)`` before each epoch (as ``DistributedSampler.set_epoch``) for new clips;
    with ``persistent_workers=False`` (the default) workers see the new epoch.  An int always
    takes that stored clip.  ``layout`` as for :class:`ShardIterableDataset`.  Needs ``array_record``
    (``pip install 'vidshard[grain]'``).
    """

    def __init__(self, data_dir: str | os.PathLike, split: str, *, seed: int = 0, clips: str | int = "random",
                 epoch: int = 0, layout: str = "THWC", with_ids: bool = False) -> None:
        from vidshard.readers.random_access import ClipDecoder, SplitSource  # array_record: an optional extra

        super().__init__()
        self.source = SplitSource(data_dir, split)
        self.decoder = ClipDecoder(self.source.info, self.source.split, len(self.source), seed=seed, clips=clips,
                                   where=f"{self.source.data_dir} split {split}", with_ids=with_ids, layout=layout)
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Make the next epoch use ``epoch``'s clip draws."""
        if epoch < 0:
            raise ValueError("epoch must be >= 0")
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: int) -> tuple:
        if not 0 <= key < len(self.source):
            raise IndexError(f"key {key} is not in [0, {len(self.source)})")
        return _tensors(self.decoder(self.epoch * len(self.source) + key, self.source[key]))


def _tensors(element: tuple) -> tuple:
    """A reader's NumPy element as torch tensors: frames and labels (no copy), video ids as they are."""
    return (torch.from_numpy(element[0]), torch.as_tensor(element[1]), *element[2:])
