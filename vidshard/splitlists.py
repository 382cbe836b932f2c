"""UCF101's official RecognitionTask split lists (``ucfTrainTestlist``): read, parse, match to a listing.

The lists are three text files per fold, found anywhere in a folder, a zip or a zip served over
HTTP (the published ``UCF101TrainTestSplits-RecognitionTask.zip``)::

    classInd.txt      "1 ApplyEyeMakeup" ...          label order (1-based)
    trainlist0N.txt   "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1" ...
    testlist0N.txt    "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi" ...   (no label)

Names in the lists and in archives are not always spelled alike: UCF101's own ``classInd.txt``
says ``HandstandPushups`` where its files say ``v_HandStandPushups_...``, lists use ``/`` where
archives made on Windows use ``\\``, and archives put the videos under ``UCF101/`` or under a
class folder.  Videos are therefore matched by :func:`video_key`: the file name without its
folders, compared case-insensitively.  Nothing else is guessed.
"""
from __future__ import annotations

import io
import os
import re
import urllib.parse
import zipfile
from dataclasses import dataclass
from typing import Callable, Sequence

from vidshard.catalog import (
    FOLD_TEST_GROUPS, Catalog, SplitPlan, SplitRequest, VideoEntry, assign_fixed, named, val_request,
)
from vidshard.errors import CatalogError
from vidshard.sources.base import SourceOptions
from vidshard.sources.http import CheckedFetcher, make_session

#: The three UCF101 folds; each tests on 7 of the 25 groups of every class.
FOLDS: tuple[int, ...] = tuple(FOLD_TEST_GROUPS)

CLASS_INDEX_FILE = "classInd.txt"


def list_files(fold: int) -> tuple[str, str]:
    """``(trainlist0N.txt, testlist0N.txt)`` of a fold."""
    return f"trainlist0{fold}.txt", f"testlist0{fold}.txt"


def video_key(name: str) -> str:
    """How a video is matched between lists and archive: its file name, without folders, lower case."""
    return re.split(r"[/\\]", name.strip())[-1].lower()


@dataclass(frozen=True)
class ListedVideo:
    """One line of a train or test list: the path as written and its 0-based class index."""

    path: str
    label: int


@dataclass(frozen=True)
class SplitLists:
    """One fold of the official lists: class names in ``classInd.txt`` order, train and test entries."""

    class_names: tuple[str, ...]
    train: tuple[ListedVideo, ...]
    test: tuple[ListedVideo, ...]
    fold: int
    location: str


def _lines(text: str) -> list[tuple[int, str]]:
    """Non-empty lines with their 1-based numbers (the lists end lines with CRLF)."""
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]


def parse_class_index(text: str) -> tuple[str, ...]:
    """``classInd.txt`` -> class names, index 0 for the line that says ``1``.

    The indices must be 1..N, each once; anything else is a :class:`CatalogError` naming the line.
    """
    names: dict[int, str] = {}
    for number, line in _lines(text):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise CatalogError(f"{CLASS_INDEX_FILE} line {number}: expected 'INDEX ClassName', got {line!r}")
        index = int(parts[0])
        if index in names:
            raise CatalogError(f"{CLASS_INDEX_FILE} line {number}: index {index} appears twice")
        names[index] = parts[1]
    if not names:
        raise CatalogError(f"{CLASS_INDEX_FILE} lists no class")
    if sorted(names) != list(range(1, len(names) + 1)):
        raise CatalogError(f"{CLASS_INDEX_FILE}: indices are not 1..{len(names)}")
    lowered = [name.lower() for name in names.values()]
    if len(set(lowered)) != len(lowered):
        raise CatalogError(f"{CLASS_INDEX_FILE} names a class twice (ignoring case)")
    return tuple(names[index] for index in sorted(names))


def _class_of_path(path: str, by_lower: dict[str, int]) -> int | None:
    """The class index a test-list path names through its folder (``Class/v_...avi``), if any."""
    parts = re.split(r"[/\\]", path)
    return by_lower.get(parts[-2].lower()) if len(parts) >= 2 else None


