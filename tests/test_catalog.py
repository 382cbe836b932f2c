"""UCF101 catalog: name parsing, class selection, --splits parsing, and both split policies."""
from __future__ import annotations

import collections
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from vidshard.catalog import (
    SplitRequest,
    build_catalog,
    parse_splits,
    parse_ucf_name,
    plan_splits,
    select_classes,
)
from vidshard.errors import CatalogError
from vidshard.sources import Member

ROOT = Path(__file__).resolve().parents[1]

#: The first eleven UCF101 classes.  The zip lists members sorted by full name, so
#: ``v_BasketballDunk_...`` comes before ``v_Basketball_...`` ("D" < "_"): listing order of classes
#: is not sorted order, as in the tutorial's output.
UCF_CLASSES = (
    "ApplyEyeMakeup", "ApplyLipstick", "Archery", "BabyCrawling", "BalanceBeam", "BandMarching",
    "BaseballPitch", "Basketball", "BasketballDunk", "BenchPress", "Biking",
)


def ucf_listing(classes=UCF_CLASSES, groups=25, seed=7) -> list[Member]:
    """A UCF101-shaped listing: 25 groups of 4-7 clips per class, sorted by member name like the real zip."""
    rng = random.Random(seed)
    names = [
        f"UCF101/v_{cls}_g{g:02d}_c{c:02d}.avi"
        for cls in classes
        for g in range(1, groups + 1)
        for c in range(1, rng.randint(4, 7) + 1)
    ]
    return [Member(name, 1000 + i) for i, name in enumerate(sorted(names))]


def small_listing(classes=("A", "B"), groups=4, clips=2) -> list[Member]:
    return [
        Member(f"UCF101/v_{cls}_g{g:02d}_c{c:02d}.avi", 100)
        for cls in classes
        for g in range(1, groups + 1)
        for c in range(1, clips + 1)
    ]


# --- the tutorial's functions, re-implemented from the seed text -----------------------------------

def get_class(fname):
    return fname.split("_")[-3]


def get_files_per_class(files):
    files_for_class = collections.defaultdict(list)
    for fname in files:
        files_for_class[get_class(fname)].append(fname)
    return files_for_class


def select_subset_of_classes(files_for_class, classes, files_per_class):
    return {name: files_for_class[name][:files_per_class] for name in classes}


def split_class_lists(files_for_class, count):
    split_files, remainder = [], {}
    for cls in files_for_class:
        split_files.extend(files_for_class[cls][:count])
        remainder[cls] = files_for_class[cls][count:]
    return split_files, remainder


def tutorial_split(files, num_classes, splits):
    """The tutorial's pipeline: first N classes of the listing, files_per_class = sum, then split in order."""
    files_for_class = get_files_per_class(files)
    classes = list(files_for_class.keys())
    subset = select_subset_of_classes(files_for_class, classes[:num_classes], sum(splits.values()))
    result = {}
    for split, count in splits.items():
        result[split], subset = split_class_lists(subset, count)
    class_names = sorted(subset)  # FrameGenerator: sorted class directory names -> label
    return result, {name: i for i, name in enumerate(class_names)}


# --- parsing ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("UCF101/v_ApplyEyeMakeup_g01_c01.avi", ("ApplyEyeMakeup", 1, 1)),
    ("train/Archery/v_Archery_g25_c07.avi", ("Archery", 25, 7)),
    ("v_YoYo_g08_c03.mp4", ("YoYo", 8, 3)),
    ("UCF101\\v_Skijet_g10_c02.AVI", ("Skijet", 10, 2)),
])
def test_parse_good_names(name, expected):
    assert parse_ucf_name(name) == expected


@pytest.mark.parametrize("name", [
    "UCF101/readme.txt", "v_Archery_g01.avi", "v_Arch_ery_g01_c01.avi", "x_Archery_g01_c01.avi",
    "v_Archery_gXX_c01.avi", "v_Archery_g01_c01", "v_Archery_g01_c01.avi.part/", "UCF101/v__g01_c01.avi",
])
def test_parse_bad_names(name):
    assert parse_ucf_name(name) is None


def test_build_catalog_keeps_order_and_reports_unmatched():
    members = [
        Member("UCF101/v_B_g02_c01.avi", 5),
        Member("UCF101/notes.avi", 6),
        Member("UCF101/v_A_g01_c01.avi", 7),
        Member("UCF101/v_A_g1_c1_extra.avi", 8),
    ]
    catalog = build_catalog(members)
    assert [(e.video_id, e.class_name, e.group, e.clip, e.size) for e in catalog.entries] == [
        ("UCF101/v_B_g02_c01.avi", "B", 2, 1, 5),
        ("UCF101/v_A_g01_c01.avi", "A", 1, 1, 7),
    ]
    assert catalog.unmatched == ("UCF101/notes.avi", "UCF101/v_A_g1_c1_extra.avi")
    assert catalog.class_names == ["A", "B"]


