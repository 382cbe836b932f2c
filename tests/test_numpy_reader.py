"""The TF-free path: TFRecord framing (checked against TensorFlow's) and the NumPy shard reader.

Shards are written here with :func:`vidshard.testing.shards.write_tagged_shards` (TF-free) so this
module also runs where TensorFlow is absent; the tests that compare with TensorFlow import it
themselves and skip without it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter

import numpy as np
import pytest

from vidshard.readers import numpy_reader
from vidshard.errors import ShardFormatError
from vidshard.format import tfrecord
from vidshard.format.info import load_info
from vidshard.format.schema import ClipRecord, encode_example
from vidshard.readers.numpy_reader import ShardReader
from vidshard.parts import Part
from vidshard.testing import tfrecords
from vidshard.testing.shards import TAGGED_CLASSES as CLASSES
from vidshard.testing.shards import TAGGED_FRAMES as T
from vidshard.testing.shards import TAGGED_HEIGHT as H
from vidshard.testing.shards import TAGGED_WIDTH as W
from vidshard.testing.shards import write_tagged_shards as write_shards


def ids_and_clips(batches) -> list[tuple[int, int]]:
    """(video, clip) of every example of a pass, in order, read from the tagged first pixel."""
    out = []
    for frames, labels in batches:
        for f, label in zip(frames, labels):
            video, clip = int(f[0, 0, 0, 0]), int(f[0, 0, 0, 1])
            assert label == video % len(CLASSES)
            out.append((video, clip))
    return out


def test_the_tf_free_modules_import_neither_tensorflow_nor_beam_nor_torch():
    formats = ", ".join(f"vidshard.format.{name}" for name in
                        ("schema", "codec", "info", "splits", "naming", "tfrecord", "arrayrecord", "file_adapters"))
    code = (f"import sys, vidshard.readers.numpy_reader, vidshard.parts, {formats}; "
            "print(sorted(m for m in ('tensorflow', 'apache_beam', 'torch', 'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- framing ---------------------------------------------------------------------------------

PAYLOADS = [b"", b"x", os.urandom(1000), b"\x00" * 70000]


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_framing_round_trip_is_deterministic(tmp_path, compression):
    a, b = tmp_path / "a.tfrecord", tmp_path / "b.tfrecord"
    assert tfrecords.write_records(a, PAYLOADS, compression) == len(PAYLOADS)
    tfrecords.write_records(b, iter(PAYLOADS), compression)
    assert list(tfrecord.iter_records(a, compression)) == PAYLOADS
    assert a.read_bytes() == b.read_bytes()
    assert not list(tmp_path.glob("*.tmp"))


def test_framing_matches_tensorflow(tmp_path):
    tf = pytest.importorskip("tensorflow")
    ours, theirs = tmp_path / "ours.tfrecord", tmp_path / "tf.tfrecord"
    tfrecords.write_records(ours, PAYLOADS)
    with tf.io.TFRecordWriter(str(theirs)) as writer:
        for p in PAYLOADS:
            writer.write(p)
    assert ours.read_bytes() == theirs.read_bytes()
    # gzip bytes differ between zlib settings: check that each side reads the other's file.
    tfrecords.write_records(tmp_path / "ours.gz", PAYLOADS, "gzip")
    with tf.io.TFRecordWriter(str(tmp_path / "tf.gz"), tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
        for p in PAYLOADS:
            writer.write(p)
    read_by_tf = [r.numpy() for r in tf.data.TFRecordDataset(str(tmp_path / "ours.gz"), compression_type="GZIP")]
    assert read_by_tf == PAYLOADS
    assert list(tfrecord.iter_records(tmp_path / "tf.gz", "gzip")) == PAYLOADS


def _offset_of(index: int, payloads: list[bytes]) -> int:
    return sum(len(p) + 16 for p in payloads[:index])


@pytest.mark.parametrize("where, reason", [(13, "data CRC mismatch"), (2, "length CRC mismatch")])
def test_flipped_byte_is_named_by_file_and_record(tmp_path, where, reason):
    path = tmp_path / "s.tfrecord"
    payloads = [bytes([i]) * 40 for i in range(5)]
    tfrecords.write_records(path, payloads)
    raw = bytearray(path.read_bytes())
    raw[_offset_of(3, payloads) + where] ^= 0x01
    path.write_bytes(bytes(raw))
    seen = []
    with pytest.raises(ShardFormatError) as err:
        for record in tfrecord.iter_records(path):
            seen.append(record)
    assert seen == payloads[:3]
    assert str(path) in str(err.value) and "record 3 " in str(err.value) and reason in str(err.value)
    if reason.startswith("data"):  # without verify a data flip goes through unseen: that is what verify is for
        assert len(list(tfrecord.iter_records(path, verify=False))) == 5


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("cut", [5, 30])  # inside the header, inside the data
def test_truncated_file_is_named_by_file_and_record(tmp_path, compression, cut):
    payloads = [bytes([i]) * 40 for i in range(5)]
    plain = tmp_path / "plain.tfrecord"
    tfrecords.write_records(plain, payloads)
    stream = plain.read_bytes()[: _offset_of(4, payloads) + cut]
    path = tmp_path / "s.tfrecord"
    if compression == "gzip":
        import gzip
        stream = gzip.compress(stream, mtime=0)[:-3]  # truncated data *and* a cut-off gzip trailer
    path.write_bytes(stream)
    with pytest.raises(ShardFormatError) as err:
        list(tfrecord.iter_records(path, compression))
    message = str(err.value)
    assert str(path) in message and "record 4 " in message
    assert "truncated" in message


def test_unknown_compression_is_refused(tmp_path):
    with pytest.raises(ValueError, match="compression"):
        list(tfrecord.iter_records(tmp_path / "x", "zstd"))


# -- the reader against tf.data --------------------------------------------------------------

def _tf_reference(tf, data_dir: str, files: list[str], encoding: str, compression: str, clip: int):
    """Frames and labels of every example in canonical order, read with tf.data and TF's decoders."""
    spec = {
        "frames": tf.io.VarLenFeature(tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "num_clips": tf.io.FixedLenFeature([], tf.int64),
    }
    ds = tf.data.TFRecordDataset([os.path.join(data_dir, f) for f in files],
                                 compression_type="GZIP" if compression == "gzip" else "")
    frames, labels = [], []
    for serialized in ds:
        ex = tf.io.parse_single_example(serialized, spec)
        values = tf.sparse.to_dense(ex["frames"])
        if encoding == "raw":
            clips = tf.reshape(tf.io.decode_raw(values[0], tf.uint8), [-1, T, H, W, 3])
            frames.append(clips[clip].numpy())
        else:
            decode = (lambda b: tf.io.decode_jpeg(b, channels=3, dct_method="INTEGER_ACCURATE")) if encoding == "jpeg" \
                else (lambda b: tf.io.decode_png(b, channels=3))
            frames.append(np.stack([decode(values[clip * T + i]).numpy() for i in range(T)]))
        labels.append(int(ex["label"]))
    return np.stack(frames), np.asarray(labels, np.int64)


@pytest.mark.parametrize("encoding, compression", [("jpeg", "none"), ("png", "gzip"), ("raw", "none")])
def test_reader_arrays_equal_tf_decoding(tmp_path, encoding, compression):
    tf = pytest.importorskip("tensorflow")
    records = write_shards(tmp_path, [3, 2], encoding=encoding, compression=compression, clips=2, tagged=False)
    files = [f"train-{s:05d}-of-00002.tfrecord" for s in range(2)]
    for clip in (0, 1):
        want_frames, want_labels = _tf_reference(tf, str(tmp_path), files, encoding, compression, clip)
        reader = ShardReader(tmp_path, "train", batch_size=2, shuffle=False, clips=clip)
        batches = list(reader)
        assert [len(b[1]) for b in batches] == [2, 2, 1] and len(reader) == 3
        frames = np.concatenate([b[0] for b in batches])
        labels = np.concatenate([b[1] for b in batches])
        assert frames.dtype == np.uint8 and labels.dtype == np.int64
        assert frames.shape == (5, T, H, W, 3)
        np.testing.assert_array_equal(labels, want_labels)
        np.testing.assert_array_equal(frames, want_frames)
        if encoding != "jpeg":  # lossless: the stored pixels themselves
            np.testing.assert_array_equal(frames, np.stack([r.frames[clip] for r in records]))


def test_reader_yields_the_element_of_the_tf_data_reader(tmp_path):
    """The same element as the tf.data reader: frames, an int64 label and the video id, example for example."""
    tf = pytest.importorskip("tensorflow")
    from vidshard.readers.tf_data import make_dataset

    write_shards(tmp_path, [3, 2, 2], encoding="jpeg", clips=2, tagged=False)
    ours, theirs = [], []
    for frames, labels, ids in ShardReader(tmp_path, "train", 2, shuffle=False, clips="all", with_ids=True):
        assert frames.dtype == np.uint8 and labels.dtype == np.int64 and ids.dtype == object
        ours += [(f.tobytes(), int(l), i) for f, l, i in zip(frames, labels, ids)]
    for frames, labels, ids in make_dataset(str(tmp_path), "train", 2, shuffle=False, clips="all", with_ids=True):
        assert frames.dtype == tf.uint8 and labels.dtype == tf.int64 and ids.dtype == tf.string
        theirs += [(f.tobytes(), int(l), i.decode()) for f, l, i in zip(frames.numpy(), labels.numpy(), ids.numpy())]
    # Identical arrays per example; the two readers may visit the shards in different orders.
    assert len(ours) == 14 and len(set(ours)) == 14 and all(isinstance(i, str) for _, _, i in ours)
    assert sorted(ours) == sorted(theirs)


def test_channels_first_layout_is_the_stored_clip_scaled_to_unit_floats(tmp_path):
    write_shards(tmp_path, [3, 2], encoding="jpeg", clips=2, tagged=False)
    stored = [frames for frames, _ in ShardReader(tmp_path, "train", 5, shuffle=False, clips=1)][0]
    for layout, order in (("CTHW", (0, 4, 1, 2, 3)), ("TCHW", (0, 1, 4, 2, 3))):
        frames, labels = next(iter(ShardReader(tmp_path, "train", 5, shuffle=False, clips=1, layout=layout)))
        assert frames.dtype == np.float32 and frames.flags.c_contiguous and labels.dtype == np.int64
        np.testing.assert_array_equal(frames, stored.transpose(order).astype(np.float32) / np.float32(255))
    with pytest.raises(ValueError, match="layout must be one of THWC, TCHW, CTHW"):
        ShardReader(tmp_path, "train", layout="NCHW")


# -- order, epochs, clips, parts -------------------------------------------------------------

def test_every_example_once_per_epoch_and_epochs_differ(tmp_path):
    write_shards(tmp_path, [5, 4, 3, 4, 2], clips=3)
    reader = ShardReader(tmp_path, "train", batch_size=4, shuffle_buffer=8, seed=7)
    assert reader.num_examples == 18 and len(reader) == 5
    passes = [ids_and_clips(reader) for _ in range(3)]  # each iter() is the next epoch
    for seen in passes:
        assert sorted(v for v, _ in seen) == list(range(18))
        assert all(0 <= c < 3 for _, c in seen)
    orders = [[v for v, _ in seen] for seen in passes]
    clips = [dict(seen) for seen in passes]
    assert orders[0] != orders[1] != orders[2] and orders[0] != list(range(18))
    assert clips[0] != clips[1] and len({c for d in clips for c in d.values()}) == 3
    # Reproducible: the same (seed, epoch) gives the same pass, whichever reader asks.
    again = ShardReader(tmp_path, "train", batch_size=4, shuffle_buffer=8, seed=7, epoch=1)
    assert ids_and_clips(again) == passes[1]
    reader.set_epoch(2)
    assert ids_and_clips(reader) == passes[2]
    assert ids_and_clips(ShardReader(tmp_path, "train", 4, shuffle_buffer=8, seed=8)) != passes[0]


def test_unshuffled_order_is_canonical_and_clip_can_be_fixed(tmp_path):
    write_shards(tmp_path, [3, 3], clips=2, compression="gzip")
    assert ids_and_clips(ShardReader(tmp_path, "train", 4, shuffle=False, clips=1)) == [(v, 1) for v in range(6)]
    first, second = (ids_and_clips(r) for r in [ShardReader(tmp_path, "train", 4, shuffle=False)] * 2)
    assert [v for v, _ in first] == [v for v, _ in second] == list(range(6))
    every = ShardReader(tmp_path, "train", 4, shuffle=False, clips="all")
    assert every.num_examples == 12 and len(every) == 3
    assert ids_and_clips(every) == [(v, c) for v in range(6) for c in range(2)]
    with pytest.raises(ValueError, match="clips"):
        ShardReader(tmp_path, "train", clips=2)


@pytest.mark.parametrize("num_shards", [2, 3, 4, 7])  # by file (2, 3), by record index (4, 7)
def test_parts_are_disjoint_and_cover_the_split(tmp_path, num_shards):
    write_shards(tmp_path, [4, 3, 2])
    seen = []
    for k in range(num_shards):
        reader = ShardReader(tmp_path, "train", 2, shard_index=k, num_shards=num_shards, seed=3)
        part = [v for v, _ in ids_and_clips(reader)]
        assert len(part) == reader.num_examples
        seen += part
    assert sorted(seen) == list(range(9))


@pytest.mark.parametrize("ranks, workers", [(2, 2), (3, 2), (2, 3), (1, 4)])
def test_nested_parts_are_disjoint_and_cover_the_split(tmp_path, ranks, workers):
    write_shards(tmp_path, [4, 3, 2, 3])
    whole = Part.whole(str(tmp_path), load_info(str(tmp_path)), "train")
    seen = []
    for r in range(ranks):
        rank_part = whole.split(r, ranks)
        rank_seen = []
        for w in range(workers):
            reader = ShardReader(tmp_path, "train", 2, seed=3, part=rank_part.split(w, workers))
            part = [v for v, _ in ids_and_clips(reader)]
            assert len(part) == reader.num_examples
            rank_seen += part
        assert len(rank_seen) == rank_part.num_examples
        seen += rank_seen
    assert sorted(seen) == list(range(12))


def test_single_examples_drop_remainder_and_inline_mode(tmp_path):
    write_shards(tmp_path, [4, 3], clips=2)
    singles = list(ShardReader(tmp_path, "train", batch_size=None, seed=1))
    assert len(singles) == 7 and singles[0][0].shape == (T, H, W, 3) and singles[0][1].shape == ()
    dropped = ShardReader(tmp_path, "train", 3, drop_remainder=True)
    assert len(dropped) == 2 and [len(lb) for _, lb in dropped] == [3, 3]
    threaded = ids_and_clips(ShardReader(tmp_path, "train", 3, seed=5, num_workers=3, prefetch=1))
    inline = ids_and_clips(ShardReader(tmp_path, "train", 3, seed=5, num_workers=0))
    assert threaded == inline


def test_decoding_runs_in_worker_threads_and_stops_with_the_consumer(tmp_path, monkeypatch):
    write_shards(tmp_path, [6, 6], encoding="png", tagged=False)
    decoded_in = []
    real = numpy_reader.decode_into

    def spy(*args):
        decoded_in.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(numpy_reader, "decode_into", spy)
    batches = iter(ShardReader(tmp_path, "train", 2, num_workers=2, prefetch=2))
    next(batches)
    names = {t.name for t in threading.enumerate()}
    assert "vidshard-reader" in names
    assert decoded_in and all(n.startswith("vidshard-decode") for n in decoded_in)
    batches.close()  # a consumer that stops early must not leave threads behind
    assert not [t.name for t in threading.enumerate() if t.name.startswith("vidshard-")]



# -- bad shards ------------------------------------------------------------------------------

@pytest.mark.parametrize("num_workers", [0, 2])
def test_reader_reports_a_corrupt_record_with_file_and_index(tmp_path, num_workers):
    write_shards(tmp_path, [3, 3])
    path = tmp_path / "train-00001-of-00002.tfrecord"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # inside record 1's frames
    path.write_bytes(bytes(raw))
    with pytest.raises(ShardFormatError, match=r"train-00001-of-00002\.tfrecord: record 1 .*CRC"):
        list(ShardReader(tmp_path, "train", 2, shuffle=False, num_workers=num_workers))


def test_reader_reports_a_shard_shorter_than_its_info(tmp_path):
    write_shards(tmp_path, [3, 3])
    tfrecords.write_records(tmp_path / "train-00001-of-00002.tfrecord",
                              list(tfrecord.iter_records(tmp_path / "train-00001-of-00002.tfrecord"))[:2])
    with pytest.raises(ShardFormatError, match="holds 2 records but .* says 3"):
        list(ShardReader(tmp_path, "train", 2))


def test_reader_reports_a_record_that_does_not_fit_the_info(tmp_path):
    write_shards(tmp_path, [2])
    odd = ClipRecord("x", 0, "A", np.zeros((1, T, H + 2, W, 3), np.uint8), np.zeros((1, T), np.int64))
    good = list(tfrecord.iter_records(tmp_path / "train-00000-of-00001.tfrecord"))
    tfrecords.write_records(tmp_path / "train-00000-of-00001.tfrecord", [good[0], encode_example(odd, "raw")])
    with pytest.raises(ShardFormatError, match=r"record 1: stores 1 clips"):
        list(ShardReader(tmp_path, "train", 2))
    with pytest.raises(ShardFormatError, match="no split 'test'"):
        ShardReader(tmp_path, "test")
    counts = Counter()
    with pytest.raises(ShardFormatError):
        for frames, _ in ShardReader(tmp_path, "train", 1, shuffle=False):
            counts["batches"] += 1
    assert counts["batches"] == 1  # the good record came through before the error
