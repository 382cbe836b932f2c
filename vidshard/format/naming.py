"""Shard naming and layout policy: pure functions of the plan, no I/O.

Which video lands in which shard, and where in it, is decided here from the plan alone (a seeded
hash of the video id), never from the order in which workers finish; so the same plan writes the
same bytes on any runner with any number of workers.
"""
from __future__ import annotations

import bisect
import hashlib
import math
from typing import Sequence

from vidshard.format.file_adapters import adapter
from vidshard.sampling import ClipSpec

#: ``auto`` aims at shards of about this size (TFDS keeps shards between 64 MiB and 1 GiB).
TARGET_SHARD_BYTES = 128 << 20
#: Bytes TFRecord framing adds to every record (length, two masked CRCs).
RECORD_OVERHEAD = 16

#: Stored bytes per pixel channel, by encoding: a rough estimate that only sizes ``--shards auto``.
#: JPEG at quality 95 keeps about 1/6 of the raw bytes of natural video frames, PNG about 1/2.
_BYTES_PER_VALUE = {"raw": 1.0, "png": 0.5, "jpeg": 1 / 6}


def shard_name(split: str, index: int, num_shards: int, compression: str = "none", file_format: str = "tfrecord") -> str:
    """``{split}-SSSSS-of-NNNNN`` and the file format's suffix (:data:`~vidshard.format.file_adapters.FILE_ADAPTERS`):
    ``.tfrecord``, ``.tfrecord.gz`` when gzip-compressed, ``.array_record``."""
    return f"{shard_key(split, index)}-of-{num_shards:05d}{adapter(file_format).suffix(compression)}"


def shard_key(split: str, index: int) -> str:
    """``{split}-SSSSS``: a shard's key in its file name and in the staging folder's names."""
    return f"{split}-{index:05d}"


def num_shards_of(name: str) -> int:
    """The ``NNNNN`` of a name from :func:`shard_name` (``{split}-SSSSS-of-NNNNN...``): the split's shard count."""
    return int(name.rsplit("-of-", 1)[1][:5])


def order_key(seed: int, video_id: str) -> tuple[str, str]:
    """A video's place in its split: SHA-256 of (seed, id), the id itself breaking (impossible) ties.

    Sorting by this interleaves classes and groups in every shard (so a reader that reads shards in
    turn sees a mix) while staying a pure function of the plan.
    """
    digest = hashlib.sha256(f"{seed}\0{video_id}".encode("utf-8")).hexdigest()
    return digest, video_id


def assign_shards(video_ids: Sequence[str], num_shards: int, seed: int) -> dict[str, tuple[int, int]]:
    """``video_id -> (shard index, position in shard)`` for the videos of one split.

    The videos are ordered by :func:`order_key` and cut into ``num_shards`` contiguous runs whose
    lengths differ by at most one (boundaries at ``round(n * i / num_shards)``, as TFDS does).
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be at least 1, got {num_shards}")
    ordered = sorted(video_ids, key=lambda video_id: order_key(seed, video_id))
    layout: dict[str, tuple[int, int]] = {}
    start = 0
    for shard, end in enumerate(cut_points(len(ordered), num_shards)):
        for position, video_id in enumerate(ordered[start:end]):
            layout[video_id] = (shard, position)
        start = end
    return layout


def cut_points(total: int, num_shards: int) -> list[int]:
    """Where each of ``num_shards`` contiguous runs of ``total`` ordered videos ends: ``round(total * (i + 1) / num_shards)``."""
    return [round(total * (shard + 1) / num_shards) for shard in range(num_shards)]


def shard_of_rank(rank: int, total: int, num_shards: int) -> tuple[int, int]:
    """``(shard, position in shard)`` of the video at ``rank`` (its place by :func:`order_key`) among
    ``total``: the same cut as :func:`assign_shards`, for a layout whose shard count is known only
    once the examples are encoded (``--sampling all`` with ``--shards auto``)."""
    ends = cut_points(total, num_shards)
    shard = bisect.bisect_right(ends, rank)
    return shard, rank - (ends[shard - 1] if shard else 0)


def estimate_example_bytes(spec: ClipSpec, encoding: str, split: str) -> int:
    """Rough serialized size of one video's Example in ``split``, framing included (for ``--shards auto``)."""
    frames = spec.clips_in(split) * spec.n_frames
    return int(frames * spec.height * spec.width * 3 * _BYTES_PER_VALUE[encoding]) + 64 * frames + RECORD_OVERHEAD


def auto_num_shards(num_videos: int, example_bytes: int, target_bytes: int = TARGET_SHARD_BYTES) -> int:
    """Shards for one split: about ``target_bytes`` each, at least 1, never more than its videos."""
    return shards_for_bytes(num_videos, num_videos * example_bytes, target_bytes)


def shards_for_bytes(num_videos: int, total_bytes: int, target_bytes: int = TARGET_SHARD_BYTES) -> int:
    """Shards for one split of ``total_bytes`` (estimated, or the real bytes of its encoded examples,
    framing included): about ``target_bytes`` each, at least 1, never more than its videos."""
    wanted = math.ceil(total_bytes / target_bytes)
    return max(1, min(num_videos, wanted))
