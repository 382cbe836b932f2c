"""UCF101 catalog: parse member names, select classes, and assign videos to splits.

A UCF101 video is named ``v_<Class>_g<GG>_c<CC>.<ext>``: ``GG`` is the *group* (one actor or
scene, filmed several times) and ``CC`` the clip within that group.  Clips of one group look
alike, so a split that puts one group's clips in both train and test measures memorisation, not
recognition.  The tutorial this project replaces does exactly that (``split_class_lists`` over
listing order); ``policy="order"`` reproduces it for comparison, ``policy="group"`` (the default)
keeps every group inside one split.

Everything here is pure and deterministic: the same listing, request and seed give the same plan
on any machine and in any process (group order comes from SHA-256, never from Python's salted
``hash()``).
"""
from __future__ import annotations

import difflib
import hashlib
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from vidshard.errors import CatalogError

if TYPE_CHECKING:  # vidshard.sources imports heavy optional deps (remotezip); the catalog needs only the shape.
    from vidshard.sources import Member

#: ``v_<Class>_g<GG>_c<CC>.<ext>``; a class name is letters and digits, as in all 101 UCF classes.
_UCF_NAME = re.compile(r"v_(?P<cls>[A-Za-z0-9]+)_g(?P<group>\d+)_c(?P<clip>\d+)\.[A-Za-z0-9]+")

#: Split names end up in shard file names (``{split}-00000-of-00004.tfrecord``).
#: What a split may be called (``train``, ``val_2``): the one rule, for --splits, folds and manifests.
SPLIT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

#: ``group`` and ``order`` cut splits from ``--splits``; the others take train and test as given.
POLICIES: tuple[str, ...] = ("group", "order", "folder", "manifest", "ucf101-fold1", "ucf101-fold2", "ucf101-fold3")
#: Folder names that say which split a video already belongs to (``train/<class>/v_...avi``).
SPLIT_FOLDERS: dict[str, str] = {"train": "train", "val": "val", "validation": "val", "test": "test"}
#: UCF101's three folds: the groups each tests on (its RecognitionTask README): 1-7, 8-14, 15-21.
FOLD_TEST_GROUPS: dict[int, range] = {1: range(1, 8), 2: range(8, 15), 3: range(15, 22)}
#: The order fixed splits are written in.
_FIXED_SPLIT_ORDER: tuple[str, ...] = ("train", "val", "test")

#: How many offending classes an error message names before summarising the rest.
_MAX_NAMED = 5
#: Two class names at least this similar (difflib's ratio, 2*matches/total letters: one letter missing,
#: added or changed in a name of 5-10 letters) are one name misspelt when one of them has far fewer videos.
LABEL_SIMILARITY = 0.8
#: "Far fewer": the rarer spelling has at most this share of the common one's videos.
LABEL_RARE_SHARE = 0.2


#: Where a catalog's classes come from: UCF101 file names, class folders, or a manifest.
NAMINGS: tuple[str, ...] = ("ucf101", "folder", "manifest")


@dataclass(frozen=True)
class VideoEntry:
    """One video of the listing: its member name, class and group (for leakage control).

    ``group`` is UCF101's group number, what ``--group-pattern`` extracted, or the video id
    itself (each video its own group); ``clip`` is UCF101's clip number, 0 otherwise.  ``split``
    is the split a manifest names, if any.
    """

    video_id: str
    class_name: str
    group: int | str
    clip: int
    size: int
    split: str | None = None


@dataclass(frozen=True)
class Catalog:
    """The videos of a source, in listing order, plus the video members that have no class.

    ``naming`` says where classes come from (one of :data:`NAMINGS`).
    """

    entries: tuple[VideoEntry, ...]
    unmatched: tuple[str, ...]
    naming: str = "ucf101"

    @property
    def class_names(self) -> list[str]:
        """Every class that has at least one video, sorted (the tutorial's label order)."""
        return sorted({entry.class_name for entry in self.entries})


