"""Official UCF101 folds (by group number and from ucfTrainTestlist files) and folder splits."""
from __future__ import annotations

import collections
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from vidshard.catalog import FOLD_TEST_GROUPS, build_catalog, parse_splits, plan_fixed_splits
from vidshard.cli import main
from vidshard.errors import CatalogError
from vidshard.sources import Member
from vidshard.splitlists import parse_class_index, parse_video_list, plan_from_lists, read_split_lists
from vidshard.testing.synthetic import VideoSpec, make_ucf_zip

#: Class names as the archive spells them; classInd.txt spells the second one differently,
#: as UCF101's own classInd.txt says ``HandstandPushups`` for ``v_HandStandPushups_...`` files.
ARCHIVE_CLASSES = ("Archery", "HandStandPushups", "Biking")
LIST_CLASSES = ("Archery", "Biking", "HandstandPushups")  # classInd order: not the archive's


def listing(classes=ARCHIVE_CLASSES, groups=25, clips=2, prefix="UCF101/") -> list[Member]:
    return [Member(f"{prefix}v_{cls}_g{g:02d}_c{c:02d}.avi", 1000)
            for cls in classes for g in range(1, groups + 1) for c in range(1, clips + 1)]


def list_texts(fold: int, classes=LIST_CLASSES, archive_classes=ARCHIVE_CLASSES, groups=25, clips=2,
               drop: int = 0, add_missing: int = 0, list_spelling: bool = False) -> dict[str, str]:
    """ucfTrainTestlist files as UCF101 writes them (CRLF, 1-based labels, Class/v_... paths).

    ``drop`` leaves the last videos of the first class out of both lists (archive videos no
    list names); ``add_missing`` lists videos of group 99 that the archive lacks.  File names are
    spelled as in the archive (as UCF101's lists do), or with ``list_spelling`` as in classInd.txt.
    """
    spelled = {name.lower(): name for name in (classes if list_spelling else archive_classes)}
    train, test = [], []
    for index, cls in enumerate(classes, 1):
        videos = [(g, c) for g in range(1, groups + 1) for c in range(1, clips + 1)]
        if index == 1 and drop:
            videos = videos[:-drop]
        videos += [(99, c) for c in range(1, add_missing + 1)] if index == 1 else []
        for g, c in videos:
            path = f"{cls}/v_{spelled[cls.lower()]}_g{g:02d}_c{c:02d}.avi"
            (test if g in FOLD_TEST_GROUPS[fold] else train).append((path, index))
    return {
        "classInd.txt": "".join(f"{i} {cls}\r\n" for i, cls in enumerate(classes, 1)),
        f"trainlist0{fold}.txt": "".join(f"{path} {label}\r\n" for path, label in train),
        f"testlist0{fold}.txt": "".join(f"{path}\r\n" for path, _ in test),
    }


def write_lists(folder: Path, texts: dict[str, str]) -> Path:
    target = folder / "ucfTrainTestlist"
    target.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (target / name).write_text(text, newline="")
    return target


def lists_of(tmp_path: Path, fold: int, **kwargs):
    folder = write_lists(tmp_path, {**list_texts(1, **kwargs), **list_texts(2, **kwargs), **list_texts(3, **kwargs)})
    return read_split_lists(str(folder), fold)


def assignment(plan) -> dict[str, tuple[str, str]]:
    return {video.video_id.lower(): (video.split, video.class_name.lower()) for video in plan.videos}


@pytest.mark.parametrize("fold", [1, 2, 3])
def test_fold_by_group_number_equals_the_official_lists(tmp_path, fold):
    catalog = build_catalog(listing())
    by_groups = plan_fixed_splits(catalog, catalog.class_names, f"ucf101-fold{fold}")
    by_lists = plan_from_lists(catalog, lists_of(tmp_path, fold))
    assert assignment(by_groups) == assignment(by_lists)
    test_groups = {video.group for video in by_groups.videos if video.split == "test"}
    assert test_groups == set(FOLD_TEST_GROUPS[fold])
    assert by_groups.split_names == by_lists.split_names == ("train", "test")
    # 25 groups x 2 clips per class: 7 test groups -> 14 test videos per class, 36 train.
    assert {split: counts for split, counts in by_lists.counts().items()} == {
        "train": dict.fromkeys(LIST_CLASSES, 36), "test": dict.fromkeys(LIST_CLASSES, 14)}
    assert by_lists.policy == f"lists-fold{fold}" and by_groups.policy == f"ucf101-fold{fold}"