# --- class selection ----------------------------------------------------------------------------------

def test_select_classes():
    catalog = build_catalog(ucf_listing())
    assert select_classes(catalog) == sorted(UCF_CLASSES)
    first = select_classes(catalog, num_classes=10)
    assert first == sorted(UCF_CLASSES)[:10]
    assert "Biking" not in first and {"Basketball", "BasketballDunk"} <= set(first)
    assert select_classes(catalog, classes=["Biking", "Archery"]) == ["Archery", "Biking"]


@pytest.mark.parametrize("kwargs, message", [
    ({"classes": ["Archer"]}, "unknown class 'Archer'; did you mean Archery"),
    ({"classes": ["Zzz"]}, "unknown class 'Zzz'; classes are ApplyEyeMakeup"),
    ({"classes": ["Archery", "Archery"]}, "named twice"),
    ({"classes": []}, "names no class"),
    ({"num_classes": 0}, "at least 1"),
    ({"num_classes": 12}, "more classes than the source has (11)"),
    ({"num_classes": 2, "classes": ["Archery"]}, "not both"),
])
def test_select_classes_errors(kwargs, message):
    with pytest.raises(CatalogError) as info:
        select_classes(build_catalog(ucf_listing()), **kwargs)
    assert message in str(info.value)


def test_select_classes_without_ucf_names():
    with pytest.raises(CatalogError, match="no video with a class in the listing.*2 other members"):
        select_classes(build_catalog([Member("a.avi", 1), Member("b.avi", 1)]))


# --- --splits -----------------------------------------------------------------------------------------