def parse_ucf_name(member_name: str) -> tuple[str, int, int] | None:
    """Return ``(class, group, clip)`` from the basename of ``member_name``; None if not a UCF101 name.

    Only the basename counts, so ``UCF101/v_Archery_g01_c02.avi`` and
    ``train/Archery/v_Archery_g01_c02.avi`` parse alike; zip members written on Windows may use
    ``\\`` as separator.
    """
    basename = re.split(r"[/\\]", member_name)[-1]
    match = _UCF_NAME.fullmatch(basename)
    if match is None:
        return None
    return match["cls"], int(match["group"]), int(match["clip"])


def class_folder(member_name: str) -> str | None:
    """The class a folder layout gives a video: its innermost folder that is not a split folder.

    ``brush_hair/x.avi``, ``train/brush_hair/x.avi`` and ``hmdb51/brush_hair/x.avi`` all give
    ``brush_hair``; a video with no such folder has no class.
    """
    folders = [folder for folder in re.split(r"[/\\]", member_name)[:-1] if folder]
    return folders[-1] if folders and folders[-1].lower() not in SPLIT_FOLDERS else None


def compile_group_pattern(pattern: str | None) -> re.Pattern[str] | None:
    """``--group-pattern``: a regular expression searched in each file name; a clear error if it is not one."""
    if pattern is None:
        return None
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise CatalogError(f"`group_pattern` {pattern!r} is not a regular expression ({exc})") from None
    if compiled.groups == 0:
        raise CatalogError(f"`group_pattern` {pattern!r} has no (group): put the part of the file name that "
                           "names the group in parentheses, e.g. '^(.+)_c\\d+\\.'")
    return compiled


def group_of(pattern: re.Pattern[str] | None, video_id: str, default: int | str) -> int | str:
    """The group ``pattern`` finds in the file name (``(?P<group>...)`` or its first group), else ``default``."""
    if pattern is None:
        return default
    basename = re.split(r"[/\\]", video_id)[-1]
    match = pattern.search(basename)
    if match is None:
        raise CatalogError(f"`group_pattern` {pattern.pattern!r} does not match {video_id}")
    return match["group"] if "group" in pattern.groupindex else match.group(1)


def build_catalog(members: Sequence[Member], group_pattern: str | None = None) -> Catalog:
    """Classes and groups of every video member, from UCF101 names or, failing those, class folders.

    If any member has a UCF101 name (``v_<Class>_g<GG>_c<CC>``), classes and groups come from the
    names and the other members go to ``unmatched`` (reported, never guessed).  If none has, the
    source is taken as ``<class>/<file>`` folders (HMDB51, a user's own clips): the class is the
    innermost folder that is not a split folder, and members with no such folder go to
    ``unmatched``.  ``group_pattern`` (a regular expression with one group, searched in the file
    name) sets the group; without it a folder-named video is its own group.
    """
    pattern = compile_group_pattern(group_pattern)
    parsed = [(member, parse_ucf_name(member.name)) for member in members]
    naming = "ucf101" if any(names is not None for _, names in parsed) else "folder"
    entries: list[VideoEntry] = []
    unmatched: list[str] = []
    for member, names in parsed:
        if naming == "ucf101":
            if names is None:
                unmatched.append(member.name)
                continue
            class_name, group, clip = names
        else:
            class_name, group, clip = class_folder(member.name), member.name, 0
            if class_name is None:
                unmatched.append(member.name)
                continue
        entries.append(VideoEntry(member.name, class_name, group_of(pattern, member.name, group), clip, member.size))
    return Catalog(tuple(entries), tuple(unmatched), naming)


def named(items: Sequence[str]) -> str:
    """``a, b, c`` for a short list; the first few and a count for a long one, so errors stay one line."""
    shown = ", ".join(items[:_MAX_NAMED])
    return shown if len(items) <= _MAX_NAMED else f"{shown} and {len(items) - _MAX_NAMED} more"


