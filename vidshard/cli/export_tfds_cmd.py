"""``vidshard export-tfds``: TensorFlow Datasets metadata beside a vidshard output (local, ``s3://`` or ``gs://``)."""
from __future__ import annotations

import os

import click

from vidshard.cli.store_options import DATA_DIR, object_store_options
from vidshard.errors import VidshardError
from vidshard.format.info import load_info


@click.command("export-tfds")
@click.argument("data_dir", type=DATA_DIR)
@object_store_options()
@click.option("--to", "to", default=None, metavar="DIR",
              help="Folder for TFDS's dataset_info.json and features.json, in DATA_DIR's store  "
                   "[default: DATA_DIR/tfds]")
def export_tfds_command(data_dir: str, to: str | None) -> None:
    """Make vidshard output DATA_DIR loadable with tfds.builder_from_directory (needs vidshard[tfds]).

    Writes TFDS's metadata, and makes the shards appear in its folder: a relative link per shard
    for a local output (keep the two folders together), a copy made by the store for an s3:// or
    gs:// output (nothing passes through this machine; the store holds the shards twice).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow C++ INFO/WARNING logs
    try:
        from vidshard.tfds_export import export_tfds  # TensorFlow Datasets is an optional extra
    except ImportError as exc:
        raise VidshardError(str(exc)) from None

    folder = export_tfds(data_dir, to)
    # TFDS reads ArrayRecord files through its random-access data source, TFRecord through tf.data.
    method = "as_data_source" if load_info(data_dir).file_format == "array_record" else "as_dataset"
    click.echo(f"{folder}: load it with tfds.builder_from_directory({folder!r}).{method}(split=...)")
