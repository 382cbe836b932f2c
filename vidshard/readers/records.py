"""One record's decoding and the element every TF-free reader yields: written once, for all of them.

Every reader of :mod:`vidshard.readers` yields the same element: ``(frames, label)``, or with
``with_ids=True`` ``(frames, label, video_id)``; ``frames`` uint8 ``[T, H, W, 3]`` as stored (or
``layout``'s channels-first float32, below), ``label`` int64, ``video_id`` the video's id (``str``
here, ``bytes`` in a ``tf.string`` from tf.data); batches stack each part on a leading axis.

- :func:`decode_into` parses one Example and decodes only the chosen clip's frames
  (:func:`vidshard.format.schema.parse_clip_into`) into a preallocated batch slot, checks the
  label against ``dataset_info.json`` and applies the clip's augmentation draw
  (:mod:`vidshard.augment`); :func:`decode_one` is the same for one record (random access).
- :data:`LAYOUTS` / :func:`to_layout`: ``THWC`` uint8 as stored, or ``TCHW`` / ``CTHW`` float32
  in [0, 1] (torchvision's video models take ``[C, T, H, W]``), for every TF-free reader.

NumPy, protobuf and OpenCV only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidshard import augment as augmentation
from vidshard.errors import ShardFormatError
from vidshard.format.info import DatasetInfo
from vidshard.format.schema import parse_clip_into

#: Clip layouts: the stored ``THWC`` uint8, or channels-first float32 in [0, 1].
LAYOUTS = ("THWC", "TCHW", "CTHW")


def check_layout(layout: str) -> None:
    """Refuse a ``layout`` not in :data:`LAYOUTS`."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")


def to_layout(frames: np.ndarray, layout: str) -> np.ndarray:
    """``[..., T, H, W, C]`` uint8 frames in ``layout``: unchanged for ``THWC``, else float32 in [0, 1], permuted."""
    if layout == "THWC":
        return frames
    lead = frames.ndim - 4  # a batch dimension, or none
    t, h, w, c = (lead + i for i in range(4))
    order = (t, c, h, w) if layout == "TCHW" else (c, t, h, w)
    out = np.empty(tuple(frames.shape[i] for i in (*range(lead), *order)), np.float32)
    np.divide(frames.transpose(*range(lead), *order), np.float32(255.0), out=out, dtype=np.float32)
    return out


def check_clip_choice(clips: str | int, stored: int, modes: tuple[str, ...]) -> None:
    """Refuse a reader's ``clips`` that is neither one of ``modes`` nor a stored clip's index."""
    if clips not in modes and not (isinstance(clips, int) and 0 <= clips < stored):
        raise ValueError(f"clips must be {' or '.join(map(repr, modes))} or a clip index in [0, {stored}), "
                         f"not {clips!r}")


@dataclass(frozen=True)
class Item:
    """One record to decode, with the choices made for it before decoding (in a reader's sequential order)."""

    path: str  # where the record is, for error messages
    index: int  # its record index there
    serialized: bytes
    clip: int | None  # the clip to decode, or None: pick one with ``clip_draw``
    clip_draw: float  # uniform in [0, 1)
    augment: augmentation.Draw | None = None  # applied after decoding (training only)


@dataclass
class Batch:
    """Preallocated outputs of a batch: ``frames`` uint8 ``[B, T, H, W, 3]``, ``labels`` int64 ``[B]``, ``video_ids``."""

    frames: np.ndarray
    labels: np.ndarray
    video_ids: np.ndarray

    @classmethod
    def empty(cls, size: int, frame_shape: tuple[int, ...]) -> "Batch":
        return cls(np.empty((size, *frame_shape), np.uint8), np.empty((size,), np.int64), np.empty((size,), object))

    def element(self, layout: str, with_ids: bool, single: bool) -> tuple:
        """The reader's element: ``(frames, labels[, video_ids])`` in ``layout``; ``single``: of slot 0 alone."""
        frames, labels, ids = (self.frames[0], self.labels[0], self.video_ids[0]) if single else \
            (self.frames, self.labels, self.video_ids)
        frames = to_layout(frames, layout)
        return (frames, labels, ids) if with_ids else (frames, labels)


def decode_into(item: Item, info: DatasetInfo, batch: Batch, slot: int) -> None:
    """Parse one Example and decode one of its clips into ``batch``'s ``slot``.

    :func:`vidshard.format.schema.parse_clip_into` decodes only the chosen clip's frames (a
    video stored with 3 clips costs one clip's decode per epoch; of a whole sequence, ``all``
    sampling, the drawn clip's frames) and checks its shape against ``dataset_info.json``; a bad
    record raises :class:`ShardFormatError` naming its file and record.  The item's augmentation,
    if any, is applied to the decoded clip in place.
    """
    try:
        label, video_id = parse_clip_into(item.serialized, info.encoding, batch.frames[slot], clip=item.clip,
                                          clip_draw=item.clip_draw, whole=info.clip if info.whole else None)
        if not 0 <= label < info.num_classes:
            raise ShardFormatError(f"label {label} is not in [0, {info.num_classes})")
        batch.labels[slot] = label
        batch.video_ids[slot] = video_id
        if item.augment is not None:
            augmentation.apply(batch.frames[slot], item.augment)
    except ShardFormatError as exc:
        raise ShardFormatError(f"{item.path}: record {item.index}: {exc}") from None


def decode_one(serialized: bytes, info: DatasetInfo, *, clip: int | None = None, clip_draw: float = 0.0,
               where: str = "", index: int = 0) -> Batch:
    """One Example's clip as a one-slot :class:`Batch`: :func:`decode_into` for one record.

    ``clip`` picks a stored clip; ``None`` picks ``int(clip_draw * num_clips)`` (``clip_draw`` in
    [0, 1)).  ``where`` and ``index`` name the record in errors.  For random-access readers
    (:mod:`vidshard.readers.random_access`), which decode one record at a time.
    """
    batch = Batch.empty(1, info.clip_shape)
    decode_into(Item(where, index, serialized, clip, clip_draw), info, batch, 0)
    return batch
