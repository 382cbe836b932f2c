"""The Example schema of one video's clips: declared once, here; the encoder and parsers follow it.

:data:`FEATURES` is the table of feature names, kinds and dtypes (``dataset_info.json`` carries a
copy, so readers in other languages need no code).  :func:`encode_example` writes it,
:func:`parse_example` / :func:`parse_clip_into` read it without TensorFlow (the NumPy, Grain and
PyTorch readers, ``inspect``, ``preview``), and :func:`tf_feature_spec` turns it into the
``tf.io.parse_single_example`` spec of the tf.data reader.  Whether ``frames`` holds raw bytes or
one image per frame is told by the output's declared ``encoding``, never guessed from sizes.
Protobuf, NumPy and OpenCV only; TensorFlow is imported by :func:`tf_feature_spec` alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
from google.protobuf.message import DecodeError as ProtoDecodeError

from vidshard.errors import ShardFormatError
from vidshard.format.codec import decode_frame, encode_frame
from vidshard.format.example_proto import Example
from vidshard.sampling import PADDED, ClipSpec, draw_stored

ENCODINGS = ("jpeg", "png", "raw")

#: Feature name -> (kind, dtype, meaning), in the order :func:`encode_example` fills them.
FEATURES: dict[str, dict[str, str]] = {
    "frames": {"kind": "var_len", "dtype": "string",
               "doc": "jpeg/png: one encoded RGB image per frame, clips in order; raw: one entry of clips*T*H*W*3 uint8"},
    "label": {"kind": "fixed_len", "dtype": "int64", "doc": "index into class_names"},
    "label_name": {"kind": "fixed_len", "dtype": "string", "doc": "class name"},
    "video_id": {"kind": "fixed_len", "dtype": "string", "doc": "member name in the source"},
    "frame_indices": {"kind": "var_len", "dtype": "int64", "doc": "source frame of every stored frame, -1 where padded"},
    "num_clips": {"kind": "fixed_len", "dtype": "int64", "doc": "clips stored for this video"},
    "num_frames": {"kind": "fixed_len", "dtype": "int64", "doc": "frames per clip"},  # the clip spec's n_frames; the key is on disk
    "height": {"kind": "fixed_len", "dtype": "int64", "doc": "frame height"},
    "width": {"kind": "fixed_len", "dtype": "int64", "doc": "frame width"},
}
#: Features of records cut by time or by segments (format version 4): the video's timing, which
#: those clips depend on.  Kept apart from :data:`FEATURES` so the tutorial's step-sampled records
#: (and the ``features`` table of their ``dataset_info.json``) keep their bytes.
TIMING_FEATURES: dict[str, dict[str, str]] = {
    "source_fps": {"kind": "fixed_len", "dtype": "float", "doc": "the source video's frame rate"},
    "source_frames": {"kind": "fixed_len", "dtype": "int64", "doc": "frames the source video's stream holds"},
}
#: The feature of time-sampled records (format version 5): each stored frame's presentation time,
#: read from the stream, so a variable-rate video's clip says when every frame was shown.
FRAME_TIME_FEATURES: dict[str, dict[str, str]] = {
    "frame_times": {"kind": "var_len", "dtype": "float",
                    "doc": "seconds from the stream's start of every stored frame, -1 where padded"},
}
#: The protobuf list field of each dtype.
_LIST_FIELD = {"string": "bytes_list", "int64": "int64_list", "float": "float_list"}
#: The four int64 scalars that give a record's shape: ``[num_clips, num_frames, height, width, 3]``.
_SHAPE = ("num_clips", "num_frames", "height", "width")


@dataclass(frozen=True)
class ClipRecord:
    """One video's clips as stored: uint8 RGB ``frames[clips, T, H, W, 3]`` and their source indices."""

    video_id: str
    label: int
    label_name: str
    frames: np.ndarray
    frame_indices: np.ndarray
    source_fps: float | None = None  #: set (with ``source_frames``) on records of :data:`TIMING_FEATURES`
    source_frames: int | None = None
    frame_times: np.ndarray | None = None  #: float seconds ``[clips, T]`` (-1 where padded), time sampling only

    def __post_init__(self) -> None:
        if self.frames.dtype != np.uint8 or self.frames.ndim != 5 or self.frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 [clips, T, H, W, 3], got {self.frames.dtype} {self.frames.shape}")
        if self.frame_indices.shape != self.frames.shape[:2]:
            raise ValueError(f"frame_indices shape {self.frame_indices.shape} != {self.frames.shape[:2]}")
        if (self.source_fps is None) != (self.source_frames is None):
            raise ValueError("source_fps and source_frames are stored together or not at all")
        if self.frame_times is not None and (self.frame_times.shape != self.frames.shape[:2] or not self.has_timing):
            raise ValueError(f"frame_times shape {self.frame_times.shape} != {self.frames.shape[:2]}, "
                             "or stored without source_fps")

    @property
    def has_timing(self) -> bool:
        return self.source_fps is not None


