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
:class:`~vidshard.numpy_reader.ShardReader`.  ``layout`` chooses what a clip looks like:
``"THWC"`` uint8 as stored, or ``"TCHW"`` / ``"CTHW"`` float32 in [0, 1] (torchvision's video
models take ``[C, T, H, W]``).

:class:`ArrayRecordDataset` is the map-style counterpart over an ArrayRecord output
(``vidshard shard --format array_record``): ``dataset[key]`` reads one example by its number,
so ``DataLoader(shuffle=True)``, ``DistributedSampler`` and any other sampler work.
"""
from __future__ import annotations

import os
from typing import Iterator, Sequence

try:
    import torch
    from torch.utils.data import Dataset, IterableDataset, get_worker_info
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("vidshard.torch_data needs PyTorch: pip install 'vidshard[torch]'") from exc

from vidshard.numpy_reader import ShardReader
from vidshard.parts import Part


#: Clip layouts: the stored ``THWC`` uint8, or channels-first float32 in [0, 1].
LAYOUTS = ("THWC", "TCHW", "CTHW")


def to_layout(frames: torch.Tensor, layout: str) -> torch.Tensor:
    """``[..., T, H, W, C]`` uint8 frames in ``layout``: unchanged for ``THWC``, else float32 in [0, 1] permuted."""
    if layout == "THWC":
        return frames
    lead = frames.dim() - 4  # a batch dimension, or none
    t, h, w, c = (lead + i for i in range(4))
    order = (t, c, h, w) if layout == "TCHW" else (c, t, h, w)
    return frames.permute(*range(lead), *order).to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)


def check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")


class ShardIterableDataset(IterableDataset):
    """Examples ``(frames [T, H, W, 3] uint8, label int64)`` of one split (or ``part``), as torch tensors.

    Use it with ``DataLoader(dataset, batch_size=B, num_workers=N)``; or pass ``batch_size``
    here to have each worker build whole batches ``[B, T, H, W, 3]`` (then
    ``DataLoader(dataset, batch_size=None, ...)``; each worker's last batch may be short).
    ``layout="TCHW"`` or ``"CTHW"`` yields float32 frames in [0, 1], channels first.

    Epochs: call ``set_epoch(epoch)`` before each epoch, as with ``DistributedSampler``; the order
    and the clips are a function of ``(seed, epoch)``.  Workers receive a copy of the dataset when
    an epoch starts, so keep ``persistent_workers=False`` (the default) or they never see the new
    epoch.  ``num_replicas``/``rank``/``drop_last`` give each data-parallel process an equal share
    (see the module doc), split again between its workers; ``len(dataset)`` is that share's
    number of examples (without ``batch_size``; with it the count of batches depends on the
    loader's workers, and ``len()`` raises TypeError).  ``part`` reads a part of the split made by
    the caller (a slice, see :func:`vidshard.load`) instead of the whole split.  ``num_threads``
    decode threads per worker (0: decode in the worker's own thread, usually right since the
    workers already run in parallel).  ``augment`` names the train-time augmentations
    (``("crop", "flip")``, see :mod:`vidshard.augment`), as for ShardReader.
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
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
        augment: str | Sequence[str] = (),
        layout: str = "THWC",
        part: Part | None = None,
    ) -> None:
        super().__init__()
        check_layout(layout)
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
        self.num_replicas = num_replicas
        self.rank = rank
        self.drop_last = drop_last
        self.augment = augment
        self.layout = layout
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
        return ShardReader(
            self.data_dir, self.split, self.batch_size, shuffle=self.shuffle, shuffle_buffer=self.shuffle_buffer,
            seed=self.seed, num_workers=self.num_threads, prefetch=self.prefetch, drop_remainder=self.drop_remainder,
            epoch=self.epoch, clips=self.clips, part=part, augment=self.augment,
        )

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for frames, labels in self._reader(self._rank_part.split(worker, num_workers)):
            yield to_layout(torch.from_numpy(frames), self.layout), torch.as_tensor(labels)


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
                 epoch: int = 0, layout: str = "THWC") -> None:
        from vidshard.random_access import ClipDecoder, SplitSource  # array_record: an optional extra

        super().__init__()
        check_layout(layout)
        self.layout = layout
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
        return to_layout(torch.from_numpy(element["frames"]), self.layout), torch.as_tensor(element["label"])