def mistyped_classes(catalog: Catalog) -> list[str]:
    """One sentence per class name that looks like a mistyped label, with the name it probably means.

    A typo in a manifest row or a folder name makes a class of its own, which then has too few
    videos to learn or score.  Two kinds are caught: names that differ only in case (``Sliding``,
    ``sliding``), and a name very close to another (:data:`LABEL_SIMILARITY`) that has at most
    :data:`LABEL_RARE_SHARE` of its videos (one ``slidng`` among many ``sliding``).  UCF101's 101
    classes (100-167 videos each) trigger neither.
    """
    counts = Counter(entry.class_name for entry in catalog.entries)
    example = {}
    for entry in catalog.entries:
        example.setdefault(entry.class_name, entry.video_id)
    names = sorted(counts)

    def videos(name: str) -> str:
        return f"{counts[name]} video{'s' if counts[name] != 1 else ''}"

    found: list[str] = []
    by_case: dict[str, list[str]] = defaultdict(list)
    for name in names:
        by_case[name.casefold()].append(name)
    for spellings in by_case.values():
        if len(spellings) > 1:
            common = max(spellings, key=lambda name: (counts[name], name))
            found.append("Classes " + " and ".join(f"{name!r} ({videos(name)})" for name in spellings)
                         + f" differ only in case: did you mean {common}?")
    for name in names:  # compared ignoring case, so `Slidng` is as close to `sliding` as `slidng` is
        common = {other.casefold(): other for other in names if other.casefold() != name.casefold()
                  and counts[name] <= LABEL_RARE_SHARE * counts[other]}
        close = difflib.get_close_matches(name.casefold(), list(common), n=1, cutoff=LABEL_SIMILARITY)
        if close:
            meant = common[close[0]]
            found.append(f"Class {name!r} ({videos(name)}, e.g. {example[name]}) is close to {meant!r} "
                         f"({videos(meant)}): did you mean {meant}?")
    return found


def check_class_names(catalog: Catalog) -> None:
    """Refuse a catalog whose class names look mistyped (:func:`mistyped_classes`), naming how to confirm them."""
    found = mistyped_classes(catalog)
    if found:
        raise CatalogError(f"{' '.join(found)} Fix the labels, or confirm the classes are meant with "
                           f"`classes` {','.join(catalog.class_names)}")


def select_classes(
    catalog: Catalog, num_classes: int | None = None, classes: Sequence[str] | None = None
) -> list[str]:
    """Return the selected class names, sorted.

    ``num_classes=N`` takes the first N sorted names (the tutorial takes the first N of its
    listing, which for the UCF101 zip is the same ten classes); ``classes`` takes exactly those
    names; neither takes all.  Unknown names, duplicates and impossible counts raise
    :class:`CatalogError`, and so do class names that look mistyped (:func:`check_class_names`)
    unless ``classes`` names the classes to take: naming them is the user's confirmation.
    """
    available = catalog.class_names
    if not available:
        raise CatalogError(
            f"no video with a class in the listing: none is named like UCF101's (v_<Class>_g<GG>_c<CC>.<ext>) "
            f"or is in a <class>/ folder ({len(catalog.unmatched)} other members)"
        )
    if classes is None:
        check_class_names(catalog)
    if num_classes is not None and classes is not None:
        raise CatalogError("give either `num_classes` or `classes`, not both")
    if num_classes is not None:
        if num_classes < 1:
            raise CatalogError(f"`num_classes` must be at least 1, got {num_classes}")
        if num_classes > len(available):
            raise CatalogError(
                f"`num_classes` {num_classes} asks for more classes than the source has ({len(available)})"
            )
        return available[:num_classes]
    if classes is None:
        return available
    if not classes:
        raise CatalogError("`classes` names no class")
    seen: set[str] = set()
    for name in classes:
        if name in seen:
            raise CatalogError(f"class {name!r} is named twice in `classes`")
        seen.add(name)
    known = set(available)
    for name in classes:
        if name not in known:
            close = difflib.get_close_matches(name, available, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; classes are {named(available)}"
            raise CatalogError(f"unknown class {name!r}{hint}")
    return sorted(classes)


@dataclass(frozen=True)
class SplitRequest:
    """What ``--splits`` asked for: per class, a count of videos or a fraction of the class, per split."""

    parts: tuple[tuple[str, float], ...]
    fractions: bool

    @property
    def text(self) -> str:
        """The request in ``--splits`` syntax (canonical spacing), as recorded in dataset_info.json."""
        return ",".join(f"{name}={value!r}" for name, value in self.parts)

    @property
    def split_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.parts)


