"""``vidshard shard --format array_record``: the same records in ArrayRecord files, read by every reader.

Both outputs come from the real pipeline (FnApiRunner) over the ``ucf_zip`` fixture with the
same options, so they hold the same plan; the tests compare them record for record.
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from vidshard.cli import main
from vidshard.errors import ShardFormatError
from vidshard.format.info import INFO_FILE, load_info
from vidshard.format.file_adapters import iter_shard, read_shard_record
from vidshard.format.tfrecord import iter_records
from vidshard.readers.numpy_reader import ShardReader

pytest.importorskip("array_record.python.array_record_module",
                    reason="ArrayRecord shards need the grain extra: pip install 'vidshard[grain]'")

SHARD_OPTIONS = ["--split-by", "order", "--splits", "train=2,val=1,test=1", "--n-frames", "4", "--frame-step", "4",
                 "--size", "24x32", "--clips-per-video", "3", "--shards", "2", "--runner=FnApiRunner"]


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def shard(zip_path, out, *extra: str) -> str:
    result = cli("shard", str(zip_path), str(out), *SHARD_OPTIONS, *extra)
    assert result.exit_code == 0, result.output
    return str(out)


@pytest.fixture(scope="module")
def outputs(ucf_zip, tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("formats")
    return {"tfrecord": shard(ucf_zip[0], root / "tf"),
            "array_record": shard(ucf_zip[0], root / "ar", "--format", "array_record")}


def split_records(out: str, split: str) -> list[bytes]:
    info = load_info(out)
    return [record for name in info.splits[split].shards for record in iter_shard(os.path.join(out, name), info)]


def test_same_records_and_info_apart_from_the_format(outputs):
    tf_info, ar_info = load_info(outputs["tfrecord"]), load_info(outputs["array_record"])
    assert (tf_info.file_format, tf_info.format_version) == ("tfrecord", 3)
    assert (ar_info.file_format, ar_info.format_version) == ("array_record", 3)
    for split in tf_info.splits:
        records = split_records(outputs["tfrecord"], split)
        assert len(records) == tf_info.splits[split].num_examples > 0
        assert split_records(outputs["array_record"], split) == records  # same bytes per record, same order
        assert ar_info.splits[split].shards == [name.replace(".tfrecord", ".array_record")
                                               for name in tf_info.splits[split].shards]
        assert ar_info.splits[split].shard_lengths == tf_info.splits[split].shard_lengths
        assert ar_info.splits[split].num_bytes == sum(
            os.path.getsize(os.path.join(outputs["array_record"], name)) for name in ar_info.splits[split].shards)

    def comparable(out):
        data = json.loads(open(os.path.join(out, INFO_FILE)).read())
        data.pop("file_format")
        for split in data["splits"].values():
            split.pop("num_bytes")
            split["shards"] = [name.rsplit(".", 1)[0] for name in split["shards"]]
        return data

    assert comparable(outputs["tfrecord"]) == comparable(outputs["array_record"])
    # Since format_version 3 every dataset_info.json names its file format
    assert json.loads(open(os.path.join(outputs["tfrecord"], INFO_FILE)).read())["file_format"] == "tfrecord"


def test_array_record_output_is_deterministic(outputs, ucf_zip, tmp_path):
    again = shard(ucf_zip[0], tmp_path / "again", "--format", "array_record", "--direct_num_workers=2")
    names = [name for name in sorted(os.listdir(outputs["array_record"])) if name.endswith(".array_record")]
    assert names and names == [name for name in sorted(os.listdir(again)) if name.endswith(".array_record")]
    for name in names:
        with open(os.path.join(outputs["array_record"], name), "rb") as a, open(os.path.join(again, name), "rb") as b:
            assert a.read() == b.read(), name


def test_inspect_verify_and_preview_read_array_record(outputs, tmp_path):
    out = outputs["array_record"]
    result = cli("inspect", out, "--verify")
    assert result.exit_code == 0, result.output
    assert "array_record files" in result.output and "verified: 12 records" in result.output

    for fmt in ("tfrecord", "array_record"):
        result = cli("preview", outputs[fmt], "--split", "val", "--index", "2", "--clip", "1", "--out", str(tmp_path / f"{fmt}.gif"))
        assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "tfrecord.gif") as a, Image.open(tmp_path / "array_record.gif") as b:
        assert a.n_frames == b.n_frames == 4
        assert np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))

    info = load_info(out)
    name = info.splits["train"].shards[1]
    assert read_shard_record(os.path.join(out, name), info, 2) == \
        list(iter_records(os.path.join(outputs["tfrecord"], name.replace(".array_record", ".tfrecord"))))[2]


def test_verify_names_file_and_record_of_a_damaged_array_record(outputs, tmp_path):
    copy = shutil.copytree(outputs["array_record"], tmp_path / "copy")
    info = load_info(str(copy))
    name = info.splits["train"].shards[0]
    path = copy / name
    data = bytearray(path.read_bytes())
    data[1000] ^= 0x40  # inside the first record's chunk (it starts at byte 64, after the file signature)
    path.write_bytes(bytes(data))
    result = cli("inspect", str(copy), "--verify")
    assert result.exit_code == 1
    problems = [line for line in result.stderr.splitlines() if line.startswith("PROBLEM: ")]
    assert problems[0].startswith(f"PROBLEM: {path}: record 0: Corrupted Riegeli/records file: chunk data hash mismatch")

    with open(copy / info.splits["val"].shards[0], "r+b") as fh:  # truncated: the footer (index) is gone
        fh.truncate(1000)
    result = cli("inspect", str(copy), "--verify")
    assert f"{copy / info.splits['val'].shards[0]}: not a readable ArrayRecord file" in result.stderr


def test_numpy_reader_gives_the_same_clips_from_both_formats(outputs):
    for split in ("train", "test"):
        batches = [list(ShardReader(outputs[fmt], split, batch_size=4, shuffle=False, clips="all", num_workers=0))
                   for fmt in ("tfrecord", "array_record")]
        assert len(batches[0]) == len(batches[1]) > 0
        for (frames_a, labels_a), (frames_b, labels_b) in zip(*batches):
            np.testing.assert_array_equal(frames_a, frames_b)
            np.testing.assert_array_equal(labels_a, labels_b)
        shuffled = [[labels.tolist() for _, labels in ShardReader(outputs[fmt], split, batch_size=4, seed=5)]
                    for fmt in ("tfrecord", "array_record")]
        assert shuffled[0] == shuffled[1]  # same seed, same order and clips whatever the file format


def test_tf_data_reader_refuses_array_record(outputs):
    from vidshard.readers.tf_data import make_dataset

    with pytest.raises(ShardFormatError, match="array_record shards, which tf.data does not read"):
        make_dataset(outputs["array_record"], "train")


def test_array_record_refuses_gzip_in_one_line(ucf_zip, tmp_path):
    result = cli("shard", str(ucf_zip[0]), str(tmp_path / "o"), "--format", "array_record", "--compression", "gzip")
    assert result.exit_code == 2 and not (tmp_path / "o").exists()
    assert result.stderr.splitlines()[-1] == ("Error: --compression gzip applies to TFRecord files; ArrayRecord "
                                              "compresses its own chunks (zstd): leave --compression none")
    result = cli("shard", str(ucf_zip[0]), str(tmp_path / "o"), "--format", "parquet")
    assert result.exit_code == 2 and "'parquet' is not one of 'tfrecord', 'array_record'" in result.output


def test_format_benchmark_reads_both_outputs(outputs):
    from vidshard.bench.formats import measure, to_markdown

    result = measure(outputs["tfrecord"], outputs["array_record"], split="train", passes=1)
    for fmt, out in outputs.items():
        info = load_info(out)
        row = result[fmt]
        assert row["records"] == sum(s.num_examples for s in info.splits.values()) == 12
        assert row["file_bytes"] == sum(s.num_bytes for s in info.splits.values())
        assert row["split_examples"] == info.splits["train"].num_examples
        assert row["sequential_s"] > 0 and row["decode_s"] > 0
    assert result["tfrecord"]["record_bytes"] == result["array_record"]["record_bytes"]
    assert "shuffled_s" in result["array_record"] and "shuffled_s" not in result["tfrecord"]
    table = to_markdown(result, "train")
    assert table.splitlines()[0] == "| | TFRecord | ArrayRecord |" and "| records in them | 12 records," in table
    with pytest.raises(ValueError, match="holds tfrecord shards, expected array_record"):
        measure(outputs["tfrecord"], outputs["tfrecord"])
