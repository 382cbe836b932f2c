"""Summarise and verify a shard directory (a local folder, ``s3://`` or ``gs://``) against its ``dataset_info.json``.

:func:`summarize` reads only ``dataset_info.json`` and file sizes (instant on any size of
dataset); :func:`verify` reads every record of every shard, checking both CRCs, parsing each
Example and comparing counts, shapes and labels with ``dataset_info.json``.  Problems are returned
as one line each, naming the file and record, so the CLI can print them and exit non-zero.
"""
from __future__ import annotations

import fnmatch
import glob
import json
import os
from collections import Counter
from dataclasses import dataclass

from vidshard.errors import ShardFormatError
from vidshard.format import storage
from vidshard.format.info import ERRORS_FILE, DatasetInfo, load_info
from vidshard.format.schema import parse_example
from vidshard.format.file_adapters import iter_shard
from vidshard.format.splits import split_files


@dataclass(frozen=True)
class ShardFile:
    """One shard as listed in ``dataset_info.json`` and as found on disk (size None if missing)."""

    name: str
    examples: int
    size: int | None


@dataclass(frozen=True)
class Summary:
    """What a shard directory holds, from ``dataset_info.json`` and the files' sizes."""

    data_dir: str
    info: DatasetInfo
    shards: dict[str, list[ShardFile]]
    failed_by_stage: dict[str, int] | None  # errors.jsonl lines per stage; None if the file is missing

    def problems(self) -> list[str]:
        """Missing shard files and an errors.jsonl that disagrees with ``num_failed``."""
        lines = [f"{storage.join(self.data_dir, shard.name)}: missing"
                 for shards in self.shards.values() for shard in shards if shard.size is None]
        if self.failed_by_stage is None:
            lines.append(f"{storage.join(self.data_dir, ERRORS_FILE)}: missing")
        elif sum(self.failed_by_stage.values()) != self.info.num_failed:
            lines.append(f"{ERRORS_FILE} lists {sum(self.failed_by_stage.values())} videos, dataset_info.json "
                         f"says {self.info.num_failed} failed")
        return lines


def summarize(data_dir: str) -> Summary:
    """Read ``dataset_info.json`` and stat the shard files (no record is read)."""
    info = load_info(data_dir)
    shards = {}
    for split, split_info in info.splits.items():
        files = []
        _, paths = split_files(data_dir, split, info, check_files=False)  # missing files are problems, below
        for name, path, examples in zip(split_info.shards, paths, split_info.shard_lengths):
            files.append(ShardFile(name, examples, storage.size(path) if storage.exists(path) else None))
        shards[split] = files
    errors_path = storage.join(data_dir, ERRORS_FILE)
    failed = None
    if storage.exists(errors_path):
        try:
            lines = storage.read_text(errors_path).splitlines()
            failed = dict(Counter(json.loads(line)["stage"] for line in lines if line.strip()))
        except (ValueError, KeyError, TypeError) as exc:
            raise ShardFormatError(f"{errors_path} is not a valid errors.jsonl: {exc}") from None
    return Summary(data_dir, info, shards, failed)


