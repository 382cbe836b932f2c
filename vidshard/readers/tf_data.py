"""tf.data input pipeline over vidshard shards.

Replaces the tutorial's ``FrameGenerator`` + ``from_generator``: shard files are read in
parallel, Examples are parsed with the feature spec of :mod:`vidshard.format.schema`, frames
are decoded by TensorFlow ops in a parallel map, and the decoded clips are cached as **uint8**
(the model scales them to [0, 1] itself, so the cache is 4x smaller than float32 frames).

With several clips per video the cache holds all of them and a clip is drawn per example
*after* the cache, every epoch anew; the tutorial cached its one random clip, so every epoch saw
the same one.  Evaluation uses ``clips="all"``: every stored clip is one example, in a fixed order.

Frames are decoded by :func:`vidshard.format.codec.tf_frame_decoder` (JPEG with the IDCT of
OpenCV's decoder), so this reader and the TF-free ones yield identical pixels.

An output of ``all`` sampling (format version 6) stores each video's frames as one sequence of
its own length: it is decoded (and cached) whole, and every epoch a clip of ``n_frames``
consecutive stored frames is drawn from it after the cache (:func:`vidshard.sampling.draw_stored`,
keyed by the example's random value; ``clips="all"`` takes the centred clip).

Train-time augmentation (``augment``, see :mod:`vidshard.augment`) runs after the cache, with
the clip draw: each example's random value picks its clip and keys the stateless op that draws
its uniforms; :func:`vidshard.augment.draw` turns them into the crop box and flip (the rule of
every reader), and TensorFlow's ops apply them, so the same seed gives the same augmented batches.
"""
from __future__ import annotations

import os
import re
from typing import Iterable

import tensorflow as tf

import numpy as np

from vidshard import augment as augmentation
from vidshard.errors import ShardFormatError
from vidshard.format import storage
from vidshard.format.codec import tf_frame_decoder
from vidshard.format.info import DatasetInfo, load_info
from vidshard.format.schema import tf_feature_spec
from vidshard.format.splits import split_files
from vidshard.format.tfrecord import iter_records
from vidshard.parts import Part
from vidshard.sampling import draw_stored

AUTOTUNE = tf.data.AUTOTUNE

#: Features the reader needs; their kind and dtype come from :data:`vidshard.format.schema.FEATURES`.
_NEEDED = ("frames", "label", "video_id", "num_clips")
_COMPRESSION = {"none": "", "gzip": "GZIP"}
#: Shard files read at once; more gives no gain on local disks and costs a read buffer each.
_MAX_PARALLEL_FILES = 16

#: TensorFlow errors met while reading that mean the shards are damaged or do not match their
#: dataset_info.json (a failed CRC check, a split with more or fewer records than listed).
DATA_ERRORS = (tf.errors.DataLossError, tf.errors.FailedPreconditionError)


def _decoder(info: DatasetInfo, split: str):
    """A function from one serialized Example to ``(clips uint8 [C, T, H, W, 3], label int64, video_id)``."""
    spec = tf_feature_spec(_NEEDED)
    frame_shape = info.clip_shape
    if info.encoding == "raw":
        def decode_frames(encoded):
            return tf.io.decode_raw(encoded[0], tf.uint8)
    elif info.encoding in ("jpeg", "png"):
        decode_one = tf_frame_decoder(info.encoding)
        frames_per_example = info.clip.clips_in(split) * info.clip.n_frames

        def decode_sequence(encoded):
            # A whole sequence (all sampling) has its own length: one decode per frame in a map_fn.
            return tf.map_fn(decode_one, encoded, fn_output_signature=tf.TensorSpec(frame_shape[1:], tf.uint8))

        def decode_clips(encoded):
            # The frame count is fixed by dataset_info.json, so the decodes are unrolled: they run
            # in parallel on tf.data's threads, without a tf.map_fn while-loop per example.
            encoded = tf.ensure_shape(encoded, (frames_per_example,))
            return tf.stack([decode_one(encoded[i]) for i in range(frames_per_example)])

        decode_frames = decode_sequence if info.whole else decode_clips
    else:
        raise ShardFormatError(f"dataset_info.json names an unknown encoding {info.encoding!r}")

    def decode(serialized):
        parsed = tf.io.parse_single_example(serialized, spec)
        frames = decode_frames(parsed["frames"].values)
        if info.whole:  # one stored sequence of any length: [1, L, H, W, 3]
            sequence = tf.reshape(frames, (1, -1, *frame_shape[1:]))
            return tf.ensure_shape(sequence, (1, None, *frame_shape[1:])), parsed["label"], parsed["video_id"]
        clips = tf.ensure_shape(tf.reshape(frames, (parsed["num_clips"], *frame_shape)), (None, *frame_shape))
        return clips, parsed["label"], parsed["video_id"]  # int64, as the Example stores it and every reader yields

    return decode


