"""Test helper: write small shard directories directly, without the Beam pipeline.

Clips are frames of :func:`vidshard.synthetic.motion_frames` (a square moving in the class's
direction) rendered at the target size, so a model can learn them, and the reader and trainer
tests do not depend on the sharding pipeline.  The output follows the shard contract of
:mod:`vidshard.format`: ``{split}-SSSSS-of-NNNNN.tfrecord[.gz]`` files and ``dataset_info.json``.
"""
from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import cv2
import numpy as np
import tensorflow as tf

from vidshard.format.info import DatasetInfo, SplitInfo, load_info
from vidshard.format.schema import ClipRecord, encode_example, parse_example
from vidshard.sampling import ClipSpec
from vidshard.synthetic import MOTION_CLASSES, VideoSpec, motion_frames

DEFAULT_SPLITS: Mapping[str, int] = {"train": 4, "val": 2, "test": 2}


def clip_record(class_index: int, class_names: Sequence[str], video_seed: int, *, n_frames: int,
                height: int, width: int, clips_per_video: int, frame_step: int = 2,
                color_cue: bool = False) -> ClipRecord:
    """One synthetic video's clips: ``clips_per_video`` windows of ``n_frames`` frames, ``frame_step`` apart.

    ``color_cue`` gives each class (up to 7) its own colour cast, so that a few epochs separate
    the classes: for tests of the training loop rather than of motion learning.
    """
    span = (n_frames - 1) * frame_step + 1
    starts = [c * span for c in range(clips_per_video)]
    # motion_frames' speed scales with 1/num_frames: render at least 32 frames so the square moves a
    # few pixels between sampled frames instead of aliasing through the wrap-around.
    spec = VideoSpec(num_frames=max(starts[-1] + span, 32), width=width, height=height)
    video = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2RGB)
                      for f in motion_frames(2 * math.pi * class_index / len(class_names), spec, video_seed)])
    if color_cue:
        for channel in range(3):  # class k gets the colour cast of the bits of k + 1 (7 distinct casts)
            if (class_index + 1) >> channel & 1:
                video[..., channel] |= 0x80
    indices = np.array([[s + i * frame_step for i in range(n_frames)] for s in starts], np.int64)
    name = class_names[class_index]
    return ClipRecord(
        video_id=f"UCF101/v_{name}_g{video_seed:02d}_c01.avi", label=class_index, label_name=name,
        frames=video[indices], frame_indices=indices,
    )


def make_shards(directory: str | os.PathLike, *, classes: Sequence[str] = MOTION_CLASSES[:3],
                splits: Mapping[str, int] = DEFAULT_SPLITS, n_frames: int = 4, height: int = 32,
                width: int = 32, clips_per_video: int = 1, encoding: str = "jpeg", quality: int = 95,
                compression: str = "none", shards_per_split: int = 2, seed: int = 0,
                color_cue: bool = False) -> DatasetInfo:
    """Write ``splits[name]`` videos per class for each split and return the ``DatasetInfo`` written.

    Videos are spread round-robin over ``shards_per_split`` files per split; every video has its
    own seed, so no two clips are identical.
    """
    directory = str(directory)
    os.makedirs(directory, exist_ok=True)
    class_names = sorted(classes)
    suffix = ".tfrecord.gz" if compression == "gzip" else ".tfrecord"
    options = tf.io.TFRecordOptions(compression_type="GZIP" if compression == "gzip" else "")
    split_infos: dict[str, SplitInfo] = {}
    video_seed = seed * 1000
    for split, per_class in splits.items():
        names = [f"{split}-{i:05d}-of-{shards_per_split:05d}{suffix}" for i in range(shards_per_split)]
        writers = [tf.io.TFRecordWriter(os.path.join(directory, n), options) for n in names]
        lengths = [0] * shards_per_split
        n = 0
        for _ in range(per_class):
            for class_index in range(len(class_names)):
                video_seed += 1
                record = clip_record(class_index, class_names, video_seed, n_frames=n_frames, height=height,
                                     width=width, clips_per_video=clips_per_video, color_cue=color_cue)
                writers[n % shards_per_split].write(encode_example(record, encoding, quality))
                lengths[n % shards_per_split] += 1
                n += 1
        for writer in writers:
            writer.close()
        split_infos[split] = SplitInfo(
            num_examples=n, shards=names, shard_lengths=lengths,
            num_bytes=sum(os.path.getsize(os.path.join(directory, f)) for f in names),
        )
    info = DatasetInfo(
        class_names=class_names, splits=split_infos,
        clip=ClipSpec(n_frames=n_frames, frame_step=2, height=height, width=width, clips_per_video=clips_per_video,
                      seed=seed), encoding=encoding, quality=quality,
        compression=compression, split_policy="synthetic", split_request=repr(dict(splits)), seed=seed,
        source="tests/shardmaker.py", num_failed=0, vidshard_version="test",
    )
    info.write(directory)
    return info


def read_records(directory: str | os.PathLike, split: str) -> list[ClipRecord]:
    """Every record of ``split`` decoded with the TF-free :func:`parse_example`, in file order."""
    info = load_info(str(directory))
    compression = "GZIP" if info.compression == "gzip" else ""
    return [parse_example(raw.numpy(), info.encoding)
            for name in info.splits[split].shards
            for raw in tf.data.TFRecordDataset(os.path.join(str(directory), name), compression)]


def corrupt_shard(path: str | os.PathLike, offset: int = 40) -> None:
    """Flip one byte inside the first record's payload, so its CRC check fails when read."""
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))