def features_of(timing: bool, frame_times: bool = False) -> dict[str, dict[str, str]]:
    """The feature table of records with or without :data:`TIMING_FEATURES` (and :data:`FRAME_TIME_FEATURES`)."""
    table = {**FEATURES, **TIMING_FEATURES} if timing else dict(FEATURES)
    return {**table, **FRAME_TIME_FEATURES} if frame_times else table


def _check_encoding(encoding: str) -> None:
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")


def _values(record: ClipRecord, encoding: str, quality: int) -> dict[str, Iterable[Any]]:
    """The value list of every feature of :data:`FEATURES`, by name."""
    clips, n_frames, h, w, _ = record.frames.shape
    if encoding == "raw":
        frames: Iterable[Any] = [np.ascontiguousarray(record.frames).tobytes()]
    else:
        frames = (encode_frame(frame, encoding, quality) for frame in record.frames.reshape(clips * n_frames, h, w, 3))
    return {
        "frames": frames,
        "label": [int(record.label)],
        "label_name": [record.label_name.encode("utf-8")],
        "video_id": [record.video_id.encode("utf-8")],
        "frame_indices": (int(i) for i in record.frame_indices.reshape(-1)),
        "num_clips": [clips], "num_frames": [n_frames], "height": [h], "width": [w],
        "source_fps": [record.source_fps], "source_frames": [record.source_frames],
        "frame_times": () if record.frame_times is None else (float(t) for t in record.frame_times.reshape(-1)),
    }


def encode_example(record: ClipRecord, encoding: str = "jpeg", quality: int = 95) -> bytes:
    """Serialize one video's clips as a ``tf.train.Example`` (deterministic bytes)."""
    _check_encoding(encoding)
    example = Example()
    feature = example.features.feature
    values = _values(record, encoding, quality)
    for name, entry in features_of(record.has_timing, record.frame_times is not None).items():
        getattr(feature[name], _LIST_FIELD[entry["dtype"]]).value.extend(values[name])
    return example.SerializeToString(deterministic=True)