def _pick_random_clip(element, random_value):
    clips, label, video_id = element
    index = tf.math.floormod(random_value, tf.cast(tf.shape(clips)[0], tf.int64))
    return clips[index], label, video_id


def _sequence_picker(info: DatasetInfo):
    """``(element, random_value or None) -> (clip, label, video_id)`` for whole sequences (all sampling):
    :func:`vidshard.sampling.draw_stored`'s positions, keyed by the random value (None: the centred
    clip), gathered from the cached sequence, zeros past its end."""
    spec, frame_shape = info.clip, info.clip_shape

    def positions(video_id, stored, key):
        return draw_stored(video_id.decode("utf-8"), int(stored), spec, None if key < 0 else int(key))

    def pick(element, random_value=None):
        sequence, label, video_id = element
        frames = sequence[0]
        # A non-negative 53-bit key from the example's random value; -1 asks for the centred clip.
        key = tf.constant(-1, tf.int64) if random_value is None else tf.bitwise.bitwise_and(
            random_value, tf.constant(2**53 - 1, tf.int64))
        index = tf.numpy_function(positions, [video_id, tf.shape(frames, tf.int64)[0], key], tf.int64, stateful=False)
        index = tf.ensure_shape(index, (frame_shape[0],))
        clip = tf.gather(frames, tf.maximum(index, 0)) * tf.cast(index >= 0, tf.uint8)[:, None, None, None]
        return tf.ensure_shape(clip, frame_shape), label, video_id

    return pick


#: Second half of the stateless seed of an example's augmentation; the first is its random value.
_AUGMENT_STREAM = 0x617567


def _augmenter(augment: tuple[str, ...], height: int, width: int, pick=_pick_random_clip):
    """A map function ``(element, random_value) -> element`` that picks the clip and augments it.

    The uniforms come from ``stateless_uniform`` keyed by the example's random value; the crop box
    and the flip from them are :func:`vidshard.augment.draw`'s (run as a NumPy function: the rule
    is written once), applied with TensorFlow's crop, bilinear resize and reverse.
    """
    def box_and_flip(uniforms):
        how = augmentation.draw(uniforms, augment, height, width)
        return np.array([*(how.box or (0, 0, height, width)), how.flip], np.int32)

    def pick_and_augment(element, random_value):
        clip, label, video_id = pick(element, random_value)
        u = tf.random.stateless_uniform([augmentation.UNIFORMS_PER_CLIP],
                                        seed=tf.stack([random_value, tf.constant(_AUGMENT_STREAM, tf.int64)]))
        drawn = tf.ensure_shape(tf.numpy_function(box_and_flip, [u], tf.int32, stateful=False), (5,))
        top, left, h, w, flip = (drawn[i] for i in range(5))
        if "crop" in augment:
            resized = tf.image.resize(clip[:, top:top + h, left:left + w], (height, width), method="bilinear")
            clip = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
        if "flip" in augment:
            clip = tf.cond(flip > 0, lambda: tf.reverse(clip, axis=[2]), lambda: clip)
        return clip, label, video_id

    return pick_and_augment


