"""``dataset_info.json``: what an output holds and how it was made, written last to mark it complete.

Readers start here (:func:`load_info`).  The clip spec is one value (``clip``: the
:class:`~vidshard.sampling.ClipSpec` the shards were cut with, its seed included), and
:attr:`DatasetInfo.clip_shape` is the one place the shape of a stored clip is spelt out.
``format_version`` is checked on read: this code reads versions 1 to :data:`FORMAT_VERSION` and
refuses anything else with one clear error.  It writes the lowest version that describes the
output: 3 for clips cut the tutorial's way (so those outputs keep their bytes), 4 when the clip
spec uses segment sampling or evaluation clips, which an older reader must not misread, 5 when
it uses time sampling, whose records store every frame's time (``frame_times``), 6 when it uses
``all`` sampling, whose records hold a variable-length sequence of frames (one "clip" of
``num_frames`` frames, unpadded, with their times) from which readers draw clips of the clip
spec's ``n_frames``.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from vidshard.errors import ShardFormatError
from vidshard.format import storage
from vidshard.format.file_adapters import FILE_FORMATS
from vidshard.format.schema import features_of
from vidshard.sampling import ClipSpec

INFO_FILE = "dataset_info.json"
ERRORS_FILE = "errors.jsonl"
#: Shard file formats: TFRecord (the default; sequential reads) or ArrayRecord (random access).
#: The newest ``format_version``: 5 is 4 plus ``frame_times`` in the records of time-sampled clips.
#: Version 4: 3 plus the clip spec's ``sampling``, ``fps`` and ``eval_clips``,
#: and records that store their video's timing (``source_fps``, ``source_frames``) when the clips
#: depend on it.  Version 3: the clip spec nested as ``clip`` (with its seed), ``file_format``
#: always present.
FORMAT_VERSION = 6
#: The version of outputs of ``all`` sampling: records of variable length, clips drawn when reading.
WHOLE_VERSION = 6
#: The version of outputs whose records store ``frame_times``: time sampling's.
FRAME_TIMES_VERSION = 5
#: The clip spec's fields that version 3 lacks; their ClipSpec defaults mean "as in version 3".
_V4_CLIP_FIELDS = ("sampling", "fps", "eval_clips")
#: The clip spec's fields that versions before 6 lack (``all`` sampling's read-time rule).
_V6_CLIP_FIELDS = ("draw",)
#: Earlier versions, read but no longer written: the clip spec's fields flat at the top level and
#: no clip seed (the plan's ``seed`` cut the clips); 1 had TFRecord shards and no ``file_format``
#: key, 2 had ArrayRecord shards and ``file_format``.
_FLAT_VERSIONS = {1: "tfrecord", 2: "array_record"}
_CLIP_FIELDS = ("n_frames", "frame_step", "height", "width", "clips_per_video")


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
    clip: ClipSpec
    encoding: str
    quality: int
    compression: str
    split_policy: str
    split_request: str
    seed: int
    source: str
    num_failed: int
    vidshard_version: str
    file_format: str = "tfrecord"
    format_version: int | None = None  #: None: the version this clip spec is written with
    features: dict[str, dict[str, str]] | None = None  #: None: the records' table for this clip spec
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format_version is None:
            self.format_version = version_for(self.clip)
        if self.features is None:
            self.features = features_of(self.clip.needs_timing, stores_frame_times(self.clip))
        if self.file_format not in FILE_FORMATS:
            raise ValueError(f"file_format {self.file_format!r} is not one of {', '.join(FILE_FORMATS)}")
        if self.format_version in _FLAT_VERSIONS and self.file_format != _FLAT_VERSIONS[self.format_version]:
            raise ValueError(f"format_version {self.format_version} outputs hold "
                             f"{_FLAT_VERSIONS[self.format_version]} shards, not {self.file_format}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def whole(self) -> bool:
        """Whether records hold whole sequences (``all`` sampling) that readers draw clips from."""
        return self.clip.sampling == "all"

    @property
    def clip_shape(self) -> tuple[int, int, int, int]:
        """``(T, H, W, 3)``: the shape of one stored clip, as readers yield it and the model takes it."""
        return (self.clip.n_frames, self.clip.height, self.clip.width, 3)

    def to_json(self) -> str:
        version = version_for(self.clip)
        if self.format_version != version:
            raise ValueError(f"this vidshard writes this clip spec as format_version {version}, "
                             f"not {self.format_version}")
        data = asdict(self)
        if version < WHOLE_VERSION:
            for name in _V6_CLIP_FIELDS + (_V4_CLIP_FIELDS if version == 3 else ()):
                del data["clip"][name]
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DatasetInfo":
        """Read ``format_version`` 3 to 6, or the flat layout of versions 1 and 2."""
        data = dict(data)
        version = data.get("format_version")
        if version in _FLAT_VERSIONS:
            # Before the clip seed was recorded, the CLI cut clips with the plan's seed.
            data["clip"] = {name: data.pop(name) for name in _CLIP_FIELDS} | {"seed": data["seed"]}
            data.setdefault("file_format", "tfrecord")
        elif version not in (3, 4, FRAME_TIMES_VERSION, WHOLE_VERSION):
            known = ", ".join(map(str, range(1, FORMAT_VERSION + 1)))
            raise ShardFormatError(f"format_version {version} is not one this vidshard reads ({known}): "
                                   f"written by a newer vidshard?")
        data["splits"] = {name: SplitInfo(**split) for name, split in data["splits"].items()}
        data["clip"] = ClipSpec(**data["clip"])  # fields an older version lacks take their defaults
        return cls(**data)

    def write(self, data_dir: str) -> str:
        """Write ``dataset_info.json`` atomically (temp file, then rename): it marks the output complete."""
        path = os.path.join(data_dir, INFO_FILE)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(self.to_json())
        os.replace(tmp, path)
        return path


def version_for(clip: ClipSpec) -> int:
    """The ``format_version`` an output cut with ``clip`` is written as (see the module docstring)."""
    if clip.sampling == "all":
        return WHOLE_VERSION
    if stores_frame_times(clip):
        return FRAME_TIMES_VERSION
    tutorial = ClipSpec()
    uses_v4 = any(getattr(clip, name) != getattr(tutorial, name) for name in _V4_CLIP_FIELDS)
    return 4 if uses_v4 else 3


def stores_frame_times(clip: ClipSpec) -> bool:
    """Whether records cut with ``clip`` store each frame's time: those of time and all sampling."""
    return clip.sampling in ("time", "all")


def load_info(data_dir: str) -> DatasetInfo:
    """Read ``dataset_info.json`` of a shard directory (local, ``s3://`` or ``gs://``), with a clear error
    when it is missing or bad."""
    path = storage.join(data_dir, INFO_FILE)
    if not storage.exists(path):
        raise ShardFormatError(f"{data_dir} has no {INFO_FILE}: not a vidshard output, or its run did not finish")
    try:
        return DatasetInfo.from_dict(json.loads(storage.read_text(path)))
    except ShardFormatError as exc:
        raise ShardFormatError(f"{path}: {exc}") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise ShardFormatError(f"{path} is not a valid dataset_info.json: {exc}") from None