class _Parsed:
    """The features of one serialized Example, checked against :data:`FEATURES` and ``encoding``."""

    def __init__(self, serialized: bytes, encoding: str) -> None:
        _check_encoding(encoding)
        try:
            self.feature = Example.FromString(serialized).features.feature
        except ProtoDecodeError as exc:  # the message is all a user can act on
            raise ShardFormatError(f"record is not a valid tf.train.Example: {exc}") from None
        missing = [name for name in FEATURES if name not in self.feature]
        if missing:
            raise ShardFormatError(f"record lacks features: {', '.join(missing)}")
        self.encoding = encoding
        self.clips, self.n_frames, self.h, self.w = (self.scalar(name) for name in _SHAPE)
        self.frames = self.feature["frames"].bytes_list.value
        wanted = 1 if encoding == "raw" else self.clips * self.n_frames
        if len(self.frames) != wanted or (encoding == "raw" and len(self.frames[0]) != self.clips * self.n_frames * self.h * self.w * 3):
            raise ShardFormatError(f"record holds {len(self.frames)} {encoding} frame entries "
                                   f"({sum(len(v) for v in self.frames)} bytes) for {self.clips}x{self.n_frames} frames "
                                   f"of {self.h}x{self.w}")

    def scalar(self, name: str) -> int:
        values = self.feature[name].int64_list.value
        if len(values) != 1:
            raise ShardFormatError(f"record holds {len(values)} values of {name!r}, expected 1")
        return int(values[0])

    def timing(self) -> tuple[float | None, int | None]:
        """``(source_fps, source_frames)`` of a record that stores them, else ``(None, None)``."""
        if "source_fps" not in self.feature:
            return None, None
        values = self.feature["source_fps"].float_list.value
        if len(values) != 1:
            raise ShardFormatError(f"record holds {len(values)} values of 'source_fps', expected 1")
        # Stored as float32: read back as the shortest decimal that is that float32 (29.97, not 29.969999313...).
        return float(str(np.float32(values[0]))), self.scalar("source_frames")

    def frame_times(self) -> np.ndarray | None:
        """Every stored frame's time ``[clips, T]`` on a record that stores them (version 5), else None."""
        if "frame_times" not in self.feature:
            return None
        values = np.asarray(self.feature["frame_times"].float_list.value, np.float64)
        if values.size != self.clips * self.n_frames:
            raise ShardFormatError(f"record holds {values.size} frame times for {self.clips}x{self.n_frames} frames")
        return values.reshape(self.clips, self.n_frames)

    def text(self, name: str) -> str:
        values = self.feature[name].bytes_list.value
        if len(values) != 1:
            raise ShardFormatError(f"record holds {len(values)} values of {name!r}, expected 1")
        return values[0].decode("utf-8")

    def decode_positions(self, positions: np.ndarray, out: np.ndarray) -> None:
        """Decode the stored frames at ``positions`` of a one-clip record into ``out`` (uint8 ``[len, H, W, 3]``),
        zeros where a position is -1: only those frames are decoded."""
        if self.clips != 1:
            raise ShardFormatError(f"holds {self.clips} clips, a whole sequence holds 1")
        raw = np.frombuffer(self.frames[0], np.uint8).reshape(self.n_frames, self.h, self.w, 3) \
            if self.encoding == "raw" else None
        for i, position in enumerate(int(p) for p in positions):
            if position == PADDED:
                out[i] = 0
            elif raw is not None:
                out[i] = raw[position]
            else:
                frame = decode_frame(self.frames[position])
                if frame.shape != (self.h, self.w, 3):
                    raise ShardFormatError(f"frame {position} is {frame.shape}, expected {(self.h, self.w, 3)}")
                out[i] = frame

    def decode_clip(self, clip: int, out: np.ndarray) -> None:
        """Decode stored clip ``clip`` into ``out`` (uint8 ``[T, H, W, 3]``)."""
        if not 0 <= clip < self.clips:
            raise ShardFormatError(f"has {self.clips} clips, clip {clip} was asked for")
        if self.encoding == "raw":
            out[...] = np.frombuffer(self.frames[0], np.uint8).reshape(self.clips, self.n_frames, self.h, self.w, 3)[clip]
            return
        for i in range(self.n_frames):
            frame = decode_frame(self.frames[clip * self.n_frames + i])
            if frame.shape != (self.h, self.w, 3):
                raise ShardFormatError(f"frame {clip * self.n_frames + i} is {frame.shape}, expected {(self.h, self.w, 3)}")
            out[i] = frame


def video_id_of(serialized: bytes) -> str:
    """The video id of one serialized Example, no frame decoded: a protobuf parse, about 4 us for a
    120 KB record here (a byte search per wanted id cost 8 ms a record with 600 ids wanted)."""
    try:
        values = Example.FromString(serialized).features.feature["video_id"].bytes_list.value
    except ProtoDecodeError as exc:
        raise ShardFormatError(f"record is not a valid tf.train.Example: {exc}") from None
    if len(values) != 1:
        raise ShardFormatError(f"record holds {len(values)} values of 'video_id', expected 1")
    return values[0].decode("utf-8")


