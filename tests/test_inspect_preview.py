"""``vidshard inspect`` (summary, ``--verify`` against corruption) and ``vidshard preview`` on real shards.

The shards come from the real pipeline (FnApiRunner, in process: the fastest Beam runner) over the
``ucf_zip`` fixture; each test that damages an output works on its own copy.
"""
from __future__ import annotations

import json
import shutil
import struct

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from vidshard.cli import main
from vidshard.format.info import INFO_FILE, load_info
from vidshard.format.schema import parse_example
from vidshard.format.tfrecord import iter_records
from vidshard.preview import contact_sheet

SHARD_OPTIONS = ["--split-by", "order", "--splits", "train=2,val=2,test=2", "--n-frames", "5", "--frame-step", "4",
                 "--size", "24x32", "--shards", "2", "--runner=FnApiRunner"]


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def make_output(zip_path, out, *extra: str):
    result = cli("shard", str(zip_path), str(out), *SHARD_OPTIONS, *extra)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def output(ucf_zip, tmp_path_factory):
    return make_output(ucf_zip[0], tmp_path_factory.mktemp("shards") / "out")


@pytest.fixture
def damaged(output, tmp_path):
    """A private copy of the output to damage."""
    return shutil.copytree(output, tmp_path / "copy")


def record_offset(path, index: int) -> int:
    """Byte offset of record ``index`` in an uncompressed TFRecord file, from its length fields."""
    offset = 0
    with open(path, "rb") as fh:
        for _ in range(index):
            fh.seek(offset)
            (length,) = struct.unpack("<Q", fh.read(8))
            offset += 12 + length + 4
    return offset