def parse_splits(text: str) -> SplitRequest:
    """Parse ``train=30,val=10,test=10`` (videos per class) or ``train=0.7,val=0.15,test=0.15`` (fractions).

    Whole numbers are counts; numbers with a decimal point or exponent are fractions of each
    class.  Counts and fractions cannot be mixed; fractions are in (0, 1] and sum to at most 1.
    """
    if not text or not text.strip():
        raise CatalogError("`splits` is empty; expected e.g. train=30,val=10,test=10")
    parts: list[tuple[str, float]] = []
    kinds: set[bool] = set()
    total = Fraction(0)
    for piece in text.split(","):
        name, sep, value_text = (s.strip() for s in piece.partition("="))
        if not sep:
            raise CatalogError(f"`splits` part {piece.strip()!r} is not NAME=NUMBER (e.g. train=30)")
        if not SPLIT_NAME.fullmatch(name):
            raise CatalogError(
                f"`splits` split name {name!r} must start with a letter and hold only letters, digits and _"
            )
        if name in dict(parts):
            raise CatalogError(f"`splits` names split {name!r} twice")
        value: float
        if re.fullmatch(r"[+-]?\d+", value_text):
            value, is_fraction = int(value_text), False
        else:
            try:
                value = float(value_text)
            except ValueError:
                raise CatalogError(f"`splits` {name}={value_text!r}: not a number") from None
            if not math.isfinite(value):
                raise CatalogError(f"`splits` {name}={value_text}: not a finite number")
            is_fraction = True
        if value <= 0:
            raise CatalogError(f"`splits` {name}={value_text}: must be positive")
        if is_fraction and value > 1:
            raise CatalogError(
                f"`splits` {name}={value_text}: a fraction must be at most 1 (write whole numbers for counts)"
            )
        kinds.add(is_fraction)
        if len(kinds) > 1:
            raise CatalogError("`splits` mixes counts and fractions; use all counts or all fractions")
        if is_fraction:
            total += _exact(value)
        parts.append((name, value))
    if total > 1:
        raise CatalogError(f"`splits` fractions sum to {float(total):g}, more than 1")
    return SplitRequest(tuple(parts), fractions=kinds == {True})


def _exact(value: float) -> Fraction:
    """The decimal the user wrote (``0.15`` is 3/20, not the nearest binary float), so sums are exact."""
    return Fraction(repr(value))


@dataclass(frozen=True)
class PlannedVideo:
    """One selected video with its label and split."""

    video_id: str
    class_name: str
    label: int
    split: str
    group: int
    clip: int
    size: int


@dataclass(frozen=True)
class SplitPlan:
    """Which video goes to which split with which label; what the job records in dataset_info.json.

    ``warnings`` are what the user should read before the job runs (the CLI prints them); they
    are not recorded, ``notes`` are.
    """

    class_names: tuple[str, ...]
    videos: tuple[PlannedVideo, ...]
    split_names: tuple[str, ...]
    policy: str
    seed: int
    request: str
    notes: tuple[str, ...]
    warnings: tuple[str, ...] = ()

    def counts(self) -> dict[str, dict[str, int]]:
        """``split -> class -> number of videos``, with zeros, in split and class order."""
        table = {split: {name: 0 for name in self.class_names} for split in self.split_names}
        for video in self.videos:
            table[video.split][video.class_name] += 1
        return table


