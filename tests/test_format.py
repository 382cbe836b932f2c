"""The format contract: dataset_info.json versions, the one parser, the one way to open a split."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from vidshard.errors import ShardFormatError
from vidshard.format.info import INFO_FILE, DatasetInfo, load_info
from vidshard.format.schema import FEATURES, ClipRecord, encode_example, parse_clip_into, parse_example, video_id_of
from vidshard.format.splits import split_files
from vidshard.sampling import ClipSpec

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
#: The clip spec of both fixtures (written by the code before format_version 3, flat fields, seed 42).
FIXTURE_CLIP = ClipSpec(n_frames=10, frame_step=15, height=224, width=224, clips_per_video=1, seed=42)


def _output_with(tmp_path, fixture: str, **changes) -> str:
    out = tmp_path / "out"
    out.mkdir()
    data = json.loads(open(os.path.join(DATA, fixture), encoding="utf-8").read())
    data.update(changes)
    (out / INFO_FILE).write_text(json.dumps(data))
    return str(out)


@pytest.mark.parametrize("fixture, version, file_format", [
    ("dataset_info_v1.json", 1, "tfrecord"), ("dataset_info_v2.json", 2, "array_record")])
def test_outputs_of_earlier_versions_still_load(tmp_path, fixture, version, file_format):
    info = load_info(_output_with(tmp_path, fixture))
    assert (info.format_version, info.file_format) == (version, file_format)
    # The flat clip fields become one ClipSpec; its seed is the plan's, which cut the clips then.
    assert info.clip == FIXTURE_CLIP and info.clip_shape == (10, 224, 224, 3)
    assert info.splits["train"].shard_lengths == [3] and info.extra["class_counts"]["train"]["Archery"] == 1


def test_written_info_nests_the_clip_spec_and_names_the_file_format(tmp_path):
    old = load_info(_output_with(tmp_path, "dataset_info_v1.json"))
    clip = ClipSpec(n_frames=4, frame_step=3, height=32, width=40, clips_per_video=2, seed=old.seed + 1)
    new = DatasetInfo(**{**old.__dict__, "clip": clip, "format_version": None, "features": None})
    data = json.loads(new.to_json())
    # Clips cut the tutorial's way are written as version 3, without the version 4 clip fields.
    assert data["format_version"] == 3 and data["file_format"] == "tfrecord"
    assert data["clip"] == {"n_frames": 4, "frame_step": 3, "height": 32, "width": 40, "clips_per_video": 2,
                            "seed": old.seed + 1}
    assert not {"n_frames", "frame_step", "height", "width", "clips_per_video"} & set(data)
    assert DatasetInfo.from_dict(data) == new
    with pytest.raises(ValueError, match="writes this clip spec as format_version 3, not 1"):
        old.to_json()  # never writes an old layout


def test_new_sampling_options_are_written_as_version_4_or_5_and_read_back(tmp_path):
    old = load_info(_output_with(tmp_path, "dataset_info_v1.json"))
    for clip in (ClipSpec(n_frames=4, sampling="time", fps=5.0), ClipSpec(n_frames=4, sampling="segments"),
                 ClipSpec(n_frames=4, eval_clips=3)):
        new = DatasetInfo(**{**old.__dict__, "clip": clip, "format_version": None, "features": None})
        data = json.loads(new.to_json())
        # Time sampling's records store every frame's time (version 5); the others are version 4.
        assert data["format_version"] == (5 if clip.sampling == "time" else 4)
        assert ("frame_times" in data["features"]) == (clip.sampling == "time")
        assert (data["clip"]["sampling"], data["clip"]["fps"], data["clip"]["eval_clips"]) == (
            clip.sampling, clip.fps, clip.eval_clips)
        # Records store their video's timing exactly when the clips depend on it.
        assert ("source_fps" in data["features"]) == (clip.sampling != "step")
        assert DatasetInfo.from_dict(data) == new


def test_an_unknown_format_version_is_one_clear_error(tmp_path):
    out = _output_with(tmp_path, "dataset_info_v2.json", format_version=7)
    with pytest.raises(ShardFormatError, match=r"dataset_info.json: format_version 7 is not one this vidshard "
                                               r"reads \(1, 2, 3, 4, 5, 6\): written by a newer vidshard\?"):
        load_info(out)
    shutil.rmtree(out)
    with pytest.raises(ShardFormatError, match="format_version 1 outputs hold tfrecord shards, not array_record"):
        load_info(_output_with(tmp_path, "dataset_info_v1.json", file_format="array_record"))


def _record(clips: int = 2, t: int = 3, h: int = 8, w: int = 6) -> ClipRecord:
    rng = np.random.default_rng(0)
    return ClipRecord("v/a.avi", 1, "Archery", rng.integers(0, 256, (clips, t, h, w, 3), np.uint8),
                      np.arange(clips * t, dtype=np.int64).reshape(clips, t))


@pytest.mark.parametrize("encoding", ["raw", "png"])
def test_parse_follows_the_declared_encoding(encoding):
    record = _record()
    serialized = encode_example(record, encoding)
    parsed = parse_example(serialized, encoding)
    assert np.array_equal(parsed.frames, record.frames) and np.array_equal(parsed.frame_indices, record.frame_indices)
    assert (parsed.video_id, parsed.label, parsed.label_name) == (record.video_id, 1, "Archery")
    out = np.zeros((3, 8, 6, 3), np.uint8)
    assert parse_clip_into(serialized, encoding, out, clip=1) == (1, record.video_id) and np.array_equal(out, record.frames[1])
    assert video_id_of(serialized) == record.video_id
    with pytest.raises(ShardFormatError, match="not a valid tf.train.Example"):
        video_id_of(b"\xff" * 9)
    other = "png" if encoding == "raw" else "raw"
    with pytest.raises(ShardFormatError, match=f"{other} frame entries"):
        parse_example(serialized, other)  # never guessed from the payload


def test_one_stored_frame_is_told_by_the_encoding_not_by_its_length():
    # One 1x1 frame: a PNG of it is never 3 bytes, but a raw payload of 3 bytes is one frame either way.
    record = _record(clips=1, t=1, h=1, w=1)
    raw = encode_example(record, "raw")
    assert np.array_equal(parse_example(raw, "raw").frames, record.frames)
    with pytest.raises(ShardFormatError, match="not a decodable JPEG/PNG image"):
        parse_example(raw, "jpeg")


def test_encoder_writes_exactly_the_declared_features():
    from vidshard.format.example_proto import Example

    feature = Example.FromString(encode_example(_record(), "jpeg")).features.feature
    assert set(feature) == set(FEATURES)
    for name, entry in FEATURES.items():
        assert feature[name].WhichOneof("kind") == {"string": "bytes_list", "int64": "int64_list"}[entry["dtype"]]


def test_split_files_has_one_message_for_a_missing_split_or_file(tmp_path):
    out = _output_with(tmp_path, "dataset_info_v1.json")
    with pytest.raises(ShardFormatError, match=f"^{out} has no split 'val'; it has test, train$"):
        split_files(out, "val")
    with pytest.raises(ShardFormatError, match="split 'train' lacks 1 of its 1 shard files"):
        split_files(out, "train")
    info, paths = split_files(out, "train", check_files=False)
    assert paths == [os.path.join(out, "train-00000-of-00001.tfrecord.gz")] and info.file_format == "tfrecord"
