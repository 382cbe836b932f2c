"""Which records a reader reads: a :class:`Part` of a split, as runs of records in canonical order.

A split's *canonical order* is its shard files in the order of ``dataset_info.json``, each file's
records in file order.  A :class:`Part` is a sequence of :class:`Segment` s, record ranges of
shard files, and its canonical order is theirs, one after the other.  Everything that selects
records is a cut of that sequence, so the same request always reads the same records:

- :meth:`Part.slice` keeps positions ``[start, stop)`` (TFDS-style split strings,
  :mod:`vidshard.splitspec`); :meth:`Part.concat` joins parts (``train+val``);
- :meth:`Part.split` cuts a part into ``count`` contiguous sub-parts of sizes that differ by at
  most one (a rank's loader workers): together they hold every record exactly once;
- :meth:`Part.for_rank` gives data-parallel ranks parts of *equal* size, as PyTorch's
  ``DistributedSampler`` does: with ``drop_last=False`` the sequence is extended by repeating
  records from its start until it divides evenly (at most ``num_replicas - 1`` repeats), with
  ``drop_last=True`` its last ``len % num_replicas`` records are left out.  Every rank then runs
  the same number of steps, so DistributedDataParallel never waits at the end of an epoch on a
  rank that has run out.

Contiguous cuts keep a reader to its own files, but for the one or two it shares at its edges
(a reader skips the records before its start by reading them).  A part's ``key`` names the
cuts that made it and seeds its reader's shuffle, so sibling parts shuffle differently.
Imports :mod:`vidshard.format` only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from vidshard.format.info import DatasetInfo
from vidshard.format.splits import split_files


@dataclass(frozen=True)
class Segment:
    """Records ``[start, stop)`` of the shard file ``path``, which holds ``length`` records (dataset_info.json)."""

    path: str
    length: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Part:
    """The records one reader owns: ``segments`` in order, and the ``key`` that seeds its shuffle."""

    segments: tuple[Segment, ...]
    key: tuple[int, ...] = ()

    @classmethod
    def whole(cls, data_dir: str, info: DatasetInfo | None, split: str) -> "Part":
        """Every record of ``split``, in the order of ``dataset_info.json`` (read when ``info`` is None)."""
        info, paths = split_files(data_dir, split, info)
        return cls(tuple(Segment(path, length, 0, length)
                         for path, length in zip(paths, info.splits[split].shard_lengths)))

    @classmethod
    def concat(cls, parts: Iterable["Part"]) -> "Part":
        """The parts one after the other (``train+val``), as one part with the first one's key."""
        parts = list(parts)
        return cls(tuple(segment for part in parts for segment in part.segments), parts[0].key if parts else ())

    @property
    def num_examples(self) -> int:
        return sum(segment.size for segment in self.segments)

    def slice(self, start: int, stop: int) -> "Part":
        """Positions ``[start, stop)`` of this part's canonical order (``0 <= start``, ``stop <= len``)."""
        if not 0 <= start <= self.num_examples or not 0 <= stop <= self.num_examples:
            raise ValueError(f"slice [{start}:{stop}] is outside a part of {self.num_examples} records")
        return Part(self._cut(start, max(start, stop)), self.key)

    def split(self, index: int, count: int) -> "Part":
        """Sub-part ``index`` of ``count`` contiguous sub-parts that together hold this part exactly once.

        Sub-part sizes differ by at most one record.
        """
        self._check(index, count)
        n = self.num_examples
        return Part(self._cut(index * n // count, (index + 1) * n // count), (*self.key, index, count))

    def for_rank(self, rank: int, num_replicas: int, drop_last: bool = False) -> "Part":
        """Rank ``rank``'s part of ``num_replicas`` parts of equal size (``DistributedSampler``'s rule).

        ``drop_last=False``: ``ceil(len / num_replicas)`` records each, the sequence padded by
        repeating its first records; ``drop_last=True``: ``len // num_replicas`` each, the last
        records left out.  The same records are padded or left out in every epoch.
        """
        self._check(rank, num_replicas)
        n = self.num_examples
        size = n // num_replicas if drop_last else -(-n // num_replicas)
        segments: list[Segment] = []
        taken, position = 0, rank * size
        while taken < size:  # past the end (padding) the sequence starts again from its first record
            begin = position % n
            end = min(n, begin + size - taken)
            segments += self._cut(begin, end)
            taken, position = taken + end - begin, position + end - begin
        return Part(tuple(segments), (*self.key, rank, num_replicas))

    @staticmethod
    def _check(index: int, count: int) -> None:
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"part index {index} is not in [0, {count})")

    def _cut(self, start: int, stop: int) -> tuple[Segment, ...]:
        """The segments of positions ``[start, stop)``, ``0 <= start <= stop <= len``."""
        out: list[Segment] = []
        position = 0
        for segment in self.segments:
            low, high = max(start, position), min(stop, position + segment.size)
            if low < high:
                out.append(Segment(segment.path, segment.length, segment.start + low - position,
                                   segment.start + high - position))
            position += segment.size
        return tuple(out)