def _classes_missing_from_splits(per_split: dict[str, list[PlannedVideo]], class_names: Sequence[str]) -> list[str]:
    """A warning for every split that has videos but none of some classes: those cannot be learned or scored there."""
    warnings = []
    for split, videos in per_split.items():
        present = {video.class_name for video in videos}
        missing = [name for name in class_names if name not in present]
        if videos and missing:
            warnings.append(f"split {split} has no videos of class {named(missing)}, while the other classes "
                            "have videos there")
    return warnings


def _targets(request: SplitRequest, available: int) -> list[int]:
    """Videos per split for a class of ``available`` videos.

    Fractions round at the cumulative boundaries (round half up), so each split is within one
    video of its share and fractions that sum to 1 use every video exactly once.
    """
    if not request.fractions:
        return [int(value) for _, value in request.parts]
    bounds, cumulative = [0], Fraction(0)
    for _, value in request.parts:
        cumulative += _exact(value)
        bounds.append(math.floor(cumulative * available + Fraction(1, 2)))
    return [high - low for low, high in zip(bounds, bounds[1:])]


def _group_rank(seed: int, class_name: str, group: int) -> bytes:
    """A stable pseudo-random sort key for one group: same on every machine and Python process."""
    return hashlib.sha256(f"{seed}\x00{class_name}\x00{group}".encode()).digest()


def _assign_order(videos: Sequence[VideoEntry], targets: Sequence[int]) -> list[int | None]:
    """The tutorial's split: in listing order the first ``targets[0]`` videos, the next ``targets[1]``, ..."""
    assignment: list[int | None] = [None] * len(videos)
    position = 0
    for split_index, target in enumerate(targets):
        for i in range(position, position + target):
            assignment[i] = split_index
        position += target
    return assignment


def _closest_subset(sizes: Sequence[int], target: int) -> list[int]:
    """Indices of a subset of ``sizes`` whose sum is closest to ``target`` (the lower on ties).

    Among subsets with that sum it takes the one that prefers earlier indices, so groups are
    still used in their hashed rank order.  A positive target never gets the empty subset while a
    group is left.  Sums past ``target + max(sizes)`` can never be closest, so they are dropped,
    which keeps the table at O(len(sizes) * target).
    """
    cap = target + max(sizes, default=0)
    reach: list[set[int]] = [set() for _ in sizes] + [{0}]  # reach[i]: sums possible with sizes[i:]
    for i in reversed(range(len(sizes))):
        reach[i] = reach[i + 1] | {total + sizes[i] for total in reach[i + 1] if total + sizes[i] <= cap}
    candidates = reach[0] - {0} if target > 0 and len(reach[0]) > 1 else reach[0]
    goal = min(candidates, key=lambda total: (abs(total - target), total))
    picked = []
    for i, size in enumerate(sizes):
        if size <= goal and goal - size in reach[i + 1]:
            picked.append(i)
            goal -= size
    return picked


def _assign_groups(
    videos: Sequence[VideoEntry], targets: Sequence[int], seed: int, class_name: str,
    fixed: Mapping[int | str, int | None] | None = None,
) -> list[int | None]:
    """Assign whole groups to splits, approaching ``targets``.

    Groups are ranked by a (seed, class, group) hash.  Each split in turn takes, from the groups
    still free, the subset whose size is closest to its target, preferring higher-ranked groups.
    Groups left over stay unused, unless the targets add up to the whole class: then the last
    split takes them, so every video is used exactly once.  ``fixed`` groups (shared with classes
    assigned before, see :func:`linked_groups`) keep the split (or None: no split) given there; their
    videos count towards that split's target.
    """
    sizes: dict[int | str, int] = defaultdict(int)
    for video in videos:
        sizes[video.group] += 1
    split_of_group = {group: split for group, split in (fixed or {}).items() if group in sizes}
    taken = [0] * len(targets)
    for group, split_index in split_of_group.items():
        if split_index is not None:
            taken[split_index] += sizes[group]
    free = sorted((group for group in sizes if group not in split_of_group),
                  key=lambda g: _group_rank(seed, class_name, g))
    use_all = sum(targets) == len(videos)
    for split_index, target in enumerate(targets):
        if use_all and split_index == len(targets) - 1:
            chosen = free
        else:
            chosen = [free[i] for i in _closest_subset([sizes[g] for g in free], max(0, target - taken[split_index]))]
        split_of_group.update((group, split_index) for group in chosen)
        free = [group for group in free if group not in split_of_group]
    return [split_of_group.get(video.group) for video in videos]


