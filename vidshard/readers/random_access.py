"""Random access to an ArrayRecord output: a split as ``len`` + ``[key]``, and per-epoch clip choice.

The pieces Grain (:mod:`vidshard.readers.grain_data`) and map-style PyTorch (:mod:`vidshard.readers.torch_data`)
share, with neither of them imported here:

- :class:`SplitSource` is Grain's ``RandomAccessDataSource`` protocol (``__len__``,
  ``__getitem__``, ``__getitems__``) over one split's ArrayRecord files, in the order of
  ``dataset_info.json``: key ``k`` is the ``k``-th example of the split, the same example
  :mod:`vidshard.readers.numpy_reader` reads ``k``-th without shuffling.  It returns the serialized
  Example; it pickles without its open files (for loader worker processes).
- :class:`ClipDecoder` turns ``(index, serialized)`` into the element every reader yields,
  ``(frames, label)`` or ``(frames, label, video_id)`` (:mod:`vidshard.readers.records`), where
  ``index = epoch * len(split) + key`` (Grain's convention for indices past the first epoch).
  With ``clips="random"`` the clip is drawn from a generator seeded by ``(seed, epoch, key)``:
  a different clip each epoch, the same one whenever that epoch is read again (resume).

It needs ``array_record`` (``pip install 'vidshard[grain]'``), NumPy, protobuf and OpenCV.
"""
from __future__ import annotations

import os
from typing import Sequence, SupportsIndex

import numpy as np

from vidshard.errors import ShardFormatError
from vidshard.format import arrayrecord
from vidshard.format.info import DatasetInfo, load_info
from vidshard.readers.records import check_clip_choice, check_layout, decode_one
from vidshard.parts import Part


class SplitSource:
    """One split of an ArrayRecord output: ``len(source)`` examples, ``source[key]`` -> serialized Example.

    ``part`` (a slice, :func:`vidshard.load`) makes key ``k`` the ``k``-th record of that part instead.

    Every file's record count is checked against ``dataset_info.json`` when the source is made
    (from the files' footers); a record that fails its chunk hash raises ShardFormatError.
    """

    def __init__(self, data_dir: str | os.PathLike, split: str, part: Part | None = None) -> None:
        from array_record.python.array_record_data_source import ArrayRecordDataSource

        self.data_dir = os.fspath(data_dir)
        self.split = split
        self.info: DatasetInfo = load_info(self.data_dir)
        if self.info.file_format != "array_record":
            raise ShardFormatError(f"{self.data_dir} holds {self.info.file_format} shards; random access needs "
                                   f"ArrayRecord: shard with `file_format` array_record")
        part = part if part is not None else Part.whole(self.data_dir, self.info, split)
        ranges = []
        for segment in part.segments:
            found = arrayrecord.num_records(segment.path)
            if found != segment.length:
                raise ShardFormatError(f"{segment.path} holds {found} records but dataset_info.json says {segment.length}")
            # the counts are known: the source need not open every file again
            ranges.append(f"{segment.path}[{segment.start}:{segment.stop}]")
        # It reads with readahead_buffer_size:0; max_parallelism:0 as in vidshard.arrayrecord.
        self._source = ArrayRecordDataSource(ranges, reader_options={"max_parallelism": "0"})

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, key: SupportsIndex) -> bytes:
        try:
            return self._source[key]
        except RuntimeError as exc:  # Riegeli: a chunk failed its hash
            raise ShardFormatError(f"{self.data_dir}: split {self.split}: example {int(key)}: {exc}") from None

    def __getitems__(self, keys: Sequence[SupportsIndex]) -> Sequence[bytes]:
        try:
            return self._source.__getitems__(keys)
        except RuntimeError as exc:
            raise ShardFormatError(f"{self.data_dir}: split {self.split}: examples {list(map(int, keys))[:8]}: {exc}") from None

    def __repr__(self) -> str:  # Grain logs and checkpoints name the source by this
        return f"vidshard.SplitSource({self.data_dir!r}, {self.split!r})"


class ClipDecoder:
    """``(index, serialized) -> (frames uint8 [T, H, W, 3], label int64[, video_id str])``.

    ``index`` is ``epoch * length + key``; ``clips="random"`` draws the clip from
    ``np.random.default_rng([seed, epoch, key])``, an int always takes that stored clip.
    ``with_ids`` and ``layout`` as for every reader (:mod:`vidshard.readers.records`).
    """

    def __init__(self, info: DatasetInfo, split: str, length: int, *, seed: int = 0, clips: str | int = "random",
                 where: str = "", with_ids: bool = False, layout: str = "THWC") -> None:
        check_clip_choice(clips, info.clip.clips_in(split), ("random",))
        check_layout(layout)
        if seed < 0 or length < 1:
            raise ValueError("seed must be >= 0 and the split not empty")
        self.info = info
        self.length = length
        self.seed = seed
        self.clips = clips
        self.where = where
        self.with_ids = with_ids
        self.layout = layout

    def __call__(self, index: int, serialized: bytes) -> tuple:
        epoch, key = divmod(int(index), self.length)
        if self.clips == "random":
            batch = decode_one(serialized, self.info, clip_draw=float(np.random.default_rng([self.seed, epoch, key]).random()),
                               where=self.where, index=key)
        else:
            batch = decode_one(serialized, self.info, clip=int(self.clips), where=self.where, index=key)
        return batch.element(self.layout, self.with_ids, single=True)
