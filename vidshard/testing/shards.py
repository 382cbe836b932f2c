"""Shard makers for tests and demos: shard directories written directly, without the Beam pipeline.

Two kinds of data, both following the shard contract of :mod:`vidshard.format`
(``{split}-SSSSS-of-NNNNN.<ext>`` files and ``dataset_info.json``):

* :func:`make_shards`: clips of :func:`vidshard.testing.synthetic.motion_frames` (a square moving
  in the class's direction) rendered at the target size, so a model can learn them and the reader
  and trainer tests do not depend on the sharding pipeline.  Written with TensorFlow's own
  ``TFRecordWriter`` (imported when called), so TF-free readers are checked against TF's files.
* :func:`write_tagged_shards`: raw frames whose first pixel names the video (its number in the
  split) and the clip, so a test can tell which example and clip a reader returned; TF-free,
  as TFRecord or ArrayRecord files.
"""
from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import cv2
import numpy as np

from vidshard.format.info import DatasetInfo, SplitInfo, load_info
from vidshard.format.schema import ClipRecord, encode_example, parse_example
from vidshard.sampling import ClipSpec
from vidshard.testing import tfrecords
from vidshard.testing.synthetic import MOTION_CLASSES, VideoSpec, motion_frames

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
    # motion_frames' speed scales with 1/total_frames: render at least 32 frames so the square moves a
    # few pixels between sampled frames instead of aliasing through the wrap-around.
    spec = VideoSpec(total_frames=max(starts[-1] + span, 32), width=width, height=height)
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


def make_shards(data_dir: str | os.PathLike, *, classes: Sequence[str] = MOTION_CLASSES[:3],
                splits: Mapping[str, int] = DEFAULT_SPLITS, n_frames: int = 4, height: int = 32,
                width: int = 32, clips_per_video: int = 1, encoding: str = "jpeg", quality: int = 95,
                compression: str = "none", shards_per_split: int = 2, seed: int = 0,
                color_cue: bool = False) -> DatasetInfo:
    """Write ``splits[name]`` videos per class for each split and return the ``DatasetInfo`` written.

    Videos are spread round-robin over ``shards_per_split`` files per split; every video has its
    own seed, so no two clips are identical.
    """
    import tensorflow as tf  # only here: the tagged shards and this module's import stay TF-free

    data_dir = str(data_dir)
    os.makedirs(data_dir, exist_ok=True)
    class_names = sorted(classes)
    suffix = ".tfrecord.gz" if compression == "gzip" else ".tfrecord"
    options = tf.io.TFRecordOptions(compression_type="GZIP" if compression == "gzip" else "")
    split_infos: dict[str, SplitInfo] = {}
    video_seed = seed * 1000
    for split, per_class in splits.items():
        names = [f"{split}-{i:05d}-of-{shards_per_split:05d}{suffix}" for i in range(shards_per_split)]
        writers = [tf.io.TFRecordWriter(os.path.join(data_dir, n), options) for n in names]
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
            num_bytes=sum(os.path.getsize(os.path.join(data_dir, f)) for f in names),
        )
    info = DatasetInfo(
        class_names=class_names, splits=split_infos,
        clip=ClipSpec(n_frames=n_frames, frame_step=2, height=height, width=width, clips_per_video=clips_per_video,
                      seed=seed), encoding=encoding, quality=quality,
        compression=compression, split_policy="synthetic", split_request=repr(dict(splits)), seed=seed,
        source="vidshard.testing.shards", num_failed=0, vidshard_version="test",
    )
    info.write(data_dir)
    return info


def read_records(data_dir: str | os.PathLike, split: str) -> list[ClipRecord]:
    """Every record of ``split`` decoded with the TF-free :func:`parse_example`, in file order."""
    import tensorflow as tf  # TF's reader, so the records are checked against TF's framing

    info = load_info(str(data_dir))
    compression = "GZIP" if info.compression == "gzip" else ""
    return [parse_example(raw.numpy(), info.encoding)
            for name in info.splits[split].shards
            for raw in tf.data.TFRecordDataset(os.path.join(str(data_dir), name), compression)]


