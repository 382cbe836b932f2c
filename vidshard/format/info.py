"""``dataset_info.json``: what an output holds and how it was made, written last to mark it complete.

Readers start here (:func:`load_info`); the shard contract it describes (features, file format,
encoding) is defined in :mod:`vidshard.format.schema` and :mod:`vidshard.format.naming`.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from vidshard.errors import ShardFormatError
from vidshard.format.schema import FEATURES

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