def parse_video_list(text: str, file_name: str, class_names: tuple[str, ...], labelled: bool) -> tuple[ListedVideo, ...]:
    """A train list (``path label``, 1-based) or test list (``path``) -> entries with 0-based labels.

    A test list has no labels: the class is the path's folder, matched to ``classInd.txt``
    ignoring case.  A label out of range, a folder that names no class, a train label that
    contradicts the path's folder, or a video listed twice is a :class:`CatalogError` naming the line.
    """
    by_lower = {name.lower(): index for index, name in enumerate(class_names)}
    entries: list[ListedVideo] = []
    seen: dict[str, int] = {}
    for number, line in _lines(text):
        parts = line.split()
        where = f"{file_name} line {number}"
        folder_label = _class_of_path(parts[0], by_lower)
        if labelled:
            if len(parts) != 2 or not parts[1].isdigit():
                raise CatalogError(f"{where}: expected 'Class/video.avi LABEL', got {line!r}")
            label = int(parts[1]) - 1
            if not 0 <= label < len(class_names):
                raise CatalogError(f"{where}: label {parts[1]} is not in {CLASS_INDEX_FILE} (1..{len(class_names)})")
            if folder_label is not None and folder_label != label:
                raise CatalogError(f"{where}: label {parts[1]} ({class_names[label]}) contradicts the folder of "
                                   f"{parts[0]} ({class_names[folder_label]})")
        else:
            if len(parts) != 1:
                raise CatalogError(f"{where}: expected 'Class/video.avi', got {line!r}")
            if folder_label is None:
                raise CatalogError(f"{where}: the folder of {parts[0]!r} names no class of {CLASS_INDEX_FILE}")
            label = folder_label
        key = video_key(parts[0])
        if key in seen:
            raise CatalogError(f"{where}: {parts[0]} is already listed at line {seen[key]}")
        seen[key] = number
        entries.append(ListedVideo(parts[0], label))
    if not entries:
        raise CatalogError(f"{file_name} lists no video")
    return tuple(entries)


def _reader_for(location: str, timeout: float) -> tuple[Callable[[str], bytes | None], Callable[[], None]]:
    """``(read(basename) -> bytes or None, close)`` for a folder, a local zip or an http(s) zip.

    An http(s) zip is read by range requests through the sources' session and fetcher
    (:mod:`vidshard.sources.http`), so the lists get the videos' retries of 5xx, timeouts and
    dropped connections, and the same 206-only checks.
    """
    scheme = urllib.parse.urlsplit(location).scheme.lower()
    if scheme in ("http", "https"):
        import remotezip  # only for remote lists; a range request per file, as for the videos

        session = make_session(SourceOptions(timeout=timeout))
        try:
            archive: zipfile.ZipFile = remotezip.RemoteZip(location, session=session, fetcher=CheckedFetcher,
                                                           timeout=timeout)
        except Exception as exc:  # remotezip raises requests' and its own errors alike
            session.close()
            raise CatalogError(f"cannot read the split lists at {location}: {exc}") from None
    elif scheme:
        raise CatalogError(f"split lists {location!r}: give a folder, a zip file or an http(s) URL of a zip")
    elif os.path.isdir(location):
        found: dict[str, str] = {}
        for dirpath, _dirs, files in os.walk(location):
            for name in files:
                found.setdefault(name, os.path.join(dirpath, name))

        def read_file(basename: str) -> bytes | None:
            if basename not in found:
                return None
            with open(found[basename], "rb") as fh:
                return fh.read()
        return read_file, lambda: None
    elif os.path.isfile(location):
        try:
            archive = zipfile.ZipFile(location)
        except (zipfile.BadZipFile, OSError) as exc:
            raise CatalogError(f"split lists {location}: not a folder or a readable zip ({exc})") from None
    else:
        raise CatalogError(f"split lists not found: {location}")

    members = {re.split(r"[/\\]", info.filename)[-1]: info for info in archive.infolist() if not info.is_dir()}

    def read_member(basename: str) -> bytes | None:
        info = members.get(basename)
        return None if info is None else archive.read(info)

    def close() -> None:
        archive.close()
        if scheme in ("http", "https"):
            session.close()
    return read_member, close


def read_split_lists(location: str, fold: int, timeout: float = 30.0) -> SplitLists:
    """Read ``classInd.txt`` and the fold's train and test lists from a folder, zip or http(s) zip."""
    if fold not in FOLDS:
        raise CatalogError(f"fold must be one of {', '.join(map(str, FOLDS))}, got {fold}")
    read, close = _reader_for(location, timeout)
    try:
        texts: dict[str, str] = {}
        for name in (CLASS_INDEX_FILE, *list_files(fold)):
            data = read(name)
            if data is None:
                raise CatalogError(f"split lists {location} have no {name}")
            texts[name] = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig").read()
    finally:
        close()
    class_names = parse_class_index(texts[CLASS_INDEX_FILE])
    train_file, test_file = list_files(fold)
    train = parse_video_list(texts[train_file], train_file, class_names, labelled=True)
    test = parse_video_list(texts[test_file], test_file, class_names, labelled=False)
    both = {video_key(entry.path) for entry in train} & {video_key(entry.path) for entry in test}
    if both:
        raise CatalogError(f"{len(both)} videos are in both {train_file} and {test_file}, e.g. {sorted(both)[0]}")
    return SplitLists(class_names, train, test, fold, location)


#: How many example names a report gives.
_EXAMPLES = 3


