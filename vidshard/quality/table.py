"""``quality.jsonl`` and its summary in ``dataset_info.json``: the rows of a whole output, with pair flags.

Each video's row (:func:`vidshard.quality.video.measure` plus ``video_id``, ``split``,
``class_name``, its ``flags`` ``{flag: value}`` and ``excluded``) is made on the worker that
decoded it; the pair flags need every row, so they are added here, once all are known:
:func:`add_pairs` finds the near-duplicate pairs (:func:`vidshard.quality.hashing.near_duplicates`)
and flags both videos of a pair ``duplicate`` (same split) or ``duplicate-across-splits``.
:func:`pair_exclusions` decides which video of a pair ``--exclude`` leaves out: the one in the
later split (in the plan's split order, so a train/test leak loses its test copy), or, in one
split, the one whose id sorts later; the rule depends on ids and splits only, so it is the same
on every runner.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from vidshard.quality.flags import FLAGS, Thresholds
from vidshard.quality.hashing import near_duplicates, parse_hashes

QUALITY_FILE = "quality.jsonl"
#: Signals summarised in dataset_info.json (5th percentile, median, 95th percentile).
SUMMARISED: tuple[str, ...] = ("luma_mean", "luma_spread", "black_share", "uniform_share", "frozen_seconds",
                               "motion", "noise", "blur", "sharpness", "blockiness", "duration")


def pairs_of(rows: Sequence[Mapping[str, Any]], thresholds: Thresholds
             ) -> list[tuple[Mapping[str, Any], Mapping[str, Any], int]]:
    """Every near-duplicate pair of rows ``(a, b, bits)``, ``a``'s id before ``b``'s."""
    by_id = {row["video_id"]: row for row in rows}
    return [(by_id[a], by_id[b], bits) for a, b, bits in near_duplicates(parse_hashes(rows), thresholds.duplicate_bits)]


def _pair_flag(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    return "duplicate" if a["split"] == b["split"] else "duplicate-across-splits"


def pair_exclusions(rows: Sequence[Mapping[str, Any]], thresholds: Thresholds, exclude: Sequence[str],
                    split_order: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``video_id -> {flag, value, other, other_split}`` for every video a pair flag in ``exclude`` leaves out."""
    rank = {split: k for k, split in enumerate(split_order)}
    out: dict[str, dict[str, Any]] = {}
    for a, b, bits in pairs_of(rows, thresholds):
        flag = _pair_flag(a, b)
        if flag not in exclude:
            continue
        keep, drop = sorted((a, b), key=lambda row: (rank.get(row["split"], len(rank)), row["split"], row["video_id"]))
        out.setdefault(drop["video_id"], {"flag": flag, "value": bits, "other": keep["video_id"],
                                          "other_split": keep["split"]})
    return out


def add_pairs(rows: list[dict[str, Any]], thresholds: Thresholds) -> list[dict[str, Any]]:
    """Add the pair flags and each row's ``duplicates`` (``[{video_id, split, bits}]``); return the pairs."""
    pairs = []
    by_id = {row["video_id"]: row for row in rows}
    for a, b, bits in pairs_of(rows, thresholds):
        flag = _pair_flag(a, b)
        for one, other in ((a, b), (b, a)):
            row = by_id[one["video_id"]]
            row.setdefault("duplicates", []).append({"video_id": other["video_id"], "split": other["split"],
                                                     "bits": bits})
            row["flags"][flag] = min(bits, row["flags"].get(flag, bits))
        pairs.append({"a": a["video_id"], "b": b["video_id"], "split_a": a["split"], "split_b": b["split"],
                      "bits": bits, "flag": flag})
    for row in rows:
        row["flags"] = {flag: row["flags"][flag] for flag in FLAGS if flag in row["flags"]}
        row.setdefault("duplicates", [])
    return pairs


def to_jsonl(rows: Iterable[Mapping[str, Any]]) -> str:
    """The rows as JSON Lines, sorted by (split, video_id), keys sorted: the same bytes on every runner."""
    ordered = sorted(rows, key=lambda row: (row["split"], row["video_id"]))
    return "".join(json.dumps(row, sort_keys=True) + "\n" for row in ordered)


def summary(rows: Sequence[Mapping[str, Any]], pairs: Sequence[Mapping[str, Any]], thresholds: Thresholds,
            exclude: Sequence[str]) -> dict[str, Any]:
    """What dataset_info.json records of the audit: counts per flag, exclusions, pairs, thresholds, signal spread."""
    flagged = Counter(flag for row in rows for flag in row["flags"])
    excluded = Counter(row["excluded"] for row in rows if row.get("excluded"))
    spread = {}
    for name in SUMMARISED:
        values = np.asarray([row[name] for row in rows if isinstance(row.get(name), (int, float))], np.float64)
        if len(values):
            p5, p50, p95 = np.percentile(values, [5, 50, 95])
            spread[name] = {"p5": round(float(p5), 4), "median": round(float(p50), 4), "p95": round(float(p95), 4)}
    return {"file": QUALITY_FILE, "videos": len(rows), "flagged": {flag: flagged[flag] for flag in FLAGS},
            "excluded": {flag: excluded[flag] for flag in exclude}, "duplicate_pairs": len(pairs),
            "leaks": sum(pair["flag"] == "duplicate-across-splits" for pair in pairs),
            "thresholds": thresholds.to_dict(), "exclude": list(exclude), "signals": spread}
