"""TFDS-style split strings select the same records as TFDS, and the parts they make read exactly those.

The expected slices are TFDS's own where TensorFlow Datasets is installed (the tfds extra),
and a hand-checked table always.  Shards are tagged (the first pixel names the video), so a
test sees which records a reader returned.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from vidshard.errors import ShardFormatError, VidshardError
from vidshard.format.info import load_info
from vidshard.readers.numpy_reader import ShardReader
from vidshard.splitspec import Slice, resolve, select
from vidshard.testing.shards import write_tagged_shards

SPECS = ["train", "train[:10%]", "train[-20%:]", "train[33%:66%]", "train[10.5%:]", "train[:5]", "train[-4:]",
         "train[3:-3]", "train[8:2]", "train[:2shard]", "train[1shard]", "train[-1shard:]", "train[:0shard]",
         "train+test", "test[:50%] + train[50%:]", "train[:-5%]+test[40%:60%]", "all"]


@pytest.fixture
def info(tmp_path):
    """train: 5 files of 3, 1, 4, 2, 3 records (13); test: 2 files of 2 and 4 (6)."""
    write_tagged_shards(tmp_path / "train", [3, 1, 4, 2, 3])
    write_tagged_shards(tmp_path / "test", [2, 4], split="test")
    train, test = load_info(str(tmp_path / "train")), load_info(str(tmp_path / "test"))
    train.splits["test"] = test.splits["test"]
    return train


def test_slices_by_hand(info):
    assert resolve("train[:10%]", info) == [Slice("train", 0, 1)]  # round(1.3)
    assert resolve("train[-20%:]", info) == [Slice("train", 10, 13)]  # round(-2.6) = -3
    assert resolve("train[10.5%:]", info) == [Slice("train", 1, 13)]  # round(1.365)
    assert resolve("train[:2shard]", info) == [Slice("train", 0, 4)]
    assert resolve("train[1shard]", info) == [Slice("train", 3, 4)]
    assert resolve("train[8:2]", info) == [Slice("train", 8, 2)]  # empty, as in TFDS
    assert resolve(" train + test[-2:] ", info) == [Slice("train", 0, 13), Slice("test", 4, 6)]
    assert resolve("all", info) == [Slice("train", 0, 13), Slice("test", 0, 6)]


@pytest.mark.parametrize("spec", SPECS)
def test_the_same_examples_as_tfds(info, spec):
    splits = pytest.importorskip("tensorflow_datasets.core.splits",
                                 reason="TensorFlow Datasets is not installed (an optional extra): pip install -e '.[tfds]'")
    infos = {name: SimpleNamespace(num_examples=s.num_examples, shard_lengths=s.shard_lengths, name=name)
             for name, s in info.splits.items()}
    expected = []
    for ins in splits.ReadInstruction.from_spec(spec).to_absolute(infos):
        n = infos[ins.splitname].num_examples
        expected += [(ins.splitname, i) for i in range(n)[ins.from_:ins.to]]
    assert [(s.split, i) for s in resolve(spec, info) for i in range(s.start, s.stop)] == expected


@pytest.mark.parametrize("spec, message", [
    ("train[:101%]", "percent bounds"), ("train[:14]", "beyond split 'train' of 13"), ("train[5]", "one shard file"),
    ("train[1.5:]", "fraction"), ("train[:1%:2]", "cannot read the slice"), ("train[]", "cannot read"),
    ("all[:10%]", "takes no slice"), ("train+all", "'all' is every split"), ("train[1%:2shard]", "one unit"),
])
def test_bad_strings_are_one_clear_error(info, spec, message):
    with pytest.raises(VidshardError, match=message.replace("[", r"\[").replace("(", r"\(")):
        resolve(spec, info)


def test_an_unknown_split_names_those_there_are(info):
    with pytest.raises(ShardFormatError, match="has no split 'val'; it has test, train"):
        resolve("train+val", info)


def _videos(reader) -> list[int]:
    return [int(frames[0, 0, 0, 0]) for frames, _ in reader]


def test_a_slice_reads_exactly_its_records_in_canonical_order(tmp_path):
    write_tagged_shards(tmp_path, [3, 1, 4, 2, 3])
    for spec, videos in [("train[2:9]", range(2, 9)), ("train[-20%:]", range(10, 13)),
                         ("train[1shard:3shard]", range(3, 8)), ("train[:30%]+train[-2:]", [0, 1, 2, 3, 11, 12])]:
        _, part, _ = select(tmp_path, spec)
        assert part.num_examples == len(videos)
        assert _videos(ShardReader(tmp_path, "train", None, part=part, shuffle=False)) == list(videos)
        shuffled = _videos(ShardReader(tmp_path, "train", None, part=part, seed=1))
        assert sorted(shuffled) == sorted(videos)  # the shuffle reorders the selection, never changes it
