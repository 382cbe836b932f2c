"""TFDS's own way to store every frame, on the same videos as :mod:`vidshard.bench.whole`.

``python -m vidshard.bench.tfds_ucf101 SOURCE DATA_DIR`` builds a TFDS dataset whose features are
those of TFDS's ``ucf101`` builder (``ucf101_1``: native size; ``Video(encoding_format="jpeg")``,
``ClassLabel``), one example per video of ``SOURCE/<class>/*.avi``, with TFDS's own builder,
writer and JPEG encoder (``tf.image.encode_jpeg``, quality 95, as vidshard's default).
``seconds`` runs from the process's start (imports included, as a ``vidshard shard`` run's wall
time) to the end of ``download_and_prepare``; reading the result back to count frames is not in it.  TFDS's
``ucf101`` decodes through FFmpeg from the official zip; this one decodes with OpenCV (no
network here), so only the storage side is TFDS's.  Prints one JSON line: seconds, bytes of the
TFRecord files, frames stored, examples.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import psutil
import tensorflow_datasets as tfds


def _frames(path: Path) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return np.stack(frames)


def builder_for(source: Path) -> type[tfds.core.GeneratorBasedBuilder]:
    """A builder over ``source``'s class folders, with TFDS ucf101's features."""
    classes = sorted(folder.name for folder in source.iterdir() if folder.is_dir())

    class Ucf101Like(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self) -> tfds.core.DatasetInfo:
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "video": tfds.features.Video((None, None, None, 3), encoding_format="jpeg"),
                "label": tfds.features.ClassLabel(names=classes)}))

        def _split_generators(self, dl_manager):  # noqa: ANN001 - TFDS's signature
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for path in sorted(source.glob("*/*.avi")):
                yield path.name, {"video": _frames(path), "label": path.parent.name}

    return Ucf101Like


def main(argv: list[str] | None = None) -> None:
    source, data_dir = (Path(arg) for arg in (argv or sys.argv[1:]))
    builder = builder_for(source)(data_dir=str(data_dir))
    builder.download_and_prepare(file_format="tfrecord")
    seconds = time.time() - psutil.Process().create_time()
    files = [path for path in Path(builder.data_dir).glob("*.tfrecord*")]
    frames = sum(int(example["video"].shape[0]) for example in tfds.as_numpy(builder.as_dataset(split="train")))
    print(json.dumps({"seconds": seconds, "bytes": sum(path.stat().st_size for path in files),
                      "real_frames": frames, "padding_frames": 0,
                      "videos": builder.info.splits["train"].num_examples}))


if __name__ == "__main__":
    main()
