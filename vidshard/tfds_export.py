"""TensorFlow Datasets metadata for a vidshard output, so ``tfds.builder_from_directory`` reads it.

TFDS reads a dataset from a folder that holds *its* ``dataset_info.json`` and ``features.json``.
vidshard's output already has a ``dataset_info.json`` of another schema (the shard contract other
tools read), so the TFDS metadata goes into a folder of its own, by default ``DATA_DIR/tfds``.
TFDS's public ``tfds.folder_dataset.write_metadata`` writes it, and TFDS finds the data files in
the folder of its metadata, so that folder holds each shard under its name: locally a relative
symbolic link (nothing is copied); in ``s3://`` or ``gs://``, which have no links, a copy the
store makes itself (no shard byte passes through this machine; the store holds the shards twice).
The TFDS features are declared over the Example keys the shards already hold, so TFDS parses the
existing bytes:

============== ===================================================================================
feature        TFDS feature
============== ===================================================================================
frames         ``Video`` of ``clips*T`` JPEG/PNG frames ``[clips*T, H, W, 3]`` uint8; raw encoding:
               ``Tensor(shape=(clips*T, H, W, 3), dtype=uint8, encoding="bytes")`` (the one bytes
               entry, decoded by TFDS into the same array)
label          ``ClassLabel`` with vidshard's class names
label_name,    ``Text``
video_id
frame_indices  ``Tensor(shape=(clips*T,), dtype=int64)``
num_clips, ... ``Scalar(int64)``
============== ===================================================================================

``supervised_keys`` is ``("frames", "label")``, so ``as_supervised=True`` gives (video, label).
TFDS decodes JPEG with TensorFlow's default IDCT, vidshard's readers with the accurate one
(OpenCV's, ``dct_method="INTEGER_ACCURATE"``), so JPEG pixels differ by a few levels;
``as_dataset(..., decoders=exact_decoders("jpeg"))`` gives vidshard's pixels exactly.
An ArrayRecord output (``--format array_record``) is declared as TFDS's ``array_record`` file
format, which TFDS reads by index: ``builder.as_data_source(split)``, not ``as_dataset``.
TFDS's TFRecord reader has no compression option: gzip-compressed outputs are refused.  Importing
this module imports TensorFlow Datasets (an optional extra: ``pip install 'vidshard[tfds]'``).
"""
from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from vidshard.errors import VidshardError
from vidshard.format import storage
from vidshard.format.info import DatasetInfo, load_info
from vidshard.format.splits import split_files

try:
    import tensorflow_datasets as tfds
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("vidshard.tfds_export needs TensorFlow Datasets: pip install 'vidshard[tfds]'") from exc

#: Folder (inside the vidshard output) that ``export_tfds`` writes by default.
DEFAULT_FOLDER = "tfds"
#: The dataset name TFDS shows (``builder.info.name``).
DATASET_NAME = "vidshard"
#: vidshard's shard names, ``{split}-SSSSS-of-NNNNN.{suffix}``, in TFDS's template language.
SHARD_TEMPLATE = "{SPLIT}-{SHARD_X_OF_Y}.{FILEFORMAT}"
#: What ``write_metadata`` writes into the folder: TFDS's metadata, and the one ClassLabel's names.
INFO_NAME = "dataset_info.json"
METADATA_FILES = (INFO_NAME, "features.json", "label.labels.txt")
#: Shard copies requested at once from an object store (each one a single request the store carries out).
COPY_THREADS = 8
#: TFDS's file suffix (which names its file format) of each vidshard file format.
_SUFFIX = {"tfrecord": "tfrecord", "array_record": "array_record"}


