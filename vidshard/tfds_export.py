"""TensorFlow Datasets metadata for a vidshard output, so ``tfds.builder_from_directory`` reads it.

TFDS reads a dataset from a folder that holds *its* ``dataset_info.json`` and ``features.json``.
vidshard's output already has a ``dataset_info.json`` of another schema (the shard contract other
tools read), so the TFDS metadata goes into a folder of its own, by default ``DATA_DIR/tfds``.
TFDS's public ``tfds.folder_dataset.write_metadata`` writes it, and finds the data files in the
folder it writes to, so that folder holds a relative symbolic link to each shard file (nothing
is copied), and the TFDS features are declared over the Example keys the shards already hold,
so TFDS parses the existing bytes:

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

    ``to`` defaults to ``data_dir/tfds``.  The shards stay where they are: ``to`` holds, beside
    TFDS's metadata, one relative symbolic link per shard file (``train-00000-of-00002.tfrecord ->
    ../train-00000-of-00002.tfrecord``), so the two folders can move together, not apart.  The
    metadata is written by TFDS's public ``tfds.folder_dataset.write_metadata``, which finds the
    data files in the folder it writes to.  Refuses (:class:`VidshardError`, one line)
    gzip-compressed outputs, which TFDS cannot read, and an existing ``to`` that holds anything
    but an earlier export.
    """
    if storage.is_remote(data_dir) or (to is not None and storage.is_remote(to)):
        # TFDS reads the data files from the folder of its own dataset_info.json; the output's is vidshard's, so
        # the TFDS folder is another one that links to the shards, and object stores have no links (see sources.md).
        raise VidshardError(f"{to if to is not None and storage.is_remote(to) else data_dir}: export-tfds writes "
                            "beside a local output only: TFDS reads the shards from the folder of its own "
                            "dataset_info.json, which links to them, and object stores have no links; read an "
                            "output in object storage with vidshard.readers.numpy_reader.ShardReader (or Grain, PyTorch, "
                            "tf.data on gs://), or copy it to a local folder first")
    info = load_info(data_dir)
    if info.compression != "none":
        raise VidshardError(f"{data_dir} has {info.compression}-compressed shards, which TFDS cannot read: "
                            f"shard again with `compression` none")
    to = to if to is not None else os.path.join(data_dir, DEFAULT_FOLDER)
    paths = {split: split_files(data_dir, split, info)[1] for split in info.splits}
    links = {os.path.basename(path): os.path.relpath(path, to) for split_paths in paths.values() for path in split_paths}
    if os.path.isdir(to):
        earlier = {"dataset_info.json", "features.json", "label.labels.txt"}
        others = [name for name in os.listdir(to) if name not in earlier
                  and not (name in links and os.path.islink(os.path.join(to, name)))]
        if others:
            raise VidshardError(f"{to} holds other files than an earlier TFDS export; choose another `to`")
    os.makedirs(to, exist_ok=True)
    for name, target in links.items():
        link = os.path.join(to, name)
        if os.path.islink(link):
            os.remove(link)
        os.symlink(target, link)
    template = tfds.core.ShardedFileTemplate(data_dir=to, template=SHARD_TEMPLATE, dataset_name=DATASET_NAME)
    split_infos = []
    for split, spl in info.splits.items():
        # TFDS finds the files by its template: it must name exactly vidshard's files, in order.
        split_template = template.replace(split=split, filetype_suffix=_SUFFIX[info.file_format])
        named = [os.path.basename(path) for path in split_template.sharded_filepaths(len(spl.shards))]
        if named != [os.path.basename(path) for path in paths[split]]:
            raise VidshardError(f"split {split}: TFDS would look for {named[0]}..., the shards are {spl.shards[0]}...")
        split_infos.append(tfds.core.SplitInfo(name=split, shard_lengths=list(spl.shard_lengths),
                                               num_bytes=spl.num_bytes, filename_template=split_template))
    tfds.folder_dataset.write_metadata(
        data_dir=to, features=tfds_features(info), split_infos=split_infos, version=f"{info.format_version}.0.0",
        filename_template=template, check_data=False,  # the caller reads the data; TFDS's check would start TF
        description=_description(info), supervised_keys=("frames", "label"))
    return to
