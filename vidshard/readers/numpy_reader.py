"""A shard reader without TensorFlow: NumPy batches for JAX, PyTorch or plain Python loops.

It reads the same shards as :mod:`vidshard.readers.tf_data` and yields the same frames and labels, but
needs only NumPy, protobuf, OpenCV and google-crc32c, so it runs where TensorFlow is absent
(the GPU machine) or unwanted (a PyTorch ``DataLoader`` worker).

The work is split in two stages so that the order of examples never depends on thread timing:

1. a *sequential* stage (one thread) reads the shard files with CRC checks, interleaving a few
   files at a time, passes the records through a seeded shuffle buffer, and draws each
   example's clip; its order is a function of ``(seed, epoch)`` and the part of the data this
   reader owns;
2. a pool of *decode* threads parses each Example and decodes only the chosen clip's JPEG/PNG
   frames with OpenCV (which releases the GIL, so threads decode in parallel) straight into
   its slot of a preallocated batch, then applies the augmentation the first stage drew for it; up to ``prefetch`` finished batches wait in a queue, so
   decoding overlaps the training step that consumes the previous batch.
"""
from __future__ import annotations

import itertools
import os
import queue
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterable, Iterator

import numpy as np

from vidshard import augment as augmentation
from vidshard.errors import ShardFormatError
from vidshard.format import storage
from vidshard.format.file_adapters import iter_shard
from vidshard.format.info import load_info
from vidshard.parts import Part, Segment
from vidshard.readers.records import Batch, Item, check_clip_choice, check_layout, decode_into

#: Files read at once when shuffling (as tf.data's ``interleave(cycle_length=...)``), so the shuffle
#: buffer mixes examples of several shards rather than of one.  Unshuffled, files are read one
#: after the other: the canonical order of ``dataset_info.json``.
CYCLE_LENGTH = 4