def test_parse_splits_counts_and_fractions():
    counts = parse_splits("train=30,val=10,test=10")
    assert counts == SplitRequest((("train", 30), ("val", 10), ("test", 10)), fractions=False)
    assert all(isinstance(value, int) for _, value in counts.parts)
    fractions = parse_splits(" train = 0.7 , val=0.15,test=0.15")
    assert fractions == SplitRequest((("train", 0.7), ("val", 0.15), ("test", 0.15)), fractions=True)
    assert fractions.text == "train=0.7,val=0.15,test=0.15"
    assert parse_splits("all=1.0").fractions and not parse_splits("one=1").fractions


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("train", "not NAME=NUMBER"),
    ("train=30,", "not NAME=NUMBER"),
    ("=5", "split name ''"),
    ("1st=5", "split name '1st'"),
    ("tr-ain=5", "split name 'tr-ain'"),
    ("train=abc", "not a number"),
    ("train=", "not a number"),
    ("train=0", "must be positive"),
    ("train=-3", "must be positive"),
    ("train=0.0", "must be positive"),
    ("train=nan", "not a finite number"),
    ("train=inf", "not a finite number"),
    ("train=5,train=3", "twice"),
    ("train=5,val=0.5", "mixes counts and fractions"),
    ("train=0.5,val=5", "mixes counts and fractions"),
    ("train=1.5", "at most 1"),
    ("train=30.0", "at most 1"),
    ("train=0.7,val=0.2,test=0.2", "sum to 1.1, more than 1"),
])
def test_parse_splits_errors(text, message):
    with pytest.raises(CatalogError) as info:
        parse_splits(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_fractions_summing_to_one_exactly_are_accepted():
    # 0.7 + 0.2 + 0.1 is 0.9999999999999999 in binary floats; the decimal the user wrote is 1.
    assert parse_splits("a=0.7,b=0.2,c=0.1").fractions
    assert parse_splits("a=0.1,b=0.2,c=0.3,d=0.4").fractions


# --- split policies -----------------------------------------------------------------------------------

def test_order_policy_is_the_tutorial_assignment():
    members = ucf_listing()
    splits = {"train": 30, "val": 10, "test": 10}
    expected, labels = tutorial_split([m.name for m in members], 10, splits)
    catalog = build_catalog(members)
    chosen = select_classes(catalog, num_classes=10)
    plan = plan_splits(catalog, chosen, parse_splits("train=30,val=10,test=10"), policy="order")
    got = {split: [v.video_id for v in plan.videos if v.split == split] for split in splits}
    for split in splits:
        assert sorted(got[split]) == sorted(expected[split])
        assert len(got[split]) == 10 * splits[split]
    assert {v.class_name: v.label for v in plan.videos} == labels
    assert plan.notes == () and plan.policy == "order" and plan.request == "train=30,val=10,test=10"
    # ... and the tutorial leaks: groups cut at the split boundaries have clips in two splits.
    groups = _groups_by_split(plan)
    assert groups["train"] & groups["val"] and groups["val"] & groups["test"]


def _groups_by_split(plan):
    groups = collections.defaultdict(set)
    for video in plan.videos:
        groups[video.split].add((video.class_name, video.group))
    return groups


@pytest.mark.parametrize("text", ["train=30,val=10,test=10", "train=0.7,val=0.15,test=0.15", "a=12,b=5"])
def test_group_policy_never_puts_a_group_in_two_splits(text):
    catalog = build_catalog(ucf_listing())
    plan = plan_splits(catalog, catalog.class_names, parse_splits(text), policy="group", seed=3)
    groups = _groups_by_split(plan)
    names = list(groups)
    assert names == list(plan.split_names)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            assert not groups[first] & groups[second], (first, second)
    # Whole groups: every video of a used group is in the plan.
    per_group = collections.Counter((e.class_name, e.group) for e in catalog.entries)
    planned = collections.Counter((v.class_name, v.group) for v in plan.videos)
    assert all(planned[key] == per_group[key] for key in planned)


def test_group_policy_hits_counts_when_groups_allow():
    # Groups of 4-7 clips can make 30, 10 and 10 in every class: the plan must find those subsets.
    catalog = build_catalog(ucf_listing())
    plan = plan_splits(catalog, catalog.class_names, parse_splits("train=30,val=10,test=10"), seed=0)
    wanted = {"train": 30, "val": 10, "test": 10}
    assert plan.counts() == {split: {name: count for name in UCF_CLASSES} for split, count in wanted.items()}
    assert plan.notes == ()


def test_group_policy_notes_how_far_each_split_and_class_is():
    catalog = build_catalog(ucf_listing())
    request = parse_splits("train=0.7,val=0.15,test=0.15")
    plan = plan_splits(catalog, catalog.class_names, request, policy="group", seed=0)
    targets = plan_splits(catalog, catalog.class_names, request, policy="order").counts()  # exact targets
    counts = plan.counts()
    assert plan.notes
    noted = {}
    for note in plan.notes:
        where, rest = note.split(": ", 1)
        split, name = where.split("/")
        count, asked = int(rest.split()[0]), int(rest.split("asked ")[1].split()[0])
        assert (count, asked) == (counts[split][name], targets[split][name]) and count != asked
        assert f"({count - asked:+d}; whole groups only)" in note
        noted[split, name] = count - asked
    for split in counts:
        for name in counts[split]:
            assert ((split, name) in noted) == (counts[split][name] != targets[split][name])
    for name in catalog.class_names:  # fractions summing to 1: what one split lacks another has
        assert sum(noted.get((split, name), 0) for split in counts) == 0


def test_group_policy_is_exact_and_silent_when_groups_divide():
    catalog = build_catalog(small_listing(groups=4, clips=2))
    plan = plan_splits(catalog, ["A", "B"], parse_splits("train=4,val=2,test=2"), seed=5)
    assert plan.counts() == {s: {"A": n, "B": n} for s, n in (("train", 4), ("val", 2), ("test", 2))}
    assert plan.notes == ()


def test_group_policy_gives_each_requested_split_a_group_while_groups_last():
    # Groups of 3 cannot make 1 or 2 exactly; val and test still get one group rather than nothing.
    catalog = build_catalog(small_listing(classes=("A",), groups=4, clips=3))
    plan = plan_splits(catalog, ["A"], parse_splits("train=6,val=1,test=2"), seed=0)
    assert plan.counts() == {"train": {"A": 6}, "val": {"A": 3}, "test": {"A": 3}}
    assert plan.notes == ("val/A: 3 videos, asked 1 (+2; whole groups only)",
                          "test/A: 3 videos, asked 2 (+1; whole groups only)")


def test_fractions_summing_to_one_use_every_video_once():
    catalog = build_catalog(ucf_listing())
    for policy in ("group", "order"):
        plan = plan_splits(catalog, catalog.class_names, parse_splits("train=0.7,val=0.15,test=0.15"), policy)
        assert sorted(v.video_id for v in plan.videos) == sorted(e.video_id for e in catalog.entries)
    order = plan_splits(catalog, catalog.class_names, parse_splits("train=0.7,val=0.15,test=0.15"), "order")
    sizes = collections.Counter(e.class_name for e in catalog.entries)
    for split, share in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
        for name, count in order.counts()[split].items():
            assert abs(count - share * sizes[name]) <= 1


def test_labels_index_sorted_class_names_and_order_is_by_split_then_class():
    catalog = build_catalog(ucf_listing())
    chosen = ["Biking", "Archery", "BasketballDunk"]
    plan = plan_splits(catalog, chosen, parse_splits("train=5,test=5"))
    assert plan.class_names == ("Archery", "BasketballDunk", "Biking")
    assert all(plan.class_names[v.label] == v.class_name for v in plan.videos)
    keys = [(plan.split_names.index(v.split), v.label) for v in plan.videos]
    assert keys == sorted(keys)


def _plan_json(seed: int) -> str:
    catalog = build_catalog(ucf_listing())
    plan = plan_splits(catalog, catalog.class_names, parse_splits("train=30,val=10,test=10"), seed=seed)
    return json.dumps([(v.video_id, v.split) for v in plan.videos])


def test_group_policy_is_deterministic_across_processes_and_seed_sensitive():
    here = _plan_json(0)
    assert here == _plan_json(0)
    code = "import sys, tests.test_catalog as t; sys.stdout.write(t._plan_json(0))"
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
        )
        assert out.stdout == here
    assert _plan_json(1) != here


