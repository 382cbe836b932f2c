"""Datasets not named like UCF101: classes from folders, groups from a pattern, and manifests."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from vidshard.catalog import build_catalog, parse_splits, plan_fixed_splits, plan_splits
from vidshard.cli import main
from vidshard.errors import CatalogError
from vidshard.manifest import catalog_from_manifest, read_manifest
from vidshard.sources import Member
from vidshard.testing.synthetic import VideoSpec, motion_frames, write_video

#: HMDB51-style names: <class>/<title>_<class>_<tags>_<n>.avi; the title (a film) is the group.
HMDB = [f"hmdb51/{cls}/{title}_{cls}_u_nm_np1_fr_med_{n}.avi"
        for cls in ("brush_hair", "cartwheel") for title in ("April_09", "Bad_Boys", "Veoh") for n in (0, 1)]


def test_classes_come_from_folders_when_no_name_is_ucf101s():
    catalog = build_catalog([Member(name, 10) for name in HMDB] + [Member("readme.avi", 1)])
    assert catalog.naming == "folder" and catalog.class_names == ["brush_hair", "cartwheel"]
    assert catalog.unmatched == ("readme.avi",)  # no class folder: reported, not guessed
    assert {entry.group for entry in catalog.entries} == set(HMDB)  # each video its own group


def test_split_folders_are_not_classes():
    catalog = build_catalog([Member("data/train/Dog/a.mp4", 1), Member("data/test/Cat/b.mp4", 1),
                             Member("data/train/c.mp4", 1)])
    assert catalog.class_names == ["Cat", "Dog"] and catalog.unmatched == ("data/train/c.mp4",)


def test_ucf101_names_win_and_other_members_stay_unmatched():
    catalog = build_catalog([Member("UCF101/v_Archery_g01_c01.avi", 1), Member("UCF101/clip.avi", 1)])
    assert catalog.naming == "ucf101" and catalog.unmatched == ("UCF101/clip.avi",)


def test_group_pattern_keeps_each_film_in_one_split():
    catalog = build_catalog([Member(name, 10) for name in HMDB], group_pattern=r"^(.+)_(?:brush_hair|cartwheel)_")
    assert {entry.group for entry in catalog.entries} == {"April_09", "Bad_Boys", "Veoh"}
    plan = plan_splits(catalog, catalog.class_names, parse_splits("train=4,test=2"), seed=1)
    split_of = {}
    for video in plan.videos:
        assert split_of.setdefault((video.class_name, video.group), video.split) == video.split
    named = build_catalog([Member(name, 10) for name in HMDB], group_pattern=r"^(?P<group>[A-Za-z]+)_")
    assert {entry.group for entry in named.entries} == {"April", "Bad", "Veoh"}


@pytest.mark.parametrize("pattern, fragment", [
    ("(", "is not a regular expression"),
    ("April", "has no (group)"),
    (r"^(zzz)", "does not match hmdb51/brush_hair/April_09"),
])
def test_bad_group_patterns(pattern, fragment):
    with pytest.raises(CatalogError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        build_catalog([Member(name, 10) for name in HMDB], group_pattern=pattern)


def test_folds_need_ucf101_group_numbers():
    catalog = build_catalog([Member(name, 10) for name in HMDB])
    with pytest.raises(CatalogError, match="needs UCF101 names"):
        plan_fixed_splits(catalog, catalog.class_names, "ucf101-fold1")


# --- manifests ------------------------------------------------------------------------------------

MEMBERS = {"clips/a.mp4": 10, "clips/b.mp4": 20, "clips/c.mp4": 30, "clips/d.mp4": 40}


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_csv_and_jsonl_manifests_give_the_same_catalog(tmp_path):
    csv = write(tmp_path, "m.csv", "path,label,split,group\nclips/a.mp4,dog,train,g1\n./clips/b.mp4,cat,test,g2\n"
                                   "clips\\c.mp4,dog,test,g3\n")
    jsonl = write(tmp_path, "m.jsonl", "\n".join(json.dumps(row) for row in [
        {"path": "clips/a.mp4", "label": "dog", "split": "train", "group": "g1"},
        {"path": "clips/b.mp4", "label": "cat", "split": "test", "group": "g2"},
        {"path": "clips/c.mp4", "label": "dog", "split": "test", "group": "g3"}]) + "\n")
    from_csv, from_jsonl = (catalog_from_manifest(read_manifest(file), MEMBERS) for file in (csv, jsonl))
    assert from_csv == from_jsonl
    assert from_csv.naming == "manifest" and from_csv.unmatched == ("clips/d.mp4",)
    assert [(e.video_id, e.class_name, e.split, e.group, e.size) for e in from_csv.entries] == [
        ("clips/a.mp4", "dog", "train", "g1", 10), ("clips/b.mp4", "cat", "test", "g2", 20),
        ("clips/c.mp4", "dog", "test", "g3", 30)]
    plan = plan_fixed_splits(from_csv, from_csv.class_names, "manifest")
    assert plan.split_names == ("train", "test") and plan.class_names == ("cat", "dog")
    assert [(v.video_id, v.split, v.label) for v in plan.videos] == [
        ("clips/a.mp4", "train", 1), ("clips/b.mp4", "test", 0), ("clips/c.mp4", "test", 1)]
    resplit = plan_splits(from_csv, from_csv.class_names, parse_splits("train=1.0"))
    assert "the manifest gives splits (test, train) that `split_by` group ignores" in resplit.warnings[0]


@pytest.mark.parametrize("name, text, fragment", [
    ("m.csv", "path,label\nclips/a.mp4,dog\nclips/zz.mp4,cat\n", "m.csv line 3: clips/zz.mp4 is not a video of the source"),
    ("m.csv", "path,label,colour\nclips/a.mp4,dog,red\n", "m.csv line 1: unknown column 'colour'"),
    ("m.csv", "path,split\nclips/a.mp4,train\n", "m.csv line 1: no 'label' column"),
    ("m.csv", "path,label\nclips/a.mp4,dog\nclips/b.mp4,\n", "m.csv line 3: empty label for clips/b.mp4"),
    ("m.csv", "path,label\nclips/a.mp4,dog\n./clips/a.mp4,cat\n", "m.csv line 3: clips/a.mp4 is already listed at m.csv line 2"),
    ("m.csv", "path,label\nclips/a.mp4,dog,extra\n", "m.csv line 2: more fields than the header's 2"),
    ("m.csv", "path,label,split\nclips/a.mp4,dog,train\nclips/b.mp4,cat,\n", "m.csv line 3: no split, while other rows"),
    ("m.csv", "path,label,split\nclips/a.mp4,dog,9lives\n", "m.csv line 2: split '9lives' must start with a letter"),
    ("m.jsonl", '{"path": "clips/a.mp4", "label": "dog", "colour": 1}\n', "m.jsonl line 1: unknown column 'colour'"),
    ("m.jsonl", '{"path": "clips/a.mp4", "label": ""}\n', "m.jsonl line 1: empty label"),
    ("m.jsonl", '{"path": "clips/a.mp4", "label": "dog"}\n[1]\n', "m.jsonl line 2: expected a JSON object"),
    ("m.txt", "clips/a.mp4 dog\n", "expected a .csv, .jsonl or .parquet file"),
    ("m.csv", "path,label\n", "lists no video"),
])
def test_each_kind_of_bad_row_is_one_error_naming_the_row(tmp_path, name, text, fragment):
    with pytest.raises(CatalogError) as info:
        catalog_from_manifest(read_manifest(write(tmp_path, name, text)), MEMBERS)
    assert fragment in str(info.value)


# --- through the CLI, on real videos ------------------------------------------------------------

def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def my_clips(tmp_path_factory) -> Path:
    """A team's own clips, named freely, two classes in folders."""
    root = tmp_path_factory.mktemp("own") / "clips"
    spec = VideoSpec(total_frames=12, width=32, height=24, fourcc="XVID")
    for index, cls in enumerate(("left", "right")):
        (root / cls).mkdir(parents=True)
        for n in range(4):
            write_video(root / cls / f"take{n}.avi", motion_frames(index * 3.1, spec, n), spec)
    return root


