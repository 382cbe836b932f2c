"""How a split is divided among readers: a :class:`Part` of a split's records, and parts of parts.

Data-parallel ranks each read one part of a split, and a rank's part splits again between its
loader workers (:mod:`vidshard.torch_data`); together the parts of one split hold every record
exactly once.  Parts are cut by whole shard files where there are enough of them, else by record
position.  A part's ``key`` seeds its reader's shuffle, so sibling parts shuffle differently.
Imports :mod:`vidshard.format` only.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from vidshard.format.info import DatasetInfo
from vidshard.format.splits import split_files


@dataclass(frozen=True)
class Part:
    """The share of a split that one reader owns; parts split further (ranks, then loader workers).

    ``files`` are ``(path, expected_records, first)`` where ``first`` is the position of the
    file's first record in this part's canonical sequence (its files' records, in order).  With
    ``modulo = (k, n)`` the part keeps only the records at positions ``k`` modulo ``n`` of that
    sequence; otherwise every record of its files.  ``key`` names the part (the indices and counts
    of the splits that made it) and seeds its shuffle, so sibling parts shuffle differently.
    """

    files: tuple[tuple[str, int, int], ...]
    modulo: tuple[int, int] | None = None
    key: tuple[int, ...] = ()

    @classmethod
    def whole(cls, data_dir: str, info: DatasetInfo | None, split: str) -> "Part":
        """Every shard of ``split``, in the order of ``dataset_info.json`` (read when ``info`` is None)."""
        info, paths = split_files(data_dir, split, info)
        return cls._of(paths, info.splits[split].shard_lengths, ())

    @classmethod
    def _of(cls, paths: list[str], lengths: list[int], key: tuple[int, ...]) -> "Part":
        firsts = itertools.accumulate([0, *lengths])
        return cls(tuple(zip(paths, lengths, firsts)), None, key)

    def split(self, index: int, count: int) -> "Part":
        """Sub-part ``index`` of ``count`` disjoint sub-parts that together hold this part exactly.

        By whole files when this part has whole files and at least ``count`` of them (a reader
        then opens only its own files), else by record position modulo ``count`` (every reader
        reads all the files and keeps its records).
        """
        if not 0 <= index < count:
            raise ValueError(f"part index {index} is not in [0, {count})")
        key = (*self.key, index, count)
        if count == 1:
            return Part(self.files, self.modulo, key)
        if self.modulo is None and len(self.files) >= count:
            mine = self.files[index::count]
            return Part._of([path for path, _, _ in mine], [length for _, length, _ in mine], key)
        k, n = self.modulo or (0, 1)
        # Positions p with p % n == k, numbered p // n, of which sub-part ``index`` keeps every ``count``-th.
        return Part(self.files, (k + n * index, n * count), key)

    def keeps(self, position: int) -> bool:
        """Whether the record at ``position`` of the canonical sequence belongs to this part."""
        return self.modulo is None or position % self.modulo[1] == self.modulo[0]

    @property
    def num_examples(self) -> int:
        if self.modulo is None:
            return sum(length for _, length, _ in self.files)
        k, n = self.modulo
        return sum(len(range((k - first) % n, length, n)) for _, length, first in self.files)