def tfds_features(info: DatasetInfo) -> "tfds.features.FeaturesDict":
    """TFDS features over the Example keys of vidshard's shards (see the module docstring)."""
    n_frames, h, w, c = info.clip_shape
    counts = {info.clip.clips_in(split) for split in info.splits}
    frames = counts.pop() * n_frames if len(counts) == 1 else None  # evaluation clips: a count per split
    if info.whole:  # all sampling: every video's sequence has its own length, as TFDS's own ucf101
        frames = None
    shape = (frames, h, w, c)
    if info.encoding == "raw":
        video = tfds.features.Tensor(shape=shape, dtype=np.uint8, encoding="bytes",
                                     doc="clips*T frames, clips concatenated (one raw uint8 bytes entry)")
    else:
        video = tfds.features.Video(shape=shape, encoding_format=info.encoding,
                                    doc="clips*T frames, clips concatenated in order")
    return tfds.features.FeaturesDict({
        "frames": video,
        "label": tfds.features.ClassLabel(names=info.class_names, doc="index into the class names"),
        "label_name": tfds.features.Text(doc="class name"),
        "video_id": tfds.features.Text(doc="member name in the source"),
        "frame_indices": tfds.features.Tensor(shape=(frames,), dtype=np.int64,
                                              doc="source frame of every stored frame, -1 where padded"),
        **{name: tfds.features.Scalar(dtype=np.int64, doc=doc) for name, doc in (
            ("num_clips", "clips stored for this video"), ("num_frames", "frames per clip"),
            ("height", "frame height"), ("width", "frame width"))},
        **({"source_fps": tfds.features.Scalar(dtype=np.float32, doc="the source video's frame rate"),
            "source_frames": tfds.features.Scalar(dtype=np.int64, doc="frames the source video's stream holds")}
           if info.clip.needs_timing else {}),
        **({"frame_times": tfds.features.Tensor(shape=(frames,), dtype=np.float32,
                                                doc="seconds of every stored frame, -1 where padded")}
           if "frame_times" in (info.features or {}) else {}),
    })


def exact_decoders(encoding: str) -> dict | None:
    """``decoders=`` for ``as_dataset`` that decode frames bit-exactly as vidshard's readers do.

    Only JPEG needs one (PNG and raw decode exactly anyway): TFDS's ``Video`` decodes with
    ``tf.image.decode_image``, whose JPEG IDCT is TensorFlow's fast default, not OpenCV's.
    """
    if encoding != "jpeg":
        return None
    import tensorflow as tf  # only here: importing this module must not start TensorFlow

    @tfds.decode.make_decoder()
    def accurate_jpeg(serialized: "tf.Tensor", feature: object) -> "tf.Tensor":
        return tf.io.decode_jpeg(serialized, channels=3, dct_method="INTEGER_ACCURATE")

    return {"frames": accurate_jpeg()}


def _description(info: DatasetInfo) -> str:
    return (f"vidshard output of {info.source}: {info.clip.describe()} per video, "
            f"{info.clip.height}x{info.clip.width}, {info.encoding}; "
            f"split by {info.split_policy} ({info.split_request}), seed {info.seed}; "
            f"vidshard {info.vidshard_version}, format {info.format_version}.")


def export_tfds(data_dir: str, to: str | None = None) -> str:
    """Write TFDS's metadata for the vidshard output ``data_dir`` into ``to``; return that folder.

    ``to`` defaults to ``data_dir/tfds``.  TFDS reads the data files from the folder of its own
    metadata, so that folder must hold the shards under their names:

    - locally, one relative symbolic link per shard file (``train-00000-of-00002.tfrecord ->
      ../train-00000-of-00002.tfrecord``), so the two folders can move together, not apart;
    - in object storage (``s3://``, ``gs://``), which has no links, a copy of each shard object
      made by the store itself (:func:`vidshard.format.storage.copy`: S3 CopyObject, GCS rewrite):
      no shard byte passes through this machine, but the store then holds the shards twice.

    The metadata is written by TFDS's public ``tfds.folder_dataset.write_metadata`` (for a store:
    into a local temporary folder, then uploaded, ``dataset_info.json`` last).  Refuses
    (:class:`VidshardError`, one line, before any work) gzip-compressed outputs, which TFDS cannot
    read, an existing ``to`` that holds anything but an earlier export, and a ``to`` in another
    store than ``data_dir``.  Running it again gives the same folder.
    """
    if storage.is_remote(data_dir) or (to is not None and storage.is_remote(to)):
        return _export_in_store(data_dir, to)
    info = _checked_info(data_dir)
    to = to if to is not None else os.path.join(data_dir, DEFAULT_FOLDER)
    paths = _shard_paths(data_dir, info)
    links = {os.path.basename(path): os.path.relpath(path, to) for path in paths}
    if os.path.isdir(to):
        others = [name for name in os.listdir(to) if name not in METADATA_FILES
                  and not (name in links and os.path.islink(os.path.join(to, name)))]
        if others:
            raise VidshardError(f"{to} holds other files than an earlier TFDS export; choose another `to`")
    os.makedirs(to, exist_ok=True)
    for name, target in links.items():
        link = os.path.join(to, name)
        if os.path.islink(link):
            os.remove(link)
        os.symlink(target, link)
    _write_metadata(to, info)
    return to