def flip(path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def problems(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("PROBLEM: ")]


def test_inspect_summarises_counts_classes_and_sizes(output):
    result = cli("inspect", str(output))
    assert result.exit_code == 0, result.output
    info = load_info(str(output))
    text = result.stdout
    assert f"classes: {', '.join(info.class_names)}" in text
    for split, split_info in info.splits.items():
        assert split_info.num_examples == 6
        per_clip = split_info.num_bytes / split_info.num_examples / 1024
        assert f"{split}: 6 examples in 2 shard(s), {split_info.num_bytes / 1024:.1f} KiB, {per_clip:.1f} KiB per clip" in text
        assert "  per class: " + ", ".join(f"{name} 2" for name in info.class_names) in text
        for name, length in zip(split_info.shards, split_info.shard_lengths):
            assert f"  {name}: {length} examples, " in text
    assert "failed videos: 0" in text


def test_verify_passes_on_intact_output(output):
    result = cli("inspect", str(output), "--verify")
    assert result.exit_code == 0, result.output
    assert "verified: 18 records" in result.stdout


def test_verify_names_file_and_record_of_a_flipped_data_byte(damaged):
    shard = damaged / load_info(str(damaged)).splits["train"].shards[0]
    flip(shard, record_offset(shard, 1) + 12 + 40)  # inside record 1's payload
    assert cli("inspect", str(damaged)).exit_code == 0  # the summary reads no record
    result = cli("inspect", str(damaged), "--verify")
    assert result.exit_code == 1
    assert problems(result) == [f"PROBLEM: {shard}: record 1 (byte {record_offset(shard, 1)}): data CRC mismatch: "
                                "the file is corrupted (rest of the file not checked)"]
    assert result.stderr.splitlines()[-1] == f"Error: 1 problem(s) found in {damaged}"


def test_verify_names_a_flipped_length_byte(damaged):
    shard = damaged / load_info(str(damaged)).splits["val"].shards[1]
    flip(shard, record_offset(shard, 2) + 1)
    found = problems(cli("inspect", str(damaged), "--verify"))
    assert len(found) == 1 and f"{shard}: record 2" in found[0] and "length CRC mismatch" in found[0]


def test_verify_catches_counts_and_shapes_that_disagree_with_info(damaged):
    info_path = damaged / INFO_FILE
    info = json.loads(info_path.read_text())
    info["splits"]["test"]["shard_lengths"][0] += 1
    info["clip"]["height"] = 25
    info_path.write_text(json.dumps(info))
    (damaged / "train-00007-of-00009.tfrecord").write_bytes(b"")
    found = problems(cli("inspect", str(damaged), "--verify"))
    test_shard = damaged / info["splits"]["test"]["shards"][0]
    real = info["splits"]["test"]["shard_lengths"][0] - 1
    assert f"PROBLEM: {test_shard}: holds {real} records, dataset_info.json says {real + 1}" in found
    assert "PROBLEM: split test: shard lengths add up to 7, num_examples says 6" in found
    assert f"PROBLEM: {damaged / 'train-00007-of-00009.tfrecord'}: shard file not listed in dataset_info.json" in found
    shape_lines = [line for line in found if "frames have shape (1, 5, 24, 32, 3), dataset_info.json says (1, 5, 25, 32, 3)" in line]
    assert len(shape_lines) == 18  # every record, each named by file and record


def test_missing_shard_is_a_problem_even_without_verify(damaged):
    name = load_info(str(damaged)).splits["test"].shards[1]
    (damaged / name).unlink()
    result = cli("inspect", str(damaged))
    assert result.exit_code == 1
    assert problems(result) == [f"PROBLEM: {damaged / name}: missing"]
    assert f"  {name}: 3 examples, MISSING" in result.stdout


def test_inspect_without_info_is_one_line_error(tmp_path):
    result = cli("inspect", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"Error: {tmp_path} has no dataset_info.json: not a vidshard output, "
                                          "or its run did not finish"]


def test_verify_finds_a_flipped_byte_in_a_gzip_shard(ucf_zip, tmp_path):
    out = make_output(ucf_zip[0], tmp_path / "gz", "--compression", "gzip")
    assert cli("inspect", str(out), "--verify").exit_code == 0
    shard = out / load_info(str(out)).splits["train"].shards[0]
    flip(shard, shard.stat().st_size // 2)
    found = problems(cli("inspect", str(out), "--verify"))
    assert len(found) == 1 and found[0].startswith(f"PROBLEM: {shard}: record ")


def test_preview_gif_is_the_clip_at_10_fps(output, tmp_path):
    info = load_info(str(output))
    first_of_second_shard = info.splits["train"].shard_lengths[0]
    expected = next(iter(iter_records(output / info.splits["train"].shards[1])))
    record = parse_example(expected, info.encoding)
    gif = tmp_path / "clip.gif"
    result = cli("preview", str(output), "--split", "train", "--index", str(first_of_second_shard), "--out", str(gif))
    assert result.exit_code == 0, result.output
    assert record.video_id in result.stdout
    image = Image.open(gif)
    assert (image.n_frames, image.size, image.info["duration"]) == (5, (32, 24), 100)
    for position in range(5):
        image.seek(position)
        frame = np.asarray(image.convert("RGB"), dtype=int)
        assert np.abs(frame - record.frames[0, position]).mean() < 6  # GIF palette, same picture


def test_preview_contact_sheet(output, tmp_path):
    sheet = tmp_path / "sheet.png"
    result = cli("preview", str(output), "--split", "val", "--index", "5", "--out", str(sheet))
    assert result.exit_code == 0, result.output
    image = np.asarray(Image.open(sheet).convert("L"))
    assert image.shape[1] > 2 * image.shape[0]  # 5 frames side by side on one row
    assert image.std() > 10


def test_preview_scale_enlarges_gif_pixels_and_sheet_panels(output, tmp_path):
    record = parse_example(next(iter(iter_records(output / load_info(str(output)).splits["train"].shards[0]))), load_info(str(output)).encoding)
    gif = tmp_path / "clip.gif"
    result = cli("preview", str(output), "--out", str(gif), "--scale", "3")
    assert result.exit_code == 0, result.output
    image = Image.open(gif)
    assert (image.n_frames, image.size) == (5, (96, 72))  # 32x24 clip, 3 times larger
    frame = np.asarray(image.convert("RGB"), dtype=int)
    for dy in range(3):  # nearest neighbour: every stored pixel is a 3x3 block of one colour
        for dx in range(3):
            assert np.array_equal(frame[dy::3, dx::3], frame[::3, ::3])
    assert np.abs(frame[::3, ::3] - record.frames[0, 0]).mean() < 6
    sizes = {}
    for scale in (1, 2):
        sheet = tmp_path / f"sheet{scale}.jpg"
        assert cli("preview", str(output), "--out", str(sheet), "--scale", str(scale)).exit_code == 0
        with Image.open(sheet) as opened:
            assert opened.format == "JPEG"
            sizes[scale] = opened.size
    assert sizes[2][0] == pytest.approx(2 * sizes[1][0], rel=0.05)


def test_contact_sheet_title_names_the_split(output):
    record = parse_example(next(iter(iter_records(output / load_info(str(output)).splits["val"].shards[0]))), load_info(str(output)).encoding)
    title = contact_sheet(record, 0, "val").get_suptitle()
    assert title == f"val: {record.video_id} ({record.label_name}, label {record.label}), clip 0"


@pytest.mark.parametrize("args, message", [
    (["--out", "/missing/dir/x.gif"], "--out /missing/dir/x.gif: folder /missing/dir does not exist"),
    (["--split", "nope", "--out", "x.gif"], "no split 'nope'"),
    (["--index", "6", "--out", "x.gif"], "--index 6 is out of range: split train has 6 examples"),
    (["--clip", "1", "--out", "x.gif"], "--clip 1 is out of range"),
    (["--out", "x.mp4"], "--out x.mp4: use .gif"),
])
def test_preview_errors_are_one_line(output, tmp_path, args, message):
    result = cli("preview", str(output), *args)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr
