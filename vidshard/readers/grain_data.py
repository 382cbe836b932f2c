"""Grain over an ArrayRecord output: exact global shuffle, a new clip per epoch, resumable iterators.

Importing this module imports Grain (``pip install 'vidshard[grain]'``), which imports JAX where
JAX is installed.

:func:`make_dataset` builds a ``grain.MapDataset``::

    SplitSource (key -> serialized Example)
      .map_with_index(ClipDecoder)   # parse, decode one clip: drawn from (seed, epoch, key);
                                     # (frames, label[, video_id]), the element of every reader
      .shuffle(seed)                 # a permutation of the whole split, a new one every epoch
      .batch(batch_size)             # optional: batches within an epoch (the last one may be short)
      .repeat(num_epochs)

A ``MapDataset`` is indexable: element ``i`` is epoch ``i // len(split)``, and Grain's shuffle
derives each epoch's permutation from ``seed + epoch``.  Iterating it
(``iter(ds)`` or ``ds.to_iter_dataset()``) gives a ``grain.DatasetIterator`` whose
``get_state()``/``set_state()`` checkpoint and resume mid-epoch with exactly the elements that
would have come next: the state is the position, and every element is a pure function of it.
``batch_size`` batches before repeating, so no batch spans two epochs (``.batch(B)`` on the
returned dataset would, as tf.data's ``repeat().batch()``).  Read in parallel with
``.to_iter_dataset(grain.ReadOptions(num_threads=N))`` or ``.mp_prefetch(...)``.
"""
from __future__ import annotations

import os

try:
    import grain
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("vidshard.readers.grain_data needs Grain: pip install 'vidshard[grain]'") from exc

from vidshard.parts import Part
from vidshard.readers.random_access import ClipDecoder, SplitSource


def make_dataset(data_dir: str | os.PathLike, split: str, *, seed: int = 0, shuffle: bool = True,
                 clips: str | int = "random", batch_size: int | None = None, drop_remainder: bool = False,
                 num_epochs: int | None = 1, part: Part | None = None, with_ids: bool = False,
                 layout: str = "THWC") -> "grain.MapDataset":
    """A ``grain.MapDataset`` of ``(frames, label)`` (``with_ids``: ``(frames, label, video_id)``) over ``split``.

    ``split`` of an ArrayRecord output.  ``shuffle=False`` keeps the order of ``dataset_info.json``
    (evaluation).  ``clips`` as in :class:`~vidshard.readers.random_access.ClipDecoder`.
    ``batch_size`` stacks elements into batches (frames ``[B, T, H, W, 3]``) within each epoch.
    ``num_epochs=None`` repeats forever.  ``part`` reads those records of the split (a slice,
    :func:`vidshard.load`) instead of all of it.  ``layout`` as for every reader
    (:mod:`vidshard.readers.records`).
    """
    source = SplitSource(data_dir, split, part)
    decoder = ClipDecoder(source.info, source.split, len(source), seed=seed, clips=clips,
                          where=f"{source.data_dir} split {split}", with_ids=with_ids, layout=layout)
    dataset = grain.MapDataset.source(source).map_with_index(decoder)
    if shuffle:
        dataset = dataset.shuffle(seed=seed)
    if batch_size is not None:
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.repeat(num_epochs)