COMMON = ["--n-frames", "2", "--frame-step", "2", "--size", "16", "--direct_running_mode", "in_memory"]


def test_list_and_shard_a_folder_of_own_names(my_clips, tmp_path):
    listed = run("list", str(my_clips))
    assert listed.exit_code == 0, listed.output
    assert "classes from: <class>/ folders (no UCF101 names found)" in listed.stdout
    assert "video members in no <class>/ folder: 0" in listed.stdout
    result = run("shard", str(my_clips), str(tmp_path / "out"), "--splits", "train=3,test=1", *COMMON)
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "out" / "dataset_info.json").read_text())
    assert info["class_names"] == ["left", "right"]
    assert {split: info["splits"][split]["num_examples"] for split in info["splits"]} == {"train": 6, "test": 2}


def test_shard_with_a_manifest_and_its_splits(my_clips, tmp_path):
    rows = [("left/take0.avi", "go_left", "train"), ("left/take1.avi", "go_left", "train"),
            ("left/take2.avi", "go_left", "val"), ("right/take0.avi", "go_right", "train"),
            ("right/take1.avi", "go_right", "val")]
    manifest = write(tmp_path, "labels.csv", "path,label,split\n" + "".join(f"{p},{lab},{s}\n" for p, lab, s in rows))
    listed = run("list", str(my_clips), "--manifest", manifest, "--json")
    summary = json.loads(listed.stdout)
    assert summary["classes_from"] == "manifest" and summary["unmatched"]["count"] == 3
    result = run("shard", str(my_clips), str(tmp_path / "out"), "--manifest", manifest, "--split-by", "manifest",
                 *COMMON)
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "out" / "dataset_info.json").read_text())
    assert info["class_names"] == ["go_left", "go_right"] and info["split_policy"] == "manifest"
    assert {split: info["splits"][split]["num_examples"] for split in info["splits"]} == {"train": 3, "val": 2}