def linked_groups(videos: Iterable[VideoEntry]) -> set[str]:
    """Groups that hold videos of more than one class: one file's segments under two labels (ActivityNet,
    Charades), a manifest's ``group`` column, a ``group_pattern`` match.  Such a group is one group across
    classes: the first class (by name) to be assigned fixes its split for the others.  UCF101's group
    numbers (ints, from its file names) are numbered within each class, so they are never linked."""
    classes: dict[str, set[str]] = defaultdict(set)
    for video in videos:
        if isinstance(video.group, str):
            classes[video.group].add(video.class_name)
    return {group for group, names in classes.items() if len(names) > 1}


def plan_splits(
    catalog: Catalog,
    class_names: Sequence[str],
    request: SplitRequest,
    policy: str = "group",
    seed: int = 0,
) -> SplitPlan:
    """Assign the videos of ``class_names`` to the splits of ``request``.

    Labels index the sorted class names.  ``policy="order"`` is the tutorial's assignment;
    ``policy="group"`` never puts one group in two splits and records in ``notes`` how far each
    (split, class) is from its target.  Raises :class:`CatalogError` when a class has fewer
    videos than the request asks for, or a split would be empty.
    """
    if policy not in ("group", "order"):
        fixed = policy in POLICIES
        raise CatalogError(f"split policy {policy!r} takes its splits from the source, not from a request; "
                           "use plan_fixed_splits" if fixed else
                           f"unknown split policy {policy!r}; choose one of {', '.join(POLICIES)}")
    names = tuple(sorted(class_names))
    by_class: dict[str, list[VideoEntry]] = {name: [] for name in names}
    for entry in catalog.entries:
        if entry.class_name in by_class:
            by_class[entry.class_name].append(entry)
    missing = [name for name, videos in by_class.items() if not videos]
    if missing:
        raise CatalogError(f"no videos for class {named(missing)} in the listing")

    if not request.fractions:
        asked = sum(_targets(request, 0))
        short = [
            f"{name} has {len(videos)} videos in {len({video.group for video in videos})} groups"
            for name, videos in by_class.items()
            if len(videos) < asked
        ]
        if short:
            raise CatalogError(
                f"`splits` {request.text} asks for {asked} videos per class, but {named(short)}"
            )

    split_names = request.split_names
    planned: list[PlannedVideo] = []
    notes: list[str] = []
    per_split: dict[str, list[PlannedVideo]] = {split: [] for split in split_names}
    linked = linked_groups(video for videos in by_class.values() for video in videos)
    fixed: dict[int | str, int | None] = {}  # a linked group's split, from the first class that used it
    for label, name in enumerate(names):
        videos = by_class[name]
        targets = _targets(request, len(videos))
        if policy == "order":
            assignment = _assign_order(videos, targets)
        else:
            assignment = _assign_groups(videos, targets, seed, name, fixed)
            for video, split_index in zip(videos, assignment):
                if video.group in linked and split_index is not None:
                    fixed.setdefault(video.group, split_index)
        got = [0] * len(targets)
        for video, split_index in zip(videos, assignment):
            if split_index is None:
                continue
            got[split_index] += 1
            split = split_names[split_index]
            per_split[split].append(
                PlannedVideo(video.video_id, name, label, split, video.group, video.clip, video.size)
            )
        for split, target, count in zip(split_names, targets, got):
            if count != target:
                notes.append(
                    f"{split}/{name}: {count} videos, asked {target} ({count - target:+d}; whole groups only)"
                )
    empty = [split for split in split_names if not per_split[split]]
    if empty:
        raise CatalogError(
            f"split {named(empty)} would get no videos from `splits` {request.text}"
            " (too few videos or groups per class for this request)"
        )
    for split in split_names:
        planned.extend(per_split[split])
    warnings = (*_ignored_folders_warning(catalog, names, policy), *_classes_missing_from_splits(per_split, names))
    return SplitPlan(names, tuple(planned), split_names, policy, seed, request.text, tuple(notes), warnings)


