"""Segments in manifests and Kinetics' CSVs (issue 23, item 1): rules first, then the CLI on real MP4s.

Each example is a segment ``path#t=START,END`` of an H.264 MP4 written by PyAV; the stored pixels
are checked against an independent PyAV decode at the frame numbers the records give, and those
numbers against the segment's frame times.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

av = pytest.importorskip("av")

from vidshard.catalog import build_catalog, linked_groups, parse_splits, plan_splits  # noqa: E402
from vidshard.cli import main  # noqa: E402
from vidshard.decode import resize_with_pad  # noqa: E402
from vidshard.errors import CatalogError  # noqa: E402
from vidshard.manifest import catalog_from_manifest, read_manifest  # noqa: E402
from vidshard.sources.base import Member  # noqa: E402
from vidshard.sampling import parse_segment, segment_id  # noqa: E402
from vidshard.testing.codecs import write_codec_video  # noqa: E402
from vidshard.testing.shards import read_records  # noqa: E402

FPS = 30
FRAMES = 90  # 3 s per video


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --- the rules -------------------------------------------------------------------------------

def test_segment_ids_are_media_fragments_and_parse_back():
    assert segment_id("a/b.mp4", 10, 20) == "a/b.mp4#t=10,20"
    assert segment_id("a/b.mp4", 2.5, None) == "a/b.mp4#t=2.5"
    assert segment_id("a/b.mp4", None, 0.125) == "a/b.mp4#t=,0.125"
    assert segment_id("a/b.mp4", None, None) == "a/b.mp4"
    for video_id in ("a/b.mp4#t=10,20", "a/b.mp4#t=2.5", "a/b.mp4#t=,0.125", "a/b.mp4"):
        assert segment_id(*parse_segment(video_id)) == video_id
    assert parse_segment("x.mp4#t=npt:1,2") == ("x.mp4", 1.0, 2.0)


MEMBERS = {"v/a.mp4": 10, "v/b.mp4": 20, "v/c.mp4": 30}


def test_several_segments_per_file_each_an_example_in_its_file_group(tmp_path):
    manifest = write(tmp_path, "m.csv", "path,label,start,end\nv/a.mp4,walk,0,1\nv/a.mp4,walk,1,2\n"
                                        "v/a.mp4,run,2,3\nv/b.mp4,walk,,\nv/b.mp4,run,0.5,\n")
    catalog = catalog_from_manifest(read_manifest(manifest), MEMBERS)
    assert [(e.video_id, e.class_name, e.group) for e in catalog.entries] == [
        ("v/a.mp4#t=0,1", "walk", "v/a.mp4"), ("v/a.mp4#t=1,2", "walk", "v/a.mp4"),
        ("v/a.mp4#t=2,3", "run", "v/a.mp4"), ("v/b.mp4", "walk", "v/b.mp4"), ("v/b.mp4#t=0.5", "run", "v/b.mp4")]
    assert catalog.unmatched == ("v/c.mp4",)
    jsonl = write(tmp_path, "m.jsonl", "\n".join(json.dumps(row) for row in [
        {"path": "v/a.mp4", "label": "walk", "start": 0, "end": 1}, {"path": "v/a.mp4", "label": "walk", "start": 1, "end": 2},
        {"path": "v/a.mp4", "label": "run", "start": 2, "end": 3}, {"path": "v/b.mp4", "label": "walk"},
        {"path": "v/b.mp4", "label": "run", "start": 0.5}]))
    assert catalog_from_manifest(read_manifest(jsonl), MEMBERS) == catalog
    # Group splits keep a file's segments of one class together.
    many = write(tmp_path, "many.csv", "path,label,start,end\n" + "".join(
        f"v/{name}.mp4,walk,{s},{s + 1}\n" for name in "abc" for s in range(3)))
    catalog = catalog_from_manifest(read_manifest(many), MEMBERS)
    for seed in range(5):
        plan = plan_splits(catalog, ["walk"], parse_splits("train=0.67,test=0.33"), seed=seed)
        split_of: dict[str, str] = {}
        for video in plan.videos:
            assert split_of.setdefault(parse_segment(video.video_id)[0], video.split) == video.split


def test_a_files_segments_under_several_labels_never_land_in_two_splits(tmp_path):
    """ActivityNet/Charades: one file, segments of several classes, one group across classes (issue 23)."""
    rows = []
    for i in range(12):
        rows.append(f"v/f{i:02d}.mp4,walk,0,1")
        if i % 2 == 0:
            rows.append(f"v/f{i:02d}.mp4,run,1,2")
        if i % 3 == 0:
            rows.append(f"v/f{i:02d}.mp4,jump,2,3")
    manifest = write(tmp_path, "anet.csv", "path,label,start,end\n" + "\n".join(rows) + "\n")
    catalog = catalog_from_manifest(read_manifest(manifest), {f"v/f{i:02d}.mp4": 100 for i in range(12)})
    assert linked_groups(catalog.entries) == {f"v/f{i:02d}.mp4" for i in range(0, 12, 2)} | {"v/f03.mp4", "v/f09.mp4"}
    for request in ("train=0.5,test=0.5", "train=0.6,val=0.2,test=0.2", "train=2,test=1"):
        for seed in range(10):
            plan = plan_splits(catalog, ["jump", "run", "walk"], parse_splits(request), seed=seed)
            split_of: dict[str, str] = {}
            for video in plan.videos:
                assert split_of.setdefault(parse_segment(video.video_id)[0], video.split) == video.split, (request, seed)
            if request != "train=2,test=1":  # fractions that add up to 1 use every segment once
                assert sorted(v.video_id for v in plan.videos) == sorted(e.video_id for e in catalog.entries)
            assert {v.class_name for v in plan.videos if v.split == "test"} == {"jump", "run", "walk"}
    # UCF101's group numbers count within a class: group 1 of two classes is two groups, split independently.
    ucf = build_catalog([Member(f"v_{cls}_g{g:02d}_c01.avi", 10) for cls in ("Run", "Walk") for g in range(1, 5)])
    assert linked_groups(ucf.entries) == set()


@pytest.mark.parametrize("text, fragment", [
    ("path,label,start,end\nv/a.mp4,walk,0,1\nv/a.mp4,run,0,1\n", "line 3: v/a.mp4#t=0,1 is already listed at m.csv line 2"),
    ("path,label,start,end\nv/a.mp4,walk,ten,20\n", "line 2: start 'ten' is not a number of seconds"),
    ("path,label,start,end\nv/a.mp4,walk,-1,2\n", "line 2: start '-1' must be a finite number of seconds >= 0"),
    ("path,label,start,end\nv/a.mp4,walk,1,inf\n", "line 2: end 'inf' must be a finite number"),
    ("label,youtube_id,time_start\nwalk,abc,1\n", "line 1: no 'time_end' column"),
    ("label,youtube_id,time_start,time_end,split,colour\nwalk,abc,1,2,train,red\n", "line 1: unknown column 'colour'"),
])
def test_bad_segment_rows_are_one_error_naming_the_row(tmp_path, text, fragment):
    with pytest.raises(CatalogError) as info:
        read_manifest(write(tmp_path, "m.csv", text))
    assert fragment in str(info.value)


KINETICS = ("label,youtube_id,time_start,time_end,split,is_cc\n"
            "walk,aaa,0,1,train,0\nwalk,aaa,1,2,train,0\nrun,bbb,0,2,val,0\n")


def test_kinetics_csvs_as_distributed_with_a_path_template(tmp_path):
    csv = write(tmp_path, "kinetics.csv", KINETICS)
    clipped = read_manifest(csv)  # the default template: clipped downloads, each file the whole example
    assert [(r.video_id, r.label, r.split, r.group) for r in clipped] == [
        ("aaa_000000_000001.mp4", "walk", "train", "aaa"), ("aaa_000001_000002.mp4", "walk", "train", "aaa"),
        ("bbb_000000_000002.mp4", "run", "val", "bbb")]
    full = read_manifest(csv, "videos/{youtube_id}.mp4")  # full-length files, cut by the segment
    assert [(r.video_id, r.group) for r in full] == [
        ("videos/aaa.mp4#t=0,1", "aaa"), ("videos/aaa.mp4#t=1,2", "aaa"), ("videos/bbb.mp4#t=0,2", "bbb")]
    with pytest.raises(CatalogError, match=r"may use only .* not \{colour\}"):
        read_manifest(csv, "{colour}.mp4")
    with pytest.raises(CatalogError, match="`path_template` is for Kinetics CSVs"):
        read_manifest(write(tmp_path, "m.csv", "path,label\nv/a.mp4,walk\n"), "{youtube_id}.mp4")


def test_parquet_manifests_and_a_url_column(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({"url": ["http://h/a.mp4", "http://h/a.mp4"], "label": ["walk", "run"],
                             "start": [0.0, 1.5], "end": [1.0, 2.5]}), path)
    rows = read_manifest(str(path))
    assert [(r.where, r.video_id) for r in rows] == [("m.parquet row 1", "http://h/a.mp4#t=0,1"),
                                                     ("m.parquet row 2", "http://h/a.mp4#t=1.5,2.5")]


# --- through the CLI, on real MP4s ------------------------------------------------------------

@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> Path:
    """Three 3-s H.264 MP4s (B-frames, open GOPs of 12), named as Kinetics' full-length downloads."""
    root = tmp_path_factory.mktemp("kinetics") / "videos"
    root.mkdir()
    for seed, name in enumerate(("aaa", "bbb", "ccc")):
        write_codec_video(root / f"{name}.mp4", "h264", frames=FRAMES, fps=FPS, width=64, height=48, seed=seed)
    return root