def corrupt_shard(path: str | os.PathLike, offset: int = 40) -> None:
    """Flip one byte inside the first record's payload, so its CRC check fails when read."""
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


#: The tagged shards: three classes, clips of ``TAGGED_FRAMES`` frames of ``TAGGED_HEIGHT`` x ``TAGGED_WIDTH``.
TAGGED_CLASSES: list[str] = ["A", "B", "C"]
TAGGED_FRAMES, TAGGED_HEIGHT, TAGGED_WIDTH = 3, 48, 64


def smooth_frames(rng: np.random.Generator, clips: int) -> np.ndarray:
    """Image-like frames (gradients plus noise) so JPEG has real content to lose."""
    yy, xx = np.mgrid[0:TAGGED_HEIGHT, 0:TAGGED_WIDTH]
    base = (np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1) % 256).astype(np.int16)
    noise = rng.integers(-40, 40, size=(clips, TAGGED_FRAMES, TAGGED_HEIGHT, TAGGED_WIDTH, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def tagged_frames(video: int, clips: int) -> np.ndarray:
    """Frames whose first pixel names the video and the clip: identity survives the reader (raw only)."""
    frames = np.zeros((clips, TAGGED_FRAMES, TAGGED_HEIGHT, TAGGED_WIDTH, 3), np.uint8)
    for c in range(clips):
        frames[c, :, 0, 0, 0] = video
        frames[c, :, 0, 0, 1] = c
    return frames


def write_tagged_shards(
    out: str | os.PathLike, shard_sizes: list[int], *, encoding: str = "raw", compression: str = "none",
    clips: int = 1, tagged: bool = True, split: str = "train", seed: int = 0, file_format: str = "tfrecord",
) -> list[ClipRecord]:
    """Write one split as shards plus dataset_info.json; return the records in canonical order.

    Video ``v`` (numbered across the split) has label ``v % 3``; ``tagged`` frames carry its number
    and clip in the first pixel, otherwise frames are :func:`smooth_frames` drawn from ``seed``.
    ``file_format`` is ``tfrecord`` (with ``compression``) or ``array_record`` (needs the grain extra).
    """
    rng = np.random.default_rng(seed)
    os.makedirs(out, exist_ok=True)
    written: list[ClipRecord] = []
    shards = []
    for s, size in enumerate(shard_sizes):
        chunk = []
        for _ in range(size):
            v = len(written)
            frames = tagged_frames(v, clips) if tagged else smooth_frames(rng, clips)
            label = v % len(TAGGED_CLASSES)
            rec = ClipRecord(
                f"UCF101/v_{TAGGED_CLASSES[label]}_g01_c{v:02d}.avi", label, TAGGED_CLASSES[label], frames,
                np.arange(clips * TAGGED_FRAMES, dtype=np.int64).reshape(clips, TAGGED_FRAMES))
            written.append(rec)
            chunk.append(encode_example(rec, encoding))
        if file_format == "array_record":
            from vidshard.format import arrayrecord  # needs array_record (the grain extra)

            shards.append(f"{split}-{s:05d}-of-{len(shard_sizes):05d}.array_record")
            arrayrecord.write_records(os.path.join(out, shards[-1]), chunk)
        else:
            shards.append(f"{split}-{s:05d}-of-{len(shard_sizes):05d}.tfrecord")
            tfrecords.write_records(os.path.join(out, shards[-1]), chunk, compression)
    DatasetInfo(
        class_names=TAGGED_CLASSES, splits={split: SplitInfo(len(written), shards, list(shard_sizes))},
        clip=ClipSpec(n_frames=TAGGED_FRAMES, frame_step=1, height=TAGGED_HEIGHT, width=TAGGED_WIDTH,
                      clips_per_video=clips),
        encoding=encoding, quality=95, compression=compression, split_policy="test", split_request="", seed=0,
        source="test", num_failed=0, vidshard_version="test", file_format=file_format,
    ).write(os.fspath(out))
    return written