def parse_example(serialized: bytes, encoding: str) -> ClipRecord:
    """Parse one serialized Example of an output stored with ``encoding`` into a :class:`ClipRecord`."""
    parsed = _Parsed(serialized, encoding)
    frames = np.empty((parsed.clips, parsed.n_frames, parsed.h, parsed.w, 3), np.uint8)
    for clip in range(parsed.clips):
        parsed.decode_clip(clip, frames[clip])
    indices = np.asarray(parsed.feature["frame_indices"].int64_list.value, np.int64)
    if indices.size != parsed.clips * parsed.n_frames:
        raise ShardFormatError(f"record holds {indices.size} frame indices for {parsed.clips}x{parsed.n_frames} frames")
    source_fps, source_frames = parsed.timing()
    return ClipRecord(video_id=parsed.text("video_id"), label=parsed.scalar("label"),
                      label_name=parsed.text("label_name"), frames=frames,
                      frame_indices=indices.reshape(parsed.clips, parsed.n_frames),
                      source_fps=source_fps, source_frames=source_frames, frame_times=parsed.frame_times())


def parse_clip_into(serialized: bytes, encoding: str, out: np.ndarray, *, clip: int | None = None,
                    clip_draw: float = 0.0, whole: ClipSpec | None = None) -> tuple[int, str]:
    """Decode one clip of one Example into ``out`` (uint8 ``[T, H, W, 3]``, preallocated); return its label and video id.

    The parse of :func:`parse_example` for readers that need one clip per epoch: only that clip's
    frames are decoded.  ``clip`` picks a stored clip; ``None`` picks ``int(clip_draw * num_clips)``
    (``clip_draw`` in [0, 1)).  A record whose clips are not ``out``'s shape raises ShardFormatError.

    ``whole`` (the output's clip spec, ``all`` sampling) reads a record that holds a whole
    sequence: :func:`vidshard.sampling.draw_stored` picks ``out``'s frames from it, keyed by
    ``clip_draw`` (a fresh clip for every new draw) when ``clip`` is None, the centred evaluation
    clip otherwise; only the drawn frames are decoded.
    """
    parsed = _Parsed(serialized, encoding)
    if whole is not None:
        if (parsed.h, parsed.w) != out.shape[1:3] or parsed.clips != 1 or parsed.n_frames < 1:
            raise ShardFormatError(f"stores {parsed.clips} sequences of {(parsed.n_frames, parsed.h, parsed.w)} frames, "
                                   f"dataset_info.json says one sequence of {tuple(out.shape[1:3])} frames")
        key = None if clip is not None else int(clip_draw * 2**53)
        video_id = parsed.text("video_id")
        parsed.decode_positions(draw_stored(video_id, parsed.n_frames, whole, key), out)
        return parsed.scalar("label"), video_id
    if (parsed.n_frames, parsed.h, parsed.w) != out.shape[:3] or parsed.clips < 1:
        raise ShardFormatError(f"stores {parsed.clips} clips of {(parsed.n_frames, parsed.h, parsed.w)} frames, "
                               f"dataset_info.json says clips of {tuple(out.shape[:3])}")
    chosen = min(int(clip_draw * parsed.clips), parsed.clips - 1) if clip is None else clip
    parsed.decode_clip(chosen, out)
    return parsed.scalar("label"), parsed.text("video_id")


def tf_feature_spec(names: Iterable[str] = tuple(FEATURES)) -> dict[str, Any]:
    """The ``tf.io.parse_single_example`` spec of the features ``names`` (imports TensorFlow)."""
    import tensorflow as tf

    dtypes = {"string": tf.string, "int64": tf.int64, "float": tf.float32}
    table = features_of(timing=True, frame_times=True)
    spec = {}
    for name in names:
        entry = table[name]
        dtype = dtypes[entry["dtype"]]
        spec[name] = tf.io.VarLenFeature(dtype) if entry["kind"] == "var_len" else tf.io.FixedLenFeature([], dtype)
    return spec
