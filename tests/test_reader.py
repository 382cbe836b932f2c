"""The tf.data reader: exact frames, labels and ids from shards, clip choice per epoch, uint8 cache, errors."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from vidshard.testing.shards import corrupt_shard, make_shards, read_records
from vidshard.errors import ShardFormatError
from vidshard.readers.tf_data import data_error, make_dataset


def _examples(dataset) -> list[tuple[str, int, np.ndarray]]:
    """``(video_id, label, clip)`` of every example of a dataset built with ``with_ids=True``."""
    return [(video_id.decode(), int(label), clip)
            for clips, labels, ids in dataset
            for clip, label, video_id in zip(clips.numpy(), labels.numpy(), ids.numpy())]


@pytest.mark.parametrize("encoding,compression", [("jpeg", "none"), ("png", "gzip"), ("raw", "none")])
def test_reader_yields_exactly_the_stored_frames(tmp_path, encoding, compression):
    make_shards(tmp_path, splits={"train": 3}, clips_per_video=2, encoding=encoding, compression=compression)
    stored = {r.video_id: r for r in read_records(tmp_path, "train")}  # decoded by OpenCV, TF-free
    got = _examples(make_dataset(tmp_path, "train", 4, shuffle=False, with_ids=True, clips="all"))
    assert len(stored) == 9 and len(got) == 18  # every clip of every video, once
    for video_id in stored:
        clips = [(label, clip) for vid, label, clip in got if vid == video_id]
        assert [label for label, _ in clips] == [stored[video_id].label] * 2
        # Same pixels, clip order kept: for JPEG this needs TF's INTEGER_ACCURATE IDCT (OpenCV's).
        np.testing.assert_array_equal(np.stack([clip for _, clip in clips]), stored[video_id].frames)


def test_tensorflows_default_jpeg_decode_would_differ(tmp_path):
    """Why the reader names dct_method: TF's default IDCT gives other pixels than OpenCV's decoder."""
    make_shards(tmp_path, splits={"train": 1}, encoding="jpeg")
    raw = next(iter(tf.data.TFRecordDataset(str(tmp_path / "train-00000-of-00002.tfrecord")))).numpy()
    first_frame = tf.io.parse_single_example(raw, {"frames": tf.io.VarLenFeature(tf.string)})["frames"].values[0]
    opencv = read_records(tmp_path, "train")[0].frames[0, 0]
    np.testing.assert_array_equal(tf.io.decode_jpeg(first_frame, dct_method="INTEGER_ACCURATE").numpy(), opencv)
    assert not np.array_equal(tf.io.decode_jpeg(first_frame).numpy(), opencv)


def test_batches_are_uint8_clips_and_int_labels(tmp_path):
    make_shards(tmp_path, splits={"train": 3}, n_frames=4, height=32, width=48)
    dataset = make_dataset(tmp_path, "train", 4)
    clips_spec, labels_spec = dataset.element_spec
    assert clips_spec.dtype == tf.uint8 and clips_spec.shape.as_list() == [None, 4, 32, 48, 3]
    assert labels_spec.dtype == tf.int64
    assert [int(x.shape[0]) for x, _ in dataset] == [4, 4, 1]
    assert dataset.cardinality().numpy() == 3  # Keras knows the steps per epoch


def test_random_clip_is_drawn_every_epoch_and_seeded(tmp_path):
    make_shards(tmp_path, splits={"train": 4}, clips_per_video=3)
    stored = {r.video_id: r.frames for r in read_records(tmp_path, "train")}

    def clip_choices(dataset) -> dict[str, int]:
        choices = {}
        for video_id, _, clip in _examples(dataset):
            matches = [k for k in range(3) if np.array_equal(stored[video_id][k], clip)]
            assert len(matches) == 1  # always one whole stored clip
            choices[video_id] = matches[0]
        assert len(choices) == len(stored)  # every video once per epoch
        return choices

    dataset = make_dataset(tmp_path, "train", 5, seed=11, with_ids=True)  # cached in memory
    epochs = [clip_choices(dataset) for _ in range(3)]
    assert epochs[0] != epochs[1] != epochs[2]  # the cache does not freeze the clip
    assert {k for epoch in epochs for k in epoch.values()} == {0, 1, 2}
    again = make_dataset(tmp_path, "train", 5, seed=11, with_ids=True)
    assert clip_choices(again) == epochs[0]  # same seed, same draws


def test_shuffle_order_changes_per_epoch_and_unshuffled_keeps_it(tmp_path):
    make_shards(tmp_path, splits={"train": 6})

    def order(dataset):
        return [video_id for video_id, _, _ in _examples(dataset)]

    shuffled = make_dataset(tmp_path, "train", 4, seed=1, with_ids=True)
    first, second = order(shuffled), order(shuffled)
    assert first != second and sorted(first) == sorted(second)
    plain = make_dataset(tmp_path, "train", 4, shuffle=False, with_ids=True)
    assert order(plain) == order(plain)


@pytest.mark.parametrize("where", ["memory", "disk"])
def test_cache_holds_uint8_clips_and_serves_later_epochs(tmp_path, where):
    info = make_shards(tmp_path / "data", splits={"train": 4}, clips_per_video=2)
    cache = True if where == "memory" else str(tmp_path / "cache" / "train")
    dataset = make_dataset(tmp_path / "data", "train", 4, cache=cache, shuffle=False, clips="all")
    first = [clip.tobytes() for clips, _ in dataset for clip in clips.numpy()]
    for name in info.splits["train"].shards:
        os.remove(tmp_path / "data" / name)
    assert [clip.tobytes() for clips, _ in dataset for clip in clips.numpy()] == first  # read from the cache
    if where == "disk":
        cache_bytes = sum(os.path.getsize(tmp_path / "cache" / name) for name in os.listdir(tmp_path / "cache"))
        payload = info.splits["train"].num_examples * 2 * 4 * 32 * 32 * 3  # the uint8 clips
        assert payload <= cache_bytes < 1.5 * payload  # a float32 cache would be 4x


def test_missing_split_and_missing_files_are_named(tmp_path):
    make_shards(tmp_path, splits={"train": 1, "val": 1})
    with pytest.raises(ShardFormatError, match="no split 'test'; it has train, val"):
        make_dataset(tmp_path, "test")
    os.remove(tmp_path / "val-00001-of-00002.tfrecord")
    with pytest.raises(ShardFormatError, match="split 'val' lacks 1 of its 2 shard files.*val-00001-of-00002"):
        make_dataset(tmp_path, "val")
    with pytest.raises(ShardFormatError, match="no dataset_info.json"):
        make_dataset(tmp_path / "nowhere", "train")


def test_a_split_shorter_than_its_info_fails_loudly(tmp_path):
    make_shards(tmp_path, splits={"train": 2})
    info_path = tmp_path / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info["splits"]["train"]["num_examples"] += 1
    info_path.write_text(json.dumps(info))
    with pytest.raises(tf.errors.FailedPreconditionError, match="expected to contain 7 elements") as caught:
        list(make_dataset(tmp_path, "train", 4))
    message = str(data_error(tmp_path, ("train",), caught.value))
    assert message.startswith(f"reading split train of {tmp_path} failed: ") and "expected to contain 7" in message
    assert "{{" not in message and "[Op:" not in message and "\n" not in message  # no TensorFlow op names


def test_a_corrupt_record_is_located_by_file(tmp_path):
    make_shards(tmp_path, splits={"train": 2, "test": 2})
    corrupt_shard(tmp_path / "test-00001-of-00002.tfrecord")
    with pytest.raises(tf.errors.DataLossError) as caught:
        list(make_dataset(tmp_path, "test", 2, shuffle=False))
    assert "function_node" in caught.value.message  # what train printed: TensorFlow's op names, a byte offset
    error = data_error(tmp_path, ("train", "test"), caught.value)
    # The file and record, as `inspect --verify` names them.
    assert str(error) == (f"corrupt shard in split 'test': {tmp_path / 'test-00001-of-00002.tfrecord'}: record 0 "
                          "(byte 0): data CRC mismatch: the file is corrupted")