def _size(num_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num_bytes < 1024 or unit == "GiB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    raise AssertionError("unreachable")


def format_summary(summary: Summary) -> list[str]:
    """Human-readable lines: settings, classes, per-split counts, shard sizes and bytes per clip."""
    info = summary.info
    lines = [
        f"{summary.data_dir}: {info.num_classes} classes, {info.encoding}"
        + (f" q{info.quality}" if info.encoding == "jpeg" else "")
        + f", {info.clip.describe()} at {info.clip.height}x{info.clip.width}, compression {info.compression}"
        + (f", {info.file_format} files" if info.file_format != "tfrecord" else ""),
        f"split by {info.split_policy} ({info.split_request}), seed {info.seed}, source {info.source}, "
        f"vidshard {info.vidshard_version}",
        f"classes: {', '.join(info.class_names)}",
    ]
    class_counts = info.extra.get("class_counts", {})
    for split, files in summary.shards.items():
        examples = info.splits[split].num_examples
        stored = sum(shard.size or 0 for shard in files)
        per_clip = stored / (examples * info.clip.clips_in(split)) if examples else 0
        lines.append(f"{split}: {examples} examples in {len(files)} shard(s), {_size(stored)}, "
                     f"{_size(per_clip)} per clip")
        if split in class_counts:
            lines.append("  per class: " + ", ".join(f"{name} {count}" for name, count in class_counts[split].items()))
        for shard in files:
            size = "MISSING" if shard.size is None else _size(shard.size)
            lines.append(f"  {shard.name}: {shard.examples} examples, {size}")
    stages = ", ".join(f"{stage} {count}" for stage, count in sorted((summary.failed_by_stage or {}).items()))
    lines.append(f"failed videos: {info.num_failed}" + (f" ({stages}; listed in {ERRORS_FILE})" if stages else ""))
    return lines


def _check_record(serialized: bytes, where: str, info: DatasetInfo, split: str
                  ) -> tuple[list[str], str | None, str | None]:
    """Problems of one record, plus its video id and class name when it parses."""
    try:
        record = parse_example(serialized, info.encoding)
    except ShardFormatError as exc:
        return [f"{where}: {exc}"], None, None
    problems = []
    expected = (info.clip.clips_in(split), *info.clip_shape)
    if info.whole:  # one sequence of the video's own length (all sampling), at least one frame
        expected = (1, max(1, record.frames.shape[1]), *info.clip_shape[1:])
    if record.frames.shape != expected:
        problems.append(f"{where}: frames have shape {record.frames.shape}, dataset_info.json says {expected}")
    if record.has_timing != info.clip.needs_timing:
        problems.append(f"{where}: " + ("stores" if record.has_timing else "lacks") + " the source video's fps and "
                        f"frame count, which {info.clip.sampling} sampling " + ("does not" if record.has_timing
                                                                               else "does"))
    if (record.frame_times is not None) != ("frame_times" in (info.features or {})):
        problems.append(f"{where}: " + ("stores" if record.frame_times is not None else "lacks")
                        + " frame_times, which dataset_info.json's features " + ("lack" if record.frame_times is not None
                                                                                 else "name"))
    if not 0 <= record.label < info.num_classes:
        problems.append(f"{where}: label {record.label} is outside 0..{info.num_classes - 1}")
    elif info.class_names[record.label] != record.label_name:
        problems.append(f"{where}: label {record.label} is {info.class_names[record.label]!r} "
                        f"but label_name is {record.label_name!r}")
    return problems, record.video_id, record.label_name


def _shard_files(data_dir: str, split: str) -> list[str]:
    """Every file named like a shard of ``split`` (``{split}-*-of-*``) directly in the output, sorted."""
    if not storage.is_remote(data_dir):
        return sorted(glob.glob(os.path.join(glob.escape(data_dir), f"{glob.escape(split)}-*-of-*")))
    names = [name for name in storage.list_names(data_dir) if "/" not in name]
    return [storage.join(data_dir, name) for name in sorted(fnmatch.filter(names, f"{split}-*-of-*"))]


def verify(data_dir: str) -> list[str]:
    """Read and check every record; return one line per problem (empty when all is well)."""
    summary = summarize(data_dir)
    info = summary.info
    problems = summary.problems()
    seen: dict[str, str] = {}
    for split, files in summary.shards.items():
        classes: Counter[str] = Counter()
        readable = True  # per-class counts are only comparable when every shard was read to its end
        for shard in files:
            if shard.size is None:
                readable = False
                continue
            path = storage.join(data_dir, shard.name)
            count = 0
            try:
                for index, serialized in enumerate(iter_shard(path, info)):
                    where = f"{path}: record {index}"
                    found, video_id, label_name = _check_record(serialized, where, info, split)
                    problems += found
                    if video_id is not None:
                        if video_id in seen:
                            problems.append(f"{where}: video {video_id} is also in {seen[video_id]}")
                        seen[video_id] = where
                        classes[label_name] += 1
                    count += 1
            except ShardFormatError as exc:  # names the file and record; the rest of the file is unreadable
                problems.append(f"{exc} (rest of the file not checked)")
                readable = False
                continue
            if count != shard.examples:
                problems.append(f"{path}: holds {count} records, dataset_info.json says {shard.examples}")
        if sum(shard.examples for shard in files) != info.splits[split].num_examples:
            problems.append(f"split {split}: shard lengths add up to {sum(s.examples for s in files)}, "
                            f"num_examples says {info.splits[split].num_examples}")
        expected_classes = info.extra.get("class_counts", {}).get(split)
        if readable and expected_classes is not None \
                and {name: count for name, count in expected_classes.items() if count} != dict(classes):
            problems.append(f"split {split}: records per class {dict(classes)} differ from dataset_info.json "
                            f"{expected_classes}")
        listed = {shard.name for shard in files}
        for path in _shard_files(data_dir, split):
            if os.path.basename(path) not in listed:
                problems.append(f"{path}: shard file not listed in dataset_info.json")
    return problems