def independent(path: Path, size: int) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [cv2.cvtColor(resize_with_pad(f.to_ndarray(format="bgr24"), size, size), cv2.COLOR_BGR2RGB)
                for f in container.decode(video=0)]


def _shard(*args: str):
    return CliRunner().invoke(main, ["shard", *args, "--size", "24", "--encoding", "png",
                                     "--direct_running_mode", "in_memory"])


def test_segments_end_to_end_with_failures_recorded(footage, tmp_path):
    rows = [("aaa.mp4", "walk", 0, 1), ("aaa.mp4", "walk", 1, 2), ("aaa.mp4", "walk", 2, 3),
            ("bbb.mp4", "run", 0.5, 2.5), ("bbb.mp4", "run", 2.5, ""), ("ccc.mp4", "run", 1, 2),
            ("ccc.mp4", "run", 5, 6), ("ccc.mp4", "run", 2, 1)]  # outside the 3-s video; empty
    manifest = write(tmp_path, "m.csv", "path,label,start,end\n" + "".join(f"{p},{lab},{s},{e}\n" for p, lab, s, e in rows))
    out = tmp_path / "out"
    for sampling in (["--n-frames", "4", "--frame-step", "3", "--eval-clips", "2"], ["--clip-seconds", "0.5", "--n-frames", "4"],
                     ["--sampling", "segments", "--n-frames", "4"]):
        result = _shard(str(footage), str(out), "--manifest", manifest, "--splits", "train=0.5,test=0.5",
                        "--overwrite", *sampling)
        assert result.exit_code == 0, result.output
        errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
        assert sorted((e["video_id"], e["stage"]) for e in errors) == [("ccc.mp4#t=2,1", "decode"),
                                                                       ("ccc.mp4#t=5,6", "decode")]
        reasons = {e["video_id"]: e["reason"] for e in errors}
        assert "lies outside the video" in reasons["ccc.mp4#t=5,6"] and "empty segment" in reasons["ccc.mp4#t=2,1"]
        info = json.loads((out / "dataset_info.json").read_text())
        assert info["num_failed"] == 2
        split_of: dict[str, str] = {}
        truth = {name: independent(footage / name, 24) for name in ("aaa.mp4", "bbb.mp4", "ccc.mp4")}
        stored = 0
        for split in info["splits"]:
            for record in read_records(out, split):
                path, start, end = parse_segment(record.video_id)
                assert split_of.setdefault(path, split) == split  # a video's segments share a split
                kept = record.frame_indices[record.frame_indices >= 0]
                assert kept.min() >= round((start or 0) * FPS) and kept.max() < round((end or 3) * FPS)
                for clip, row in enumerate(record.frame_indices):
                    for position, index in enumerate(row):
                        if index >= 0:
                            assert np.array_equal(record.frames[clip, position], truth[path][index])
                stored += 1
        assert stored == 6


def test_a_kinetics_csv_of_full_length_videos(footage, tmp_path):
    csv = write(tmp_path, "kinetics_train.csv", KINETICS.replace("bbb,0,2,val", "bbb,0,2,train")
                + "run,ccc,1,3,val,0\nwalk,ccc,0,1,val,0\n")
    result = _shard(str(footage), str(tmp_path / "out"), "--manifest", csv, "--path-template", "{youtube_id}.mp4",
                    "--split-by", "manifest", "--n-frames", "3", "--frame-step", "5")
    assert result.exit_code == 0, result.output
    ids = {split: sorted(r.video_id for r in read_records(tmp_path / "out", split)) for split in ("train", "val")}
    assert ids == {"train": ["aaa.mp4#t=0,1", "aaa.mp4#t=1,2", "bbb.mp4#t=0,2"], "val": ["ccc.mp4#t=0,1", "ccc.mp4#t=1,3"]}
    clipped = _shard(str(footage), str(tmp_path / "out2"), "--manifest", csv, "--split-by", "manifest")
    assert clipped.exit_code == 1
    assert clipped.stderr.strip() == "Error: kinetics_train.csv line 2: aaa_000000_000001.mp4 is not a video of the source"
