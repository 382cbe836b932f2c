"""Data-parallel ranks get equal shares of a split whose files do not divide evenly (DistributedSampler's rule).

With whole files per rank, 5 files of unequal lengths give ranks different numbers of examples,
and DistributedDataParallel hangs when one rank runs out of batches.  Shards are tagged (the first
pixel names the video), so the tests see which records each rank read.
"""
from __future__ import annotations

import os

import pytest

from vidshard.format.info import load_info
from vidshard.readers.numpy_reader import ShardReader
from vidshard.parts import Part
from vidshard.testing.shards import write_tagged_shards

SIZES = [5, 1, 4, 2, 3]  # 15 records in 5 files of unequal lengths


def _videos(reader: ShardReader) -> list[int]:
    return [int(v) for frames, _ in reader for v in frames[:, 0, 0, 0, 0]]


@pytest.mark.parametrize("ranks", [2, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_every_rank_gets_the_same_number_of_examples_and_batches(tmp_path, ranks, drop_last):
    write_tagged_shards(tmp_path, SIZES)
    whole = Part.whole(str(tmp_path), load_info(str(tmp_path)), "train")
    n = sum(SIZES)
    size = n // ranks if drop_last else -(-n // ranks)
    per_rank = []
    for rank in range(ranks):
        reader = ShardReader(tmp_path, "train", 2, seed=3, part=whole.for_rank(rank, ranks, drop_last))
        videos = _videos(reader)
        assert len(videos) == reader.num_examples == size
        assert len(list(reader)) == len(reader) == -(-size // 2)  # batches: the same on every rank
        per_rank.append(videos)
    seen = sorted(v for videos in per_rank for v in videos)
    if drop_last:  # the last n % ranks records are left out, nothing is read twice
        assert seen == list(range(size * ranks))
    else:  # every record, and the first (size * ranks - n) once more, as DistributedSampler pads
        assert seen == sorted([*range(n), *range(size * ranks - n)])


def test_more_ranks_than_records_still_pads_every_rank(tmp_path):
    write_tagged_shards(tmp_path, [1, 1])
    whole = Part.whole(str(tmp_path), load_info(str(tmp_path)), "train")
    assert [whole.for_rank(r, 5).num_examples for r in range(5)] == [1] * 5
    assert [whole.for_rank(r, 5, drop_last=True).num_examples for r in range(5)] == [0] * 5


def test_contiguous_parts_read_only_the_files_they_cover(tmp_path):
    write_tagged_shards(tmp_path, SIZES)
    whole = Part.whole(str(tmp_path), load_info(str(tmp_path)), "train")
    first, second = whole.split(0, 2), whole.split(1, 2)
    assert [(os.path.basename(s.path), s.start, s.stop) for s in first.segments] == [
        ("train-00000-of-00005.tfrecord", 0, 5), ("train-00001-of-00005.tfrecord", 0, 1),
        ("train-00002-of-00005.tfrecord", 0, 1)]
    assert (second.segments[0].start, second.num_examples) == (1, 8)
    assert _videos(ShardReader(tmp_path, "train", 4, shuffle=False, part=second)) == list(range(7, 15))