def _checked_info(data_dir: str) -> DatasetInfo:
    info = load_info(data_dir)
    if info.compression != "none":
        raise VidshardError(f"{data_dir} has {info.compression}-compressed shards, which TFDS cannot read: "
                            f"shard again with `compression` none")
    return info


def _shard_paths(data_dir: str, info: DatasetInfo) -> list[str]:
    """Every shard file of every split (checked to exist)."""
    return [path for split in info.splits for path in split_files(data_dir, split, info)[1]]


def _write_metadata(folder: str, info: DatasetInfo) -> None:
    """TFDS's metadata files into the local ``folder``, which holds a file named as each shard
    (``write_metadata`` lists the folder for the files its template names)."""
    template = tfds.core.ShardedFileTemplate(data_dir=folder, template=SHARD_TEMPLATE, dataset_name=DATASET_NAME)
    split_infos = []
    for split, spl in info.splits.items():
        # TFDS finds the files by its template: it must name exactly vidshard's files, in order.
        split_template = template.replace(split=split, filetype_suffix=_SUFFIX[info.file_format])
        named = [os.path.basename(path) for path in split_template.sharded_filepaths(len(spl.shards))]
        if named != list(spl.shards):
            raise VidshardError(f"split {split}: TFDS would look for {named[0]}..., the shards are {spl.shards[0]}...")
        split_infos.append(tfds.core.SplitInfo(name=split, shard_lengths=list(spl.shard_lengths),
                                               num_bytes=spl.num_bytes, filename_template=split_template))
    tfds.folder_dataset.write_metadata(
        data_dir=folder, features=tfds_features(info), split_infos=split_infos, version=f"{info.format_version}.0.0",
        filename_template=template, check_data=False,  # the caller reads the data; TFDS's check would start TF
        description=_description(info), supervised_keys=("frames", "label"))


def _export_in_store(data_dir: str, to: str | None) -> str:
    """:func:`export_tfds` for an output in object storage: the store copies the shards into ``to``.

    A relative template (``../{SPLIT}-...``) cannot replace the copies: TFDS joins it to the folder
    without normalising (``gs://b/out/tfds/../train-...``), and an object store has no folders to
    go up from, so that is another, missing object's name.
    """
    to = (to if to is not None else storage.join(data_dir, DEFAULT_FOLDER)).rstrip("/")
    if storage.scheme_of(to) != storage.scheme_of(data_dir):
        raise VidshardError(f"{to} is not in the store of {data_dir}: TFDS reads the shards from the folder of its "
                            "metadata, which the store fills by copying them, so the two must be in one store "
                            "(the default is DATA_DIR/tfds)")
    if to == data_dir.rstrip("/"):
        raise VidshardError(f"{to} is the output itself: TFDS's dataset_info.json would replace vidshard's; "
                            "choose another `to` (the default is DATA_DIR/tfds)")
    info = _checked_info(data_dir)
    sources = _shard_paths(data_dir, info)
    names = [source.rsplit("/", 1)[1] for source in sources]
    storage.check_bucket(to)
    found = storage.list_names(to)
    if any(name not in METADATA_FILES and name not in names for name in found):
        raise VidshardError(f"{to} holds other objects than an earlier TFDS export; choose another `to`")
    with tempfile.TemporaryDirectory(prefix="vidshard-tfds-") as local:
        for name in names:  # empty stand-ins, for write_metadata's listing; never uploaded
            open(os.path.join(local, name), "wb").close()
        _write_metadata(local, info)  # first: it checks that TFDS's template names the shards
        if INFO_NAME in found:  # until the new one is written, the folder reads as unfinished
            storage.delete(storage.join(to, INFO_NAME))
        with ThreadPoolExecutor(COPY_THREADS) as pool:  # every copy is a request the store carries out
            list(pool.map(storage.copy, sources, [storage.join(to, name) for name in names]))
        for name in sorted(set(os.listdir(local)) - set(names), key=lambda name: (name == INFO_NAME, name)):
            with open(os.path.join(local, name), "rb") as fh:
                storage.write_bytes(storage.join(to, name), fh.read())
    return to
