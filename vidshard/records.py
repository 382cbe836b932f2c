"""The shard contract: the Example format of one video's clips, and ``dataset_info.json``.

Other tools (the tf.data reader, the TF-free reader, ``inspect``) rely on these names, so they
are defined once, here.  Encoding and parsing use protobuf and OpenCV only (no TensorFlow).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np

from vidshard.errors import ShardFormatError
from vidshard.example_proto import Example

ENCODINGS = ("jpeg", "png", "raw")
INFO_FILE = "dataset_info.json"
ERRORS_FILE = "errors.jsonl"
#: Shard file formats: TFRecord (the default; sequential reads) or ArrayRecord (random access).
FILE_FORMATS = ("tfrecord", "array_record")
#: ``format_version`` of an output with TFRecord shards; its ``dataset_info.json`` has no ``file_format``
#: key, exactly as before ArrayRecord existed.
FORMAT_VERSION = 1
#: ``format_version`` of an output with ArrayRecord shards: ``dataset_info.json`` adds ``file_format``.
ARRAY_RECORD_FORMAT_VERSION = 2
_VERSION_OF_FORMAT = {"tfrecord": FORMAT_VERSION, "array_record": ARRAY_RECORD_FORMAT_VERSION}

#: Feature name -> (kind, dtype, meaning); ``dataset_info.json`` carries it so readers need no code.
FEATURES: dict[str, dict[str, str]] = {
    "frames": {"kind": "var_len", "dtype": "string",
               "doc": "jpeg/png: one encoded RGB image per frame, clips in order; raw: one entry of clips*T*H*W*3 uint8"},
    "label": {"kind": "fixed_len", "dtype": "int64", "doc": "index into class_names"},
    "label_name": {"kind": "fixed_len", "dtype": "string", "doc": "class name"},
    "video_id": {"kind": "fixed_len", "dtype": "string", "doc": "member name in the source"},
    "frame_indices": {"kind": "var_len", "dtype": "int64", "doc": "source frame of every stored frame, -1 where padded"},
    "num_clips": {"kind": "fixed_len", "dtype": "int64", "doc": "clips stored for this video"},
    "num_frames": {"kind": "fixed_len", "dtype": "int64", "doc": "frames per clip"},
    "height": {"kind": "fixed_len", "dtype": "int64", "doc": "frame height"},
    "width": {"kind": "fixed_len", "dtype": "int64", "doc": "frame width"},
}


@dataclass(frozen=True)
class ClipRecord:
    """One video's clips as stored: uint8 RGB ``frames[clips, T, H, W, 3]`` and their source indices."""

    video_id: str
    label: int
    label_name: str
    frames: np.ndarray
    frame_indices: np.ndarray

    def __post_init__(self) -> None:
        if self.frames.dtype != np.uint8 or self.frames.ndim != 5 or self.frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 [clips, T, H, W, 3], got {self.frames.dtype} {self.frames.shape}")
        if self.frame_indices.shape != self.frames.shape[:2]:
            raise ValueError(f"frame_indices shape {self.frame_indices.shape} != {self.frames.shape[:2]}")


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