def test_lists_label_in_classind_order_and_match_names_ignoring_case(tmp_path):
    catalog = build_catalog(listing())
    plan = plan_from_lists(catalog, lists_of(tmp_path, 1, list_spelling=True))
    assert plan.class_names == LIST_CLASSES  # classInd order and spelling, not sorted archive names
    labels = {(video.class_name, video.label) for video in plan.videos}
    assert labels == {("Archery", 0), ("Biking", 1), ("HandstandPushups", 2)}
    assert "150 of 150 listed videos" in plan.notes[0] and "(50 differ in case only)" in plan.notes[0]
    assert plan.warnings == ()


def test_missing_and_unlisted_videos_are_counted_with_examples(tmp_path):
    catalog = build_catalog(listing())
    plan = plan_from_lists(catalog, lists_of(tmp_path, 1, drop=3, add_missing=2))
    absent, unlisted = plan.warnings
    assert absent.startswith("2 videos in trainlist01.txt/testlist01.txt are not in the archive")
    assert "Archery/v_Archery_g99_c01.avi" in absent
    assert unlisted.startswith("3 archive videos of the selected classes are in neither list")
    assert "UCF101/v_Archery_g25_c02.avi" in unlisted
    assert len(plan.videos) == 150 - 3 and set(plan.warnings) <= set(plan.notes)


def test_val_is_carved_from_train_by_whole_groups(tmp_path):
    catalog = build_catalog(listing())
    plain = plan_from_lists(catalog, lists_of(tmp_path, 1))
    plan = plan_from_lists(catalog, lists_of(tmp_path, 1), val=parse_splits("val=0.2"), seed=3)
    assert plan.split_names == ("train", "val", "test")
    groups = collections.defaultdict(set)
    for video in plan.videos:
        groups[(video.class_name, video.group)].add(video.split)
    assert all(len(splits) == 1 for splits in groups.values())  # no group in two splits
    was = {video.video_id: video.split for video in plain.videos}
    assert {video.video_id for video in plan.videos if video.split == "test"} == \
        {video_id for video_id, split in was.items() if split == "test"}
    assert all(was[video.video_id] == "train" for video in plan.videos if video.split == "val")
    # 0.2 of 36 is 7 videos; whole groups of 2 give 6 (the lower on a tie), and a note says so.
    assert plan.counts()["val"] == dict.fromkeys(LIST_CLASSES, 6)
    assert "val/Archery: 6 videos, asked 7 (-1; whole groups only)" in plan.notes


def test_lists_are_read_from_a_zip_and_over_http(tmp_path):
    from vidshard.testing.rangeserver import Faults, RangeServer

    texts = list_texts(2)
    archive = tmp_path / "UCF101TrainTestSplits-RecognitionTask.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, text in texts.items():
            zf.writestr(f"ucfTrainTestlist/{name}", text)
    from_zip = read_split_lists(str(archive), 2)
    with RangeServer(tmp_path, Faults(fail_first=3)) as server:  # three 503s: retried, as for the videos
        from_http = read_split_lists(server.url(archive.name), 2)
        assert [record.status for record in server.log][:3] == [503] * 3
    from_folder = read_split_lists(str(write_lists(tmp_path / "f", texts)), 2)
    assert from_zip.class_names == from_http.class_names == from_folder.class_names == LIST_CLASSES
    assert from_zip.train == from_http.train == from_folder.train
    assert from_zip.test == from_http.test and len(from_zip.test) == 3 * 14


@pytest.mark.parametrize("file, text, fragment", [
    ("classInd.txt", "1 A\n3 B\n", "indices are not 1..2"),
    ("classInd.txt", "1 A\n2 a\n", "names a class twice"),
    ("classInd.txt", "one A\n", "classInd.txt line 1: expected 'INDEX ClassName'"),
    ("trainlist01.txt", "A/v_A_g01_c01.avi 3\n", "trainlist01.txt line 1: label 3 is not in classInd.txt"),
    ("trainlist01.txt", "B/v_A_g01_c01.avi 1\n", "contradicts the folder"),
    ("trainlist01.txt", "A/v_A_g01_c01.avi 1\nA/V_A_G01_C01.AVI 1\n", "already listed at line 1"),
    ("testlist01.txt", "C/v_C_g01_c01.avi\n", "names no class of classInd.txt"),
])
def test_bad_list_lines_are_one_clear_error(file, text, fragment):
    with pytest.raises(CatalogError, match=fragment.replace(".", r"\.").replace("(", r"\(")):
        if file == "classInd.txt":
            parse_class_index(text)
        else:
            parse_video_list(text, file, ("A", "B"), labelled=file.startswith("train"))