def folder_split(video_id: str) -> str | None:
    """The split a folder of the path names (``train/Archery/v_...avi`` -> ``train``), innermost first."""
    for folder in reversed(re.split(r"[/\\]", video_id)[:-1]):
        split = SPLIT_FOLDERS.get(folder.lower())
        if split is not None:
            return split
    return None


def _ignored_folders_warning(catalog: Catalog, class_names: Sequence[str], policy: str) -> tuple[str, ...]:
    """A warning when the source already has split folders, or the manifest splits, and the policy re-splits them."""
    chosen = set(class_names)
    if catalog.naming == "manifest":
        named = sorted({entry.split for entry in catalog.entries if entry.class_name in chosen and entry.split})
        return (f"the manifest gives splits ({', '.join(named)}) that `split_by` {policy} ignores: videos are "
                "re-split; `split_by` manifest keeps them",) if named else ()
    found = sorted({split for entry in catalog.entries if entry.class_name in chosen
                    for split in [folder_split(entry.video_id)] if split})
    if not found:
        return ()
    return (f"the source has split folders ({', '.join(found)}) that `split_by` {policy} ignores: videos are "
            "re-split; `split_by` folder keeps them",)


def val_request(request: SplitRequest | None) -> SplitRequest | None:
    """Check a request that may only carve ``val`` out of fixed train splits (``val=0.1`` or ``val=5``)."""
    if request is not None and request.split_names != ("val",):
        raise CatalogError(f"`splits` {request.text}: train and test are fixed by the split policy here; "
                           "`splits` may only carve val out of train, e.g. val=0.1 or val=5")
    return request


def plan_fixed_splits(
    catalog: Catalog,
    class_names: Sequence[str],
    policy: str,
    val: SplitRequest | None = None,
    seed: int = 0,
) -> SplitPlan:
    """Splits the source already defines: ``folder`` (``train/``, ``val/``, ``test/`` folders) or a UCF101 fold.

    ``ucf101-foldN`` puts the groups UCF101's fold N tests on (1-7, 8-14, 15-21) in test and the
    rest in train, as its official lists do.  ``val`` (a request naming only ``val``) carves a
    validation split out of each class's train videos, by whole groups as ``--split-by group`` does.
    Labels index the sorted class names.
    """
    names = tuple(sorted(class_names))
    val = val_request(val)
    if policy in ("folder", "manifest"):
        if val is not None:
            raise CatalogError(f"`split_by` {policy} keeps the source's splits; it takes no `splits`")
        if policy == "folder":
            base_split = lambda entry: folder_split(entry.video_id)  # noqa: E731
        elif catalog.naming == "manifest" and any(entry.split for entry in catalog.entries):
            base_split = lambda entry: entry.split  # noqa: E731
        else:
            raise CatalogError("`split_by` manifest needs a `manifest` with a split column")
    elif policy.startswith("ucf101-fold") and policy in POLICIES:
        if catalog.naming != "ucf101":
            raise CatalogError(f"`split_by` {policy} needs UCF101 names (v_<Class>_g<GG>_c<CC>): its folds are "
                               "group numbers; this source's classes come from "
                               + ("folders" if catalog.naming == "folder" else "a manifest"))
        test_groups = FOLD_TEST_GROUPS[int(policy[-1])]
        base_split = lambda entry: "test" if entry.group in test_groups else "train"  # noqa: E731
    else:
        raise CatalogError(f"split policy {policy!r} is not one of folder, manifest, ucf101-fold1, ucf101-fold2, "
                           "ucf101-fold3")
    chosen = set(names)
    by_class: dict[str, list[tuple[VideoEntry, str]]] = {name: [] for name in names}
    outside: list[str] = []
    for entry in catalog.entries:
        if entry.class_name in chosen:
            split = base_split(entry)
            if split is None:
                outside.append(entry.video_id)
            else:
                by_class[entry.class_name].append((entry, split))
    if outside:
        where = "are in no train/val/test folder" if policy == "folder" else "have no split in the manifest"
        raise CatalogError(f"`split_by` {policy}: {len(outside)} videos {where}, e.g. {named(outside)}")
    request_text = policy + (f",{val.text}" if val is not None else "")
    warnings = () if policy in ("folder", "manifest") else _ignored_folders_warning(catalog, names, policy)
    if policy == "folder":
        expected = {"train": "no selected video is in a train/ folder"}
    elif policy == "manifest":
        expected = {"train": "no row of the manifest for the selected classes gives split train"}
    else:
        groups = f"groups {test_groups[0]}-{test_groups[-1]}, which UCF101's fold {policy[-1]} tests on"
        expected = {"train": f"every selected video is in {groups}", "test": f"no selected video is in {groups}"}
    return assign_fixed(by_class, names, val, seed, policy, request_text, (), warnings, expected)