class ShardReader:
    """Iterable of NumPy batches ``(frames uint8 [B, T, H, W, 3], labels int64 [B])`` of one split.

    ``batch_size=None`` yields single examples ``(frames [T, H, W, 3], label int64 scalar)``.
    ``with_ids=True`` adds the video ids (``str``; an object array ``[B]`` in a batch) as a third
    element, and ``layout="TCHW"`` or ``"CTHW"`` gives float32 frames in [0, 1], channels first:
    the element every reader yields (:mod:`vidshard.readers.records`).
    Every pass yields every example of this reader's part exactly once.  Passes are numbered
    from ``epoch`` on: each ``iter()`` uses the current epoch and advances it, so successive
    passes see new orders (and new clips), as tf.data's ``reshuffle_each_iteration``;
    ``set_epoch(n)`` makes the next pass epoch ``n`` (to resume, or to keep data-parallel
    workers in step).  Order and clips depend only on ``(seed, epoch)`` and the part read.

    ``clips`` as in :func:`vidshard.readers.tf_data.make_dataset`: ``"random"`` picks one stored clip per
    video per epoch, ``"all"`` yields every stored clip as its own example (evaluation); an int
    always takes that clip (exact comparisons).  ``num_workers`` decode threads run
    ahead of the consumer by up to ``prefetch`` batches; ``num_workers=0`` does everything in the
    iterating thread (no threads; for use inside a PyTorch ``DataLoader`` worker).
    ``shard_index``/``num_shards`` give this reader one disjoint, contiguous part of the split (see
    :meth:`vidshard.parts.Part.split`); ``part`` passes a part made by the caller instead: a slice
    (:func:`vidshard.load`), a data-parallel rank's equal share (:meth:`vidshard.parts.Part.for_rank`), or a
    share of it for one loader worker (:mod:`vidshard.readers.torch_data`).  ``split`` names the split whose
    stored clip count applies (a part of several splits needs the same count in each).

    ``augment`` names train-time augmentations (``("crop", "flip")``, see :mod:`vidshard.augment`),
    drawn per clip from ``(seed, epoch)`` and the part, on a stream of their own (the order and
    clips stay those of an unaugmented reader); not with ``clips="all"``, the evaluation mode.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        split: str,
        batch_size: int | None = 8,
        *,
        shuffle: bool = True,
        shuffle_buffer: int = 256,
        seed: int = 0,
        num_workers: int = 2,
        prefetch: int = 4,
        drop_remainder: bool = False,
        epoch: int = 0,
        shard_index: int = 0,
        num_shards: int = 1,
        part: Part | None = None,
        clips: str | int = "random",
        verify: bool = True,
        augment: str | Iterable[str] | None = (),
        with_ids: bool = False,
        layout: str = "THWC",
    ) -> None:
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
        if seed < 0 or epoch < 0:
            raise ValueError("seed and epoch must be >= 0")
        if num_workers < 0 or prefetch < 1 or shuffle_buffer < 1:
            raise ValueError("num_workers must be >= 0, prefetch and shuffle_buffer >= 1")
        self.data_dir = os.fspath(data_dir)
        self.split = split
        self.info = load_info(self.data_dir)
        if part is not None and (shard_index, num_shards) != (0, 1):
            raise ValueError("give either part or shard_index/num_shards, not both")
        self.part = part if part is not None else Part.whole(self.data_dir, self.info, split).split(shard_index, num_shards)
        check_clip_choice(clips, self.info.clip.clips_in(split), ("random", "all"))
        self.augment = augmentation.parse_augment(augment)
        if self.augment and clips == "all":
            raise ValueError("augment is for training: clips='all' (evaluation) is never augmented")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.num_workers = num_workers
        self.prefetch = prefetch
        self.drop_remainder = drop_remainder
        self.epoch = epoch
        self.clips = clips
        self.verify = verify
        check_layout(layout)
        self.with_ids = with_ids
        self.layout = layout

    @property
    def frame_shape(self) -> tuple[int, int, int, int]:
        """``(T, H, W, 3)`` of one example's frames."""
        return self.info.clip_shape

    @property
    def num_examples(self) -> int:
        """Examples one pass yields (before ``drop_remainder``)."""
        return self.part.num_examples * (self.info.clip.clips_in(self.split) if self.clips == "all" else 1)

    def __len__(self) -> int:
        """Batches (or examples, with ``batch_size=None``) one pass yields."""
        n = self.num_examples
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_remainder else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass use ``epoch`` (its shuffle order and clip choices)."""
        if epoch < 0:
            raise ValueError("epoch must be >= 0")
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        items = self._items(epoch)
        if self.num_workers == 0:
            return self._run_inline(items)
        return self._run_threaded(items)

    # -- the sequential stage ---------------------------------------------------------------

    def _items(self, epoch: int) -> Iterator[Item]:
        """Records of this reader's part in this epoch's order, each with its clip draw."""
        rng = np.random.default_rng([self.seed, epoch, *self.part.key])
        segments = list(self.part.segments)
        if self.shuffle:
            segments = [segments[i] for i in rng.permutation(len(segments))]
        # Augmentations have a stream of their own (a child of the same seed), so turning them on
        # changes neither the order nor the clips.
        augment_rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch, *self.part.key], spawn_key=(1,)))
        _, height, width, _ = self.frame_shape
        stream = self._interleave(segments, CYCLE_LENGTH if self.shuffle else 1)
        if self.shuffle:
            stream = _shuffle_buffer(stream, self.shuffle_buffer, rng)
        for path, index, serialized in stream:
            if self.clips == "all":
                for clip in range(self.info.clip.clips_in(self.split)):
                    yield Item(path, index, serialized, clip, 0.0)
            else:
                fixed = None if self.clips == "random" else int(self.clips)
                how = None
                if self.augment:
                    how = augmentation.draw(augment_rng.random(augmentation.UNIFORMS_PER_CLIP), self.augment,
                                            height, width)
                yield Item(path, index, serialized, fixed, float(rng.random()), how)

    def _interleave(self, segments: list[Segment], cycle: int) -> Iterator[tuple[str, int, bytes]]:
        """Round-robin over ``cycle`` open files at a time, reading this part's segments of them."""
        pending = deque(segments)
        active: deque[Iterator[tuple[str, int, bytes]]] = deque()
        while pending or active:
            while pending and len(active) < cycle:
                active.append(self._segment_records(pending.popleft()))
            reader = active.popleft()
            record = next(reader, None)
            if record is not None:
                yield record
                active.append(reader)

    def _segment_records(self, segment: Segment) -> Iterator[tuple[str, int, bytes]]:
        """Records ``[start, stop)`` of one file; it must hold as many as ``dataset_info.json`` says.

        Reading stops after ``stop``; a segment that ends the file reads on to check the count.
        """
        path, count = segment.path, 0
        for index, serialized in enumerate(iter_shard(path, self.info, verify=self.verify)):
            count += 1
            if index >= segment.start:
                yield path, index, serialized
            if count == segment.stop < segment.length:
                return
        if count != segment.length:
            raise ShardFormatError(f"{path} holds {count} records but {storage.join(self.data_dir, 'dataset_info.json')} "
                                   f"says {segment.length}")

    # -- decoding and batching --------------------------------------------------------------

    def _new_batch(self, size: int) -> Batch:
        return Batch.empty(size, self.frame_shape)

    def _batches_of(self, items: Iterator[Item]) -> Iterator[list[Item]]:
        size = self.batch_size or 1
        while True:
            chunk = list(itertools.islice(items, size))
            if not chunk or (self.drop_remainder and len(chunk) < size):
                return
            yield chunk

    def _finish(self, batch: Batch) -> tuple:
        return batch.element(self.layout, self.with_ids, single=self.batch_size is None)

    def _run_inline(self, items: Iterator[Item]) -> Iterator[tuple]:
        for chunk in self._batches_of(items):
            batch = self._new_batch(len(chunk))
            for slot, item in enumerate(chunk):
                decode_into(item, self.info, batch, slot)
            yield self._finish(batch)

    def _run_threaded(self, items: Iterator[Item]) -> Iterator[tuple]:
        """Run the sequential stage in a thread that feeds the decode pool; yield finished batches."""
        done: queue.Queue = queue.Queue(self.prefetch)
        stop = threading.Event()
        pool = ThreadPoolExecutor(self.num_workers, thread_name_prefix="vidshard-decode")

        def put(entry: object) -> bool:
            while not stop.is_set():
                try:
                    done.put(entry, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            # Batches whose decodes are in flight: while the oldest is awaited, at least
            # 2 * num_workers later examples stay queued so that no decode thread idles.
            in_flight: deque[tuple[Batch, list[Future]]] = deque()
            window = (self.batch_size or 1) + 2 * self.num_workers
            try:
                for chunk in self._batches_of(items):
                    batch = self._new_batch(len(chunk))
                    futures = [pool.submit(decode_into, item, self.info, batch, slot) for slot, item in enumerate(chunk)]
                    in_flight.append((batch, futures))
                    if sum(len(f) for _, f in in_flight) > window:
                        if not _emit(in_flight.popleft()):
                            return
                while in_flight:
                    if not _emit(in_flight.popleft()):
                        return
                put(_END)
            except BaseException as exc:  # handed to the consumer, which re-raises it
                put(exc)

        def _emit(entry: tuple[Batch, list[Future]]) -> bool:
            batch, futures = entry
            for future in futures:
                future.result()
            return put(self._finish(batch))

        producer = threading.Thread(target=produce, name="vidshard-reader", daemon=True)
        producer.start()
        try:
            while True:
                entry = done.get()
                if entry is _END:
                    return
                if isinstance(entry, BaseException):
                    raise entry
                yield entry
        finally:
            stop.set()
            producer.join()
            pool.shutdown(wait=True, cancel_futures=True)


_END = object()


def _shuffle_buffer(stream: Iterator, size: int, rng: np.random.Generator) -> Iterator:
    """tf.data's shuffle: keep ``size`` elements, emit a random one and refill its place."""
    buffer: list = []
    for element in stream:
        if len(buffer) < size:
            buffer.append(element)
            continue
        slot = int(rng.integers(size))
        yield buffer[slot]
        buffer[slot] = element
    for slot in rng.permutation(len(buffer)):
        yield buffer[slot]