def test_lists_and_archive_that_contradict_each_other_are_refused(tmp_path):
    catalog = build_catalog(listing(classes=("Archery", "Biking", "Archery2")))
    with pytest.raises(CatalogError, match="no video of the split lists"):
        plan_from_lists(build_catalog(listing(classes=("Diving",))), lists_of(tmp_path, 1))
    with pytest.raises(CatalogError, match="only 2 of the 3 classes selected from classInd.txt"):
        plan_from_lists(catalog, lists_of(tmp_path, 1))
    twice = build_catalog(listing() + listing(prefix="copy/"))
    with pytest.raises(CatalogError, match="two videos named 'v_archery_g01_c01.avi'"):
        plan_from_lists(twice, lists_of(tmp_path, 1))


def test_folder_policy_keeps_the_sources_splits_and_other_policies_warn():
    members = [Member(f"{split}/{cls}/v_{cls}_g{g:02d}_c01.avi", 10)
               for split, groups in (("train", range(1, 5)), ("val", [5]), ("test", [6, 7]))
               for cls in ("Archery", "Biking") for g in groups]
    catalog = build_catalog(members)
    plan = plan_fixed_splits(catalog, catalog.class_names, "folder")
    assert plan.split_names == ("train", "val", "test") and plan.warnings == ()
    assert all(video.video_id.startswith(video.split + "/") for video in plan.videos)
    from vidshard.catalog import plan_splits

    regrouped = plan_splits(catalog, catalog.class_names, parse_splits("train=0.5,test=0.5"))
    assert regrouped.warnings and "split folders (test, train, val)" in regrouped.warnings[0]
    fold = plan_fixed_splits(catalog, catalog.class_names, "ucf101-fold1")
    assert fold.warnings and "`split_by` ucf101-fold1 ignores" in fold.warnings[0]
    with pytest.raises(CatalogError, match="1 videos are in no train/val/test folder"):
        plan_fixed_splits(build_catalog(members + [Member("other/v_Biking_g09_c01.avi", 1)]),
                          ["Archery", "Biking"], "folder")
    with pytest.raises(CatalogError, match="only carve val out of train"):
        plan_fixed_splits(catalog, catalog.class_names, "ucf101-fold1", parse_splits("train=3,test=1"))


# --- through the CLI, on real videos ------------------------------------------------------------

def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("args, fragment", [
    (["--fold", "2"], "--fold chooses a fold of --split-lists; give --split-lists PATH (or --split-by ucf101-fold2)"),
    (["--fold", "4", "--split-lists", "x"], "Invalid value for '--fold': 4 is not in the range 1<=x<=3."),
    (["--split-lists", "x", "--split-by", "group"], "--split-lists fixes the splits; it cannot be combined with --split-by group"),
])
def test_split_option_conflicts_fail_before_any_work(tmp_path, args, fragment):
    result = run("shard", str(tmp_path / "missing.zip"), str(tmp_path / "out"), *args)
    assert result.exit_code == 2 and result.stderr.splitlines()[-1] == f"Error: {fragment}", result.output


def test_shard_with_official_lists_end_to_end(tmp_path):
    spec = VideoSpec(total_frames=12, width=32, height=24, fourcc="XVID")
    source = tmp_path / "ucf.zip"
    make_ucf_zip(source, classes=("Archery", "HandStandPushups"), groups=9, clips_per_group=1, spec=spec)
    texts = list_texts(1, classes=("HandstandPushups", "Archery"), groups=9, clips=1, add_missing=1)
    lists = write_lists(tmp_path / "lists", texts)
    out = tmp_path / "out"
    result = run("shard", str(source), str(out), "--split-lists", str(lists), "--splits", "val=1",
                 "--n-frames", "2", "--frame-step", "2", "--size", "16", "--direct_num_workers", "1",
                 "--direct_running_mode", "in_memory")
    assert result.exit_code == 0, result.output
    assert "Warning: 1 videos in trainlist01.txt/testlist01.txt are not in the archive" in result.stderr
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["class_names"] == ["HandstandPushups", "Archery"]  # classInd order, its spelling
    assert info["split_policy"] == "lists-fold1"
    assert {split: info["splits"][split]["num_examples"] for split in info["splits"]} == \
        {"train": 2 * 1, "val": 2 * 1, "test": 2 * 7}  # test groups 1-7; val one of groups 8, 9