def test_a_bad_manifest_fails_before_the_source_is_opened(tmp_path):
    manifest = write(tmp_path, "labels.csv", "path,label\na.avi,\n")
    result = run("shard", str(tmp_path / "missing"), str(tmp_path / "out"), "--manifest", manifest)
    assert result.exit_code == 1 and result.stderr.strip() == "Error: labels.csv line 2: empty label for a.avi"


def test_a_mistyped_manifest_label_is_refused_until_the_classes_are_confirmed(my_clips, tmp_path):
    """Issue 19: one `slidng` row among `sliding` rows became a class of its own with no test videos."""
    rows = [("left/take0.avi", "sliding", "train"), ("left/take1.avi", "sliding", "train"),
            ("left/take2.avi", "sliding", "train"), ("left/take3.avi", "sliding", "test"),
            ("right/take0.avi", "sliding", "test"), ("right/take1.avi", "slidng", "train"),
            ("right/take2.avi", "pushing", "train"), ("right/take3.avi", "pushing", "test")]
    manifest = write(tmp_path, "labels.csv", "path,label,split\n" + "".join(f"{p},{lab},{s}\n" for p, lab, s in rows))
    args = [str(my_clips), str(tmp_path / "out"), "--manifest", manifest, "--split-by", "manifest", *COMMON]
    refused = run("shard", *args)
    assert refused.exit_code == 1 and not (tmp_path / "out").exists()
    assert refused.stderr.splitlines() == [
        "Error: Class 'slidng' (1 video, e.g. right/take1.avi) is close to 'sliding' (5 videos): did you mean "
        "sliding? Fix the labels, or confirm the classes are meant with --classes pushing,sliding,slidng"]
    confirmed = run("shard", *args, "--classes", "pushing,sliding,slidng")
    assert confirmed.exit_code == 0, confirmed.output
    assert ("Warning: split test has no videos of class slidng, while the other classes have videos there"
            in confirmed.stderr.splitlines())
