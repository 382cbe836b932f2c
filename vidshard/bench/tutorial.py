"""The TensorFlow video tutorial's input path, reproduced faithfully as the benchmark baseline.

``frames_from_video_file``, ``FrameGenerator`` and the ``from_generator`` dataset are the
tutorial's (see ``shared/seed``), bugs included — the random start that can overshoot, the
float32 frames, the per-frame TF ops — because the benchmark measures vidshard against what
users run today.  Nothing in vidshard's own path uses this module.
"""
from __future__ import annotations

import pathlib
import random

import cv2
import numpy as np
import tensorflow as tf


def format_frames(frame: np.ndarray, output_size: tuple[int, int]) -> tf.Tensor:
    """The tutorial's per-frame conversion: uint8 -> float32, then ``resize_with_pad``."""
    frame = tf.image.convert_image_dtype(frame, tf.float32)
    return tf.image.resize_with_pad(frame, *output_size)


def frames_from_video_file(video_path, n_frames: int, output_size=(224, 224), frame_step: int = 15,
                           start: int | None = None) -> np.ndarray:
    """The tutorial's clip reader: seek to a random start, read every frame, keep every ``frame_step``-th.

    ``start`` replaces the tutorial's random draw, to compare pixels for a known start.
    """
    result = []
    src = cv2.VideoCapture(str(video_path))
    video_length = src.get(cv2.CAP_PROP_FRAME_COUNT)
    need_length = 1 + (n_frames - 1) * frame_step
    if start is None and need_length > video_length:
        start = 0
    elif start is None:
        max_start = video_length - need_length
        start = random.randint(0, int(max_start) + 1)  # the tutorial's overshooting draw, kept
    src.set(cv2.CAP_PROP_POS_FRAMES, start)
    ret, frame = src.read()
    result.append(format_frames(frame, output_size))
    for _ in range(n_frames - 1):
        for _ in range(frame_step):
            ret, frame = src.read()
        if ret:
            result.append(format_frames(frame, output_size))
        else:
            result.append(np.zeros_like(result[0]))
    src.release()
    return np.array(result)[..., [2, 1, 0]]


class FrameGenerator:
    """The tutorial's generator over ``<split>/<class>/*.avi``, yielding (frames, label)."""

    def __init__(self, path, n_frames: int, training: bool = False, output_size=(224, 224), frame_step: int = 15):
        self.path = pathlib.Path(path)
        self.n_frames = n_frames
        self.training = training
        self.output_size = output_size
        self.frame_step = frame_step
        self.class_names = sorted(set(p.name for p in self.path.iterdir() if p.is_dir()))
        self.class_ids_for_name = dict((name, idx) for idx, name in enumerate(self.class_names))

    def get_files_and_class_names(self):
        video_paths = list(self.path.glob("*/*.avi"))
        classes = [p.parent.name for p in video_paths]
        return video_paths, classes

    def __call__(self):
        pairs = list(zip(*self.get_files_and_class_names()))
        if self.training:
            random.shuffle(pairs)
        for path, name in pairs:
            video_frames = frames_from_video_file(path, self.n_frames, self.output_size, self.frame_step)
            yield video_frames, self.class_ids_for_name[name]


def tutorial_dataset(path, n_frames: int, batch_size: int, output_size=(224, 224), frame_step: int = 15,
                     training: bool = True, cache: bool = False) -> tf.data.Dataset:
    """The tutorial's training dataset: ``from_generator`` (+ ``cache().shuffle(1000)``) + ``batch``."""
    signature = (tf.TensorSpec(shape=(None, None, None, 3), dtype=tf.float32),
                 tf.TensorSpec(shape=(), dtype=tf.int16))
    ds = tf.data.Dataset.from_generator(
        FrameGenerator(path, n_frames, training=training, output_size=output_size, frame_step=frame_step),
        output_signature=signature,
    )
    if cache:
        ds = ds.cache().shuffle(1000)
    return ds.prefetch(tf.data.AUTOTUNE).batch(batch_size)