def encode_example(record: ClipRecord, encoding: str = "jpeg", quality: int = 95) -> bytes:
    """Serialize one video's clips as a ``tf.train.Example`` (deterministic bytes)."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")
    clips, t, h, w, _ = record.frames.shape
    example = Example()
    feature = example.features.feature
    if encoding == "raw":
        feature["frames"].bytes_list.value.append(np.ascontiguousarray(record.frames).tobytes())
    else:
        feature["frames"].bytes_list.value.extend(
            encode_frame(frame, encoding, quality) for frame in record.frames.reshape(clips * t, h, w, 3)
        )
    feature["label"].int64_list.value.append(int(record.label))
    feature["label_name"].bytes_list.value.append(record.label_name.encode("utf-8"))
    feature["video_id"].bytes_list.value.append(record.video_id.encode("utf-8"))
    feature["frame_indices"].int64_list.value.extend(int(i) for i in record.frame_indices.reshape(-1))
    for name, value in (("num_clips", clips), ("num_frames", t), ("height", h), ("width", w)):
        feature[name].int64_list.value.append(int(value))
    return example.SerializeToString(deterministic=True)


def decode_example(serialized: bytes) -> ClipRecord:
    """Parse one serialized Example back into a :class:`ClipRecord` (TensorFlow not needed)."""
    try:
        example = Example.FromString(serialized)
    except Exception as exc:  # protobuf raises DecodeError; the message is all a user can act on
        raise ShardFormatError(f"record is not a valid tf.train.Example: {exc}") from None
    feature = example.features.feature
    missing = [name for name in FEATURES if name not in feature]
    if missing:
        raise ShardFormatError(f"record lacks features: {', '.join(missing)}")

    def scalar(name: str) -> int:
        return int(feature[name].int64_list.value[0])

    clips, t, h, w = (scalar(n) for n in ("num_clips", "num_frames", "height", "width"))
    values = feature["frames"].bytes_list.value
    if len(values) == 1 and len(values[0]) == clips * t * h * w * 3:
        frames = np.frombuffer(values[0], np.uint8).reshape(clips, t, h, w, 3)
    elif len(values) == clips * t:
        frames = np.stack([decode_frame(v) for v in values]).reshape(clips, t, h, w, 3)
    else:
        raise ShardFormatError(f"record holds {len(values)} frame entries for {clips}x{t} frames")
    indices = np.asarray(feature["frame_indices"].int64_list.value, np.int64)
    if indices.size != clips * t:
        raise ShardFormatError(f"record holds {indices.size} frame indices for {clips}x{t} frames")
    return ClipRecord(
        video_id=feature["video_id"].bytes_list.value[0].decode("utf-8"),
        label=scalar("label"),
        label_name=feature["label_name"].bytes_list.value[0].decode("utf-8"),
        frames=frames,
        frame_indices=indices.reshape(clips, t),
    )


@dataclass
class SplitInfo:
    """What one split holds: example count and its shard files (names relative to the output)."""

    num_examples: int
    shards: list[str]
    shard_lengths: list[int]
    num_bytes: int = 0


@dataclass
class DatasetInfo:
    """The contents of ``dataset_info.json``: everything needed to read and reproduce the shards."""

    class_names: list[str]
    splits: dict[str, SplitInfo]
    n_frames: int
    frame_step: int
    height: int
    width: int
    clips_per_video: int
    encoding: str
    quality: int
    compression: str
    split_policy: str
    split_request: str
    seed: int
    source: str
    num_failed: int
    vidshard_version: str
    format_version: int = FORMAT_VERSION
    features: dict[str, dict[str, str]] = field(default_factory=lambda: dict(FEATURES))
    extra: dict[str, Any] = field(default_factory=dict)
    #: ``tfrecord`` or ``array_record``; absent from the JSON of TFRecord outputs (format_version 1).
    file_format: str = "tfrecord"

    def __post_init__(self) -> None:
        if self.file_format not in FILE_FORMATS:
            raise ValueError(f"file_format {self.file_format!r} is not one of {', '.join(FILE_FORMATS)}")
        if self.format_version not in _VERSION_OF_FORMAT.values():
            raise ValueError(f"format_version {self.format_version} is not one this vidshard reads "
                             f"({', '.join(map(str, sorted(_VERSION_OF_FORMAT.values())))}): written by a newer vidshard?")
        if self.format_version == FORMAT_VERSION and self.file_format != "tfrecord":
            raise ValueError(f"format_version {FORMAT_VERSION} outputs hold TFRecord shards, not {self.file_format}")

    @staticmethod
    def version_for(file_format: str) -> int:
        """The ``format_version`` an output with shards of ``file_format`` is written with."""
        return _VERSION_OF_FORMAT[file_format]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_json(self) -> str:
        data = asdict(self)
        if self.format_version == FORMAT_VERSION:
            del data["file_format"]  # TFRecord outputs: the same dataset_info.json as before ArrayRecord
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DatasetInfo":
        """Read any supported ``format_version``; a missing ``file_format`` means TFRecord."""
        data = dict(data)
        data["splits"] = {name: SplitInfo(**split) for name, split in data["splits"].items()}
        return cls(**data)

    def write(self, directory: str) -> str:
        """Write ``dataset_info.json`` atomically (temp file, then rename): it marks the output complete."""
        path = os.path.join(directory, INFO_FILE)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(self.to_json())
        os.replace(tmp, path)
        return path


def load_info(directory: str) -> DatasetInfo:
    """Read ``dataset_info.json`` of a shard directory, with a clear error when it is missing or bad."""
    path = os.path.join(directory, INFO_FILE)
    if not os.path.exists(path):
        raise ShardFormatError(f"{directory} has no {INFO_FILE}: not a vidshard output, or its run did not finish")
    try:
        with open(path, encoding="utf-8") as fh:
            return DatasetInfo.from_dict(json.load(fh))
    except (ValueError, TypeError, KeyError) as exc:
        raise ShardFormatError(f"{path} is not a valid dataset_info.json: {exc}") from None
