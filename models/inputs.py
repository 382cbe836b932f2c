"""Training's two input paths: tf.data on TensorFlow, the TF-free reader on JAX and PyTorch.

:func:`tf_data` builds the train and val datasets with :func:`vidshard.readers.tf_data.make_dataset`,
importing TensorFlow only when called.  :func:`tf_free_data` wraps two
:class:`~vidshard.readers.numpy_reader.ShardReader`\\ s in :class:`ShardSequence`\\ s, and
:class:`ReaderEpoch` hands ``fit``'s epoch to the train sequence.  Imports Keras and the TF-free
reader at module level, never TensorFlow.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, ContextManager, Iterator

import keras
import numpy as np

from vidshard.errors import ShardFormatError
from vidshard.readers.numpy_reader import ShardReader


class ShardSequence(keras.utils.PyDataset):
    """A TF-free :class:`ShardReader` as a ``keras.utils.PyDataset``, for ``model.fit`` on JAX or PyTorch.

    Keras asks a PyDataset for batches by index, while the reader is a stream whose order and
    clips follow from its seed and epoch.  Index 0 starts a pass at the epoch set by
    :meth:`set_epoch` (:class:`ReaderEpoch` passes ``fit``'s epoch), and the following indices
    must come in order, as Keras asks for them from a one-worker PyDataset under
    ``fit(shuffle=False)``.  A pass restarted at index 0 replays the same epoch (Keras reads one
    batch to build its metrics before training starts).  The reader decodes in its own threads,
    so Keras's PyDataset workers stay off.  A shard that cannot be read raises
    :class:`ShardFormatError` naming the split, the file and the record.
    """

    def __init__(self, reader: ShardReader) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.reader = reader
        self.epoch = reader.epoch
        self._batches: Any = None
        self._next = 0

    def __len__(self) -> int:
        return len(self.reader)

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass (the next index 0) read ``epoch``."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if index == 0:
            self._close()
            self.reader.set_epoch(self.epoch)
            self._batches = iter(self.reader)
        elif self._batches is None or index != self._next:
            raise IndexError(f"{type(self).__name__} is read in order from index 0: asked for batch {index}, "
                             f"the next one is {self._next}")
        try:
            batch = next(self._batches)
        except ShardFormatError as exc:
            self._close()
            raise ShardFormatError(f"reading split {self.reader.split!r}: {exc}") from None
        self._next = index + 1
        return batch

    def on_epoch_end(self) -> None:
        self._close()  # stops the reader's threads

    def _close(self) -> None:
        if self._batches is not None:
            self._batches.close()
            self._batches = None


class ReaderEpoch(keras.callbacks.Callback):
    """Makes ``fit``'s epoch ``e`` read epoch ``e`` of a :class:`ShardSequence` (order and clips).

    Epochs are numbered as ``fit`` numbers them, from ``initial_epoch`` when resuming, so a
    resumed run reads the same data as an uninterrupted one would have.
    """

    def __init__(self, data: ShardSequence) -> None:
        super().__init__()
        self.data = data

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.data.set_epoch(epoch)


def reader_threads() -> int:
    """Decode threads of the TF-free training reader: one per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def tf_data(data_dir: str, train_split: str, val_split: str | None, batch_size: int, *, shuffle_buffer: int,
            seed: int, cache: str, cache_dir: str, augment: tuple[str, ...] = ()
            ) -> tuple[Any, Any, Callable[[], ContextManager[None]]]:
    """tf.data train and val datasets, and a context that turns TensorFlow read errors into one line.

    ``cache`` is ``"memory"``, ``"disk"`` (under ``cache_dir``, one prefix per split) or ``"none"``.
    ``augment`` applies to the train split only; ``val_split=None`` gives no val dataset (None).
    """
    from vidshard.readers.tf_data import DATA_ERRORS, data_error, make_dataset  # the only TensorFlow import of training

    def cache_for(split: str) -> bool | str:
        return os.path.join(cache_dir, split) if cache == "disk" else cache == "memory"

    train_ds = make_dataset(data_dir, train_split, batch_size, shuffle=True, shuffle_buffer=shuffle_buffer,
                            seed=seed, cache=cache_for(train_split), augment=augment)
    val_ds = None if val_split is None else make_dataset(data_dir, val_split, batch_size, shuffle=False, clips="all",
                                                         cache=cache_for(val_split))

    @contextlib.contextmanager
    def data_errors() -> Iterator[None]:
        try:
            yield
        except DATA_ERRORS as exc:
            raise data_error(data_dir, tuple(split for split in (train_split, val_split) if split), exc) from None

    return train_ds, val_ds, data_errors


def tf_free_data(data_dir: str, train_split: str, val_split: str | None, batch_size: int, *, shuffle_buffer: int,
                 seed: int, initial_epoch: int, augment: tuple[str, ...] = ()
                 ) -> tuple[ShardSequence, ShardSequence | None]:
    """TF-free train and val sequences; the train reader is seeded with the run's seed, its epoch is fit's.

    ``augment`` applies to the train split only; ``val_split=None`` gives no val sequence (None).
    """
    threads = reader_threads()
    train_seq = ShardSequence(ShardReader(data_dir, train_split, batch_size, shuffle=True,
                                          shuffle_buffer=shuffle_buffer, seed=seed,
                                          epoch=initial_epoch, num_workers=threads, augment=augment))
    val_seq = None if val_split is None else ShardSequence(ShardReader(data_dir, val_split, batch_size, shuffle=False,
                                                                       clips="all", num_workers=threads))
    return train_seq, val_seq