def test_shard_keeps_a_folder_split_and_warns_when_told_to_resplit_it(tmp_path):
    from vidshard.testing.synthetic import motion_frames, write_video

    spec = VideoSpec(total_frames=12, width=32, height=24, fourcc="XVID")
    source = tmp_path / "UCF101_subset"  # the tutorial's layout: <split>/<class>/v_...avi
    for split, groups in (("train", (1, 2, 3)), ("val", (4,)), ("test", (5, 6))):
        for index, cls in enumerate(("Archery", "Biking")):
            for group in groups:
                folder = source / split / cls
                folder.mkdir(parents=True, exist_ok=True)
                write_video(folder / f"v_{cls}_g{group:02d}_c01.avi", motion_frames(index * 1.5, spec, group), spec)
    common = ["--n-frames", "2", "--frame-step", "2", "--size", "16", "--direct_running_mode", "in_memory"]
    kept = run("shard", str(source), str(tmp_path / "kept"), "--split-by", "folder", *common)
    assert kept.exit_code == 0 and "Warning" not in kept.stderr, kept.output
    info = json.loads((tmp_path / "kept" / "dataset_info.json").read_text())
    assert {split: info["splits"][split]["num_examples"] for split in info["splits"]} == \
        {"train": 6, "val": 2, "test": 4}
    assert info["split_policy"] == "folder"
    resplit = run("shard", str(source), str(tmp_path / "resplit"), "--splits", "train=0.5,test=0.5", *common)
    assert resplit.exit_code == 0, resplit.output
    assert "Warning: the source has split folders (test, train, val) that --split-by group ignores" in resplit.stderr


# --- issue 19: lists on a partial source, and splits that come out empty -----------------------

def test_a_source_holding_part_of_the_lists_classes_says_how_many_and_how_to_take_them(tmp_path):
    partial = build_catalog(listing(classes=("Archery", "Biking")))
    with pytest.raises(CatalogError) as refused:
        plan_from_lists(partial, lists_of(tmp_path, 1))
    assert str(refused.value) == ("the source holds videos of only 2 of the 3 classes selected from classInd.txt "
                                  "(none of HandstandPushups); to take only those: `classes` Archery,Biking")
    plan = plan_from_lists(partial, lists_of(tmp_path, 1), classes=["Archery", "Biking"])
    assert plan.class_names == ("Archery", "Biking") and plan.warnings == ()


def test_a_fold_that_puts_every_present_video_in_test_says_train_is_empty(tmp_path):
    only_test_groups = build_catalog(listing(groups=7))  # fold 1 tests on groups 1-7
    plan = plan_from_lists(only_test_groups, lists_of(tmp_path, 1))
    assert plan.split_names == ("test",)
    assert plan.warnings[-1] == ("split train gets no videos (none of the 42 matched videos is in trainlist01.txt), "
                                 "so the output has no train split")
    fold = plan_fixed_splits(only_test_groups, only_test_groups.class_names, "ucf101-fold1")
    assert fold.split_names == ("test",)
    assert fold.warnings == ("split train gets no videos (every selected video is in groups 1-7, which UCF101's "
                             "fold 1 tests on), so the output has no train split",)


def test_a_class_that_a_split_lacks_is_named_in_a_warning(tmp_path):
    members = [Member(f"{split}/{cls}/v_{cls}_g{g:02d}_c01.avi", 10)
               for cls in ("Archery", "Biking") for split, groups in (("train", range(1, 5)), ("test", [6]))
               for g in groups if not (cls == "Biking" and split == "test")]
    catalog = build_catalog(members)
    plan = plan_fixed_splits(catalog, catalog.class_names, "folder")
    assert plan.split_names == ("train", "test")
    assert plan.warnings == ("split test has no videos of class Biking, while the other classes have videos there",)
    lists = plan_from_lists(build_catalog(listing(classes=("Archery", "Biking")) + [
        Member(f"UCF101/v_HandStandPushups_g{g:02d}_c01.avi", 10) for g in range(8, 12)]), lists_of(tmp_path, 1))
    assert "split test has no videos of class HandstandPushups" in lists.warnings[-1]


def test_shard_on_a_partial_source_names_the_classes_to_take(tmp_path):
    spec = VideoSpec(total_frames=12, width=32, height=24, fourcc="XVID")
    source = tmp_path / "ucf.zip"
    make_ucf_zip(source, classes=("Archery", "Biking"), groups=2, clips_per_group=1, spec=spec)
    lists = write_lists(tmp_path, list_texts(1, groups=8, clips=1))
    result = run("shard", str(source), str(tmp_path / "out"), "--split-lists", str(lists))
    assert result.exit_code == 1 and not (tmp_path / "out").exists()
    assert result.stderr.splitlines() == [
        "Error: the source holds videos of only 2 of the 3 classes selected from classInd.txt (none of "
        "HandstandPushups); to take only those: --classes Archery,Biking"], result.stderr