def assign_fixed(
    by_class: dict[str, list[tuple[VideoEntry, str]]],
    class_names: Sequence[str],
    val: SplitRequest | None,
    seed: int,
    policy: str,
    request_text: str,
    notes: Sequence[str],
    warnings: Sequence[str] = (),
    expected: dict[str, str] | None = None,
) -> SplitPlan:
    """A plan from videos whose split is already known, with ``val`` carved from train by whole groups.

    ``class_names`` give the label order.  A class without videos, or a requested ``val`` that gets
    none, is a :class:`CatalogError`.  ``expected`` maps the splits the policy should give
    (``train``, ``test``) to why one would come out empty: such a split is left out of the plan with
    a warning that says so, and so is every class a split lacks while other classes have videos there.
    """
    missing = [name for name in class_names if not by_class.get(name)]
    if missing:
        raise CatalogError(f"no videos for class {named(missing)} in the listing")
    given = {split for videos in by_class.values() for _, split in videos}
    order = [*_FIXED_SPLIT_ORDER, *sorted(given - set(_FIXED_SPLIT_ORDER))]
    per_split: dict[str, list[PlannedVideo]] = {split: [] for split in order}
    notes = list(notes)
    for label, name in enumerate(class_names):
        videos = by_class[name]
        if val is not None:
            train = [entry for entry, split in videos if split == "train"]
            target = _targets(val, len(train))[0]
            carved = _assign_groups(train, [target], seed, name)
            to_val = {entry.video_id for entry, split_index in zip(train, carved) if split_index == 0}
            if len(to_val) != target:
                notes.append(f"val/{name}: {len(to_val)} videos, asked {target} ({len(to_val) - target:+d}; "
                             "whole groups only)")
            videos = [(entry, "val" if entry.video_id in to_val else split) for entry, split in videos]
        for entry, split in videos:
            per_split[split].append(PlannedVideo(entry.video_id, name, label, split, entry.group, entry.clip,
                                                 entry.size))
    if val is not None and not per_split["val"]:
        raise CatalogError(f"split val would get no videos: `splits` {val.text} of each class's train videos "
                           "is less than one whole group")
    wanted = [split for split in order if per_split[split]]
    warnings = [*warnings, *(f"split {split} gets no videos ({why}), so the output has no {split} split"
                             for split, why in (expected or {}).items() if not per_split.get(split)),
                *_classes_missing_from_splits(per_split, class_names)]
    planned = [video for split in wanted for video in per_split[split]]
    return SplitPlan(tuple(class_names), tuple(planned), tuple(wanted), policy, seed, request_text, tuple(notes),
                     tuple(warnings))