def _all_clips(clips, label, video_id):
    count = tf.shape(clips)[0]
    return tf.data.Dataset.from_tensor_slices((clips, tf.fill([count], label), tf.fill([count], video_id)))


def make_dataset(
    data_dir: str | os.PathLike,
    split: str,
    batch_size: int = 8,
    *,
    shuffle: bool = True,
    shuffle_buffer: int = 1000,
    cache: bool | str = True,
    deterministic: bool | None = None,
    seed: int | None = None,
    repeat: bool = False,
    with_ids: bool = False,
    clips: str = "random",
    augment: str | Iterable[str] | None = (),
    part: Part | None = None,
) -> tf.data.Dataset:
    """A dataset of ``(uint8 clips [B, T, H, W, 3], int64 labels [B])`` batches of one split.

    Args:
        data_dir: a shard directory (holding ``dataset_info.json``).
        split: split name, e.g. ``train``, ``val`` or ``test``.
        batch_size: examples per batch; the last batch may be smaller.
        shuffle: shuffle file order and examples (reshuffled every epoch).
        shuffle_buffer: examples in the shuffle buffer.
        cache: ``True`` caches decoded uint8 clips in memory, a string caches them on disk at
            that path prefix (TensorFlow reuses a complete cache found there: remove it when
            the shards change), ``False`` decodes every epoch.
        deterministic: order of parallel reads and maps; ``None`` keeps tf.data's default
            (deterministic), ``False`` trades order for throughput.
        seed: seeds shuffling and clip choice; same seed and data, same order and clips.
        repeat: repeat forever.
        with_ids: also yield the video ids ``[B]`` (strings) as a third element.
        clips: ``"random"`` draws one stored clip per video every epoch; ``"all"`` yields every
            stored clip as its own example (for evaluation).
        augment: train-time augmentations, e.g. ``("crop", "flip")`` or ``"flip,crop"`` (see
            :mod:`vidshard.augment`), drawn per example after the cache, every epoch anew;
            not with ``clips="all"``, the evaluation path.
        part: read these records (:class:`vidshard.parts.Part`, e.g. a slice made by
            :func:`vidshard.splitspec.select`) instead of the whole split; ``split`` then names
            the split whose stored clip count the part's records share.
    """
    if clips not in ("random", "all"):
        raise ValueError(f"clips must be 'random' or 'all', not {clips!r}")
    augment = augmentation.parse_augment(augment)
    if augment and clips == "all":
        raise ValueError("augment is for training: clips='all' (evaluation) is never augmented")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    data_dir = os.fspath(data_dir)
    if storage.scheme_of(data_dir) == "s3":  # TensorFlow dropped its S3 filesystem (tensorflow-io has it)
        raise ShardFormatError(f"{data_dir}: tf.data does not read s3://; read it with the TF-free reader, "
                               "vidshard.readers.numpy_reader.ShardReader (training with `backend` jax or torch reads with it), or use gs://")
    info = load_info(data_dir)
    if info.file_format != "tfrecord":
        raise ShardFormatError(f"{data_dir} holds {info.file_format} shards, which tf.data does not read: use "
                               f"vidshard.readers.numpy_reader or vidshard.readers.grain_data, or shard with `file_format` tfrecord")
    whole = part is None
    if whole:
        part = Part.whole(data_dir, info, split)
    elif split not in info.splits:
        raise ShardFormatError(f"{data_dir} has no split {split!r}")
    compression = _COMPRESSION.get(info.compression)
    if compression is None:
        raise ShardFormatError(f"dataset_info.json names an unknown compression {info.compression!r}")
    if not part.segments:
        raise ShardFormatError(f"the selection of {data_dir} ({split}) holds no examples")

    # Each segment is records [start, stop) of one file: whole files, or the edges of a slice.  One
    # that ends its file reads on to the end (take(-1)), so a file longer than listed fails below.
    segments = tf.data.Dataset.from_tensor_slices(
        ([s.path for s in part.segments], tf.constant([s.start for s in part.segments], tf.int64),
         tf.constant([s.size if s.stop < s.length else -1 for s in part.segments], tf.int64)))
    if shuffle:
        segments = segments.shuffle(len(part.segments), seed=seed, reshuffle_each_iteration=True)
    ds = segments.interleave(
        lambda path, start, size: tf.data.TFRecordDataset(path, compression_type=compression).skip(start).take(size),
        cycle_length=min(len(part.segments), _MAX_PARALLEL_FILES), num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )
    ds = ds.map(_decoder(info, split), num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    # Known sizes give Keras its steps per epoch, and a split shorter or longer than its
    # dataset_info.json count fails loudly (FailedPreconditionError) instead of training on less.
    num_examples = info.splits[split].num_examples if whole else part.num_examples
    ds = ds.apply(tf.data.experimental.assert_cardinality(num_examples))
    if isinstance(cache, str):
        os.makedirs(os.path.dirname(os.path.abspath(cache)), exist_ok=True)
        ds = ds.cache(cache)
    elif cache:
        ds = ds.cache()
    if clips == "all" and info.whole:
        centred = _sequence_picker(info)
        ds = ds.map(lambda *element: centred(element), num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    elif clips == "all":
        ds = ds.flat_map(_all_clips).apply(
            tf.data.experimental.assert_cardinality(num_examples * info.clip.clips_in(split)))
    else:
        # Drawn after the cache, so every epoch (every new iterator) draws new clips.
        randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        pick = _sequence_picker(info) if info.whole else _pick_random_clip
        pick = _augmenter(augment, *info.clip_shape[1:3], pick) if augment else pick
        ds = tf.data.Dataset.zip(ds, randoms).map(pick, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    if not with_ids:
        ds = ds.map(lambda x, y, video_id: (x, y))
    return ds.prefetch(AUTOTUNE)


def find_corrupt_shard(data_dir: str | os.PathLike, split: str) -> str | None:
    """Check both CRCs of every record of ``split`` and describe the first bad one, or return None.

    Used after a ``DataLossError``: TensorFlow's message names only a byte offset, wrapped in the
    names of its ops.  The TF-free verifier of ``vidshard inspect --verify``
    (:func:`~vidshard.format.tfrecord.iter_records`) names the file, the record and its offset.
    """
    data_dir = os.fspath(data_dir)
    info, paths = split_files(data_dir, split)
    for path in paths:
        try:
            for _ in iter_records(path, info.compression):
                pass
        except ShardFormatError as exc:
            return str(exc)
    return None


def _plain_message(exc: tf.errors.OpError) -> str:
    """The first line of TensorFlow's message without the op names around it.

    Eager ops wrap it as ``{{function_node __wrapped__IteratorGetNext...}} REASON [Op:IteratorGetNext]``.
    """
    first_line = exc.message.splitlines()[0] if exc.message else type(exc).__name__
    return re.sub(r"\s*\[Op:\w+\].*$", "", re.sub(r"\{\{function_node [^}]*\}\}\s*", "", first_line))


def data_error(data_dir: str | os.PathLike, splits: tuple[str, ...], exc: tf.errors.OpError) -> ShardFormatError:
    """Turn a TensorFlow error met while reading ``splits`` into one line naming the split, file and record.

    ``DataLossError`` (a record failing its CRC check, a truncated file) is located by reading
    the splits again with :func:`find_corrupt_shard`.
    """
    if isinstance(exc, tf.errors.DataLossError):
        for split in splits:
            where = find_corrupt_shard(data_dir, split)
            if where:
                return ShardFormatError(f"corrupt shard in split {split!r}: {where}")
    return ShardFormatError(f"reading split {' / '.join(splits)} of {os.fspath(data_dir)} failed: "
                            f"{_plain_message(exc)}")
