"""The image codec of stored frames: one RGB frame to JPEG/PNG bytes and back, with OpenCV (and TensorFlow's ops).

Deterministic (the same pixels give the same bytes), so shards are byte-identical across runs.
The one place that decodes a stored frame: :func:`decode_frame` for the TF-free readers and
:func:`tf_frame_decoder` for tf.data, which give the same pixels (JPEG with TensorFlow's
``INTEGER_ACCURATE`` IDCT, the one OpenCV's libjpeg uses; TensorFlow's default differs by up to
~20 levels per pixel).
"""
from __future__ import annotations

from typing import Any, Callable

import cv2
import numpy as np

from vidshard.errors import ShardFormatError

def encode_frame(rgb: np.ndarray, encoding: str, quality: int = 95) -> bytes:
    """Encode one RGB frame as JPEG or PNG bytes (deterministic for the same pixels)."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if encoding == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    elif encoding == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    else:
        raise ValueError(f"unknown image encoding {encoding!r}; expected jpeg or png")
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.shape} frame as {encoding}")
    return buf.tobytes()


def decode_frame(data: bytes) -> np.ndarray:
    """Decode one JPEG/PNG frame to uint8 RGB ``[H, W, 3]``."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ShardFormatError("a stored frame is not a decodable JPEG/PNG image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def tf_frame_decoder(encoding: str) -> Callable[[Any], Any]:
    """TensorFlow's decode of one stored frame (a ``tf.string`` -> uint8 ``[H, W, 3]``), equal to :func:`decode_frame`.

    Imports TensorFlow only when called; for the tf.data reader, whose parallel map runs it.
    """
    import tensorflow as tf

    if encoding == "jpeg":
        return lambda data: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")
    if encoding == "png":
        return lambda data: tf.io.decode_png(data, channels=3, dtype=tf.uint8)
    raise ValueError(f"unknown image encoding {encoding!r}; expected jpeg or png")