def _select(lists: SplitLists, num_classes: int | None, classes: Sequence[str] | None) -> list[int]:
    """Indices (into ``classInd.txt``) of the selected classes, in its order."""
    if num_classes is not None and classes is not None:
        raise CatalogError("give either `num_classes` or `classes`, not both")
    if num_classes is not None:
        if not 1 <= num_classes <= len(lists.class_names):
            raise CatalogError(f"`num_classes` {num_classes}: {CLASS_INDEX_FILE} has {len(lists.class_names)} classes")
        return list(range(num_classes))
    if classes is None:
        return list(range(len(lists.class_names)))
    by_lower = {name.lower(): index for index, name in enumerate(lists.class_names)}
    unknown = [name for name in classes if name.lower() not in by_lower]
    if unknown:
        raise CatalogError(f"unknown class {unknown[0]!r}: not in {CLASS_INDEX_FILE} of {lists.location}")
    return sorted({by_lower[name.lower()] for name in classes})


def plan_from_lists(
    catalog: Catalog,
    lists: SplitLists,
    num_classes: int | None = None,
    classes: Sequence[str] | None = None,
    val: SplitRequest | None = None,
    seed: int = 0,
) -> SplitPlan:
    """Train and test exactly as the lists say, labels in ``classInd.txt`` order; ``val`` carved from train.

    Videos are matched by :func:`video_key`.  List entries the archive lacks, and archive videos
    of the selected classes that neither list names, are reported (counts and examples) in the
    plan's warnings and notes and left out.  The job is refused when a name matches two archive
    members, when the archive's name for a video says another class than the lists, or when a
    selected class ends with no video in a split.
    """
    val = val_request(val)
    selected = _select(lists, num_classes, classes)
    label_of = {index: position for position, index in enumerate(selected)}
    names = tuple(lists.class_names[index] for index in selected)
    wanted: dict[str, tuple[str, ListedVideo]] = {}
    for split, entries in (("train", lists.train), ("test", lists.test)):
        for entry in entries:
            if entry.label in label_of:
                wanted[video_key(entry.path)] = (split, entry)

    archive: dict[str, VideoEntry] = {}
    for entry in catalog.entries:
        key = video_key(entry.video_id)
        if key in archive:
            raise CatalogError(f"the archive holds two videos named {key!r} ({archive[key].video_id}, "
                               f"{entry.video_id}); the lists cannot tell them apart")
        archive[key] = entry
    selected_lower = {name.lower() for name in names}
    by_class: dict[str, list[tuple[VideoEntry, str]]] = {name: [] for name in names}
    case_only = 0
    for key, (split, listed) in wanted.items():
        entry = archive.get(key)
        if entry is None:
            continue
        name = lists.class_names[listed.label]
        if entry.class_name.lower() != name.lower():
            raise CatalogError(f"{entry.video_id} is class {entry.class_name} by its name but {name} in the lists")
        case_only += re.split(r"[/\\]", listed.path)[-1] != re.split(r"[/\\]", entry.video_id)[-1]
        by_class[name].append((entry, split))
    matched = sum(len(videos) for videos in by_class.values())
    if not matched:
        raise CatalogError(f"no video of the split lists at {lists.location} is in the archive "
                           f"(matched by file name, ignoring folders and case)")
    present = [name for name in names if by_class[name]]
    if len(present) < len(names):
        lacking = [name for name in names if not by_class[name]]
        raise CatalogError(f"the source holds videos of only {len(present)} of the {len(names)} classes selected from "
                           f"{CLASS_INDEX_FILE} (none of {named(lacking)}); to take only those: "
                           f"`classes` {','.join(present)}")
    absent = sorted(listed.path for key, (_split, listed) in wanted.items() if key not in archive)
    unlisted = sorted(entry.video_id for key, entry in archive.items()
                      if key not in wanted and entry.class_name.lower() in selected_lower)
    train_file, test_file = list_files(lists.fold)
    notes = [f"split lists {lists.location} fold {lists.fold}: {matched} of {len(wanted)} listed videos of the "
             f"selected classes matched by file name, ignoring folders and case ({case_only} differ in case only); "
             f"labels follow {CLASS_INDEX_FILE}"]
    warnings = []
    if absent:
        warnings.append(f"{len(absent)} videos in {train_file}/{test_file} are not in the archive and are left out, "
                        f"e.g. {', '.join(absent[:_EXAMPLES])}")
    if unlisted:
        warnings.append(f"{len(unlisted)} archive videos of the selected classes are in neither list and are left "
                        f"out, e.g. {', '.join(unlisted[:_EXAMPLES])}")
    notes += warnings
    # Within a class, videos keep archive order, as the other policies do.
    order = {entry.video_id: position for position, entry in enumerate(catalog.entries)}
    for videos in by_class.values():
        videos.sort(key=lambda pair: order[pair[0].video_id])
    request_text = f"lists={lists.location},fold={lists.fold}" + (f",{val.text}" if val is not None else "")
    expected = {split: f"none of the {matched} matched videos is in {file}"
                for split, file in (("train", train_file), ("test", test_file))}
    return assign_fixed(by_class, names, val, seed, f"lists-fold{lists.fold}", request_text, notes, warnings,
                        expected)