def test_group_assignment_does_not_depend_on_listing_order():
    members = ucf_listing()
    shuffled = list(members)
    random.Random(0).shuffle(shuffled)
    request = parse_splits("train=30,val=10,test=10")
    plans = [plan_splits(build_catalog(m), list(UCF_CLASSES), request, seed=4) for m in (members, shuffled)]
    assert {v.video_id: v.split for v in plans[0].videos} == {v.video_id: v.split for v in plans[1].videos}


def test_asking_for_more_videos_than_a_class_has():
    members = small_listing(classes=("A", "B"), groups=3, clips=2)
    catalog = build_catalog(members)
    for policy in ("group", "order"):
        with pytest.raises(CatalogError) as info:
            plan_splits(catalog, ["A", "B"], parse_splits("train=4,val=2,test=1"), policy)
        assert str(info.value) == (
            "`splits` train=4,val=2,test=1 asks for 7 videos per class, but A has 6 videos in 3 groups,"
            " B has 6 videos in 3 groups"
        )


def test_empty_split_is_an_error():
    catalog = build_catalog(small_listing(classes=("A",), groups=2, clips=2))
    with pytest.raises(CatalogError, match="split test would get no videos"):
        plan_splits(catalog, ["A"], parse_splits("train=2,val=1,test=1"))
    with pytest.raises(CatalogError, match="split val would get no videos"):
        plan_splits(catalog, ["A"], parse_splits("train=0.9,val=0.05"), policy="order")


def test_plan_rejects_unknown_policy_and_class():
    catalog = build_catalog(small_listing())
    with pytest.raises(CatalogError, match="unknown split policy 'random'"):
        plan_splits(catalog, ["A"], parse_splits("train=1"), policy="random")
    with pytest.raises(CatalogError, match="no videos for class Q"):
        plan_splits(catalog, ["A", "Q"], parse_splits("train=1"))



# --- issue 19: labels that look mistyped ----------------------------------------------------------

def folder_listing(counts: dict[str, int]) -> list[Member]:
    return [Member(f"{cls}/clip{n}.avi", 10) for cls, count in counts.items() for n in range(count)]


def test_class_names_differing_in_case_or_by_a_typo_of_a_far_bigger_class_are_refused_with_did_you_mean():
    catalog = build_catalog(folder_listing({"sliding": 10, "slidng": 1, "pushing": 10, "Pushing": 3}))
    with pytest.raises(CatalogError) as refused:
        select_classes(catalog)
    assert str(refused.value) == (
        "Classes 'Pushing' (3 videos) and 'pushing' (10 videos) differ only in case: did you mean pushing? "
        "Class 'slidng' (1 video, e.g. slidng/clip0.avi) is close to 'sliding' (10 videos): did you mean sliding? "
        "Fix the labels, or confirm the classes are meant with `classes` Pushing,pushing,sliding,slidng")
    with pytest.raises(CatalogError, match="did you mean sliding"):
        select_classes(catalog, num_classes=4)  # taking the first N confirms nothing
    with pytest.raises(CatalogError, match="Class 'Slidng' .* is close to 'sliding' .*did you mean sliding"):
        select_classes(build_catalog(folder_listing({"sliding": 10, "Slidng": 1})))  # case does not hide a typo
    # Naming the classes is the confirmation.
    assert select_classes(catalog, classes=["sliding", "slidng"]) == ["sliding", "slidng"]


@pytest.mark.parametrize("counts", [
    {"sliding": 10, "slidng": 3},          # close, but not far fewer videos: two real classes
    {"cat": 10, "car": 1},                 # far fewer, but short names one letter apart are not close enough
    {"MoveLeft": 10, "MoveRight": 1},      # different words
])
def test_names_that_are_not_typos_pass(counts):
    catalog = build_catalog(folder_listing(counts))
    assert select_classes(catalog) == sorted(counts)


def test_ucf101s_own_class_names_pass():
    assert select_classes(build_catalog(ucf_listing())) == sorted(UCF_CLASSES)
