"""gs:// end to end against gcp-storage-emulator on 127.0.0.1 (started and stopped here): a zip source
read by ranges, an output byte-identical to a local one, readers reading it in place, a missing
bucket in one line.  Beam's GCS filesystem and google-cloud-storage find the emulator through
``STORAGE_EMULATOR_HOST``.  Needs ``pip install -e ".[gcs]"``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("google.cloud.storage", reason="gs:// tests need the gcs extra: pip install -e '.[gcs]'")
pytest.importorskip("gcp_storage_emulator", reason="gs:// tests need the gcs extra: pip install -e '.[gcs]'")

from vidshard.cli import main  # noqa: E402
from vidshard.format import storage  # noqa: E402
from vidshard.format.info import INFO_FILE  # noqa: E402
from vidshard.numpy_reader import ShardReader  # noqa: E402
from vidshard.testing.objectstores import GcsEmulator  # noqa: E402
from vidshard.testing.synthetic import MOTION_CLASSES, make_ucf_zip  # noqa: E402

BUCKET = "vidshard-gcs"
OPTIONS = ["--splits", "train=0.5,val=0.25,test=0.25", "--seed", "7", "--n-frames", "4", "--frame-step", "3",
           "--size", "32x40", "--encoding", "png", "--shards", "2"]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory, tiny_spec):
    with GcsEmulator() as gcs:
        saved = {name: os.environ.get(name) for name in gcs.environment}
        os.environ.update(gcs.environment)  # this process's readers, and the CLI processes below
        storage.configure()
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage as gcs_storage

        client = gcs_storage.Client(project="vidshard", credentials=AnonymousCredentials())
        bucket = client.create_bucket(BUCKET)
        zip_path = tmp_path_factory.mktemp("gcssrc") / "sample.zip"
        make_ucf_zip(zip_path, classes=MOTION_CLASSES[:3], groups=4, clips_per_group=1, spec=tiny_spec)
        bucket.blob("in/sample.zip").upload_from_filename(str(zip_path))
        yield bucket, zip_path
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        storage.configure()


def vidshard(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidshard.cli", *args], capture_output=True, text=True, timeout=600)


def test_gs_zip_to_gs_output_is_byte_identical_and_read_in_place(emulator, tmp_path):
    bucket, zip_path = emulator
    listed = vidshard("list", f"gs://{BUCKET}/in/sample.zip", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["total"]["videos"] == 12
    local = tmp_path / "local"
    assert CliRunner().invoke(main, ["shard", str(zip_path), str(local), *OPTIONS]).exit_code == 0
    result = vidshard("shard", f"gs://{BUCKET}/in/sample.zip", f"gs://{BUCKET}/out", *OPTIONS,
                      "--direct_running_mode=multi_processing", "--direct_num_workers=2")
    assert result.returncode == 0, result.stderr
    stored = {blob.name[len("out/"):]: blob.download_as_bytes() for blob in bucket.list_blobs(prefix="out/")}
    assert sorted(stored) == sorted(os.listdir(local))
    for name, data in stored.items():
        if name != INFO_FILE:
            assert data == (local / name).read_bytes(), name
    for split in ("train", "val", "test"):
        here = list(ShardReader(f"gs://{BUCKET}/out", split, batch_size=2, shuffle=False))
        there = list(ShardReader(local, split, batch_size=2, shuffle=False))
        assert len(here) == len(there) and all(np.array_equal(a[0], b[0]) for a, b in zip(here, there))
    verified = vidshard("inspect", f"gs://{BUCKET}/out", "--verify")
    assert verified.returncode == 0 and "verified: 12 records" in verified.stdout, verified.stderr


def test_gs_missing_bucket_and_object_are_one_line(emulator):
    for args, fragment in ((["list", "gs://no-such-bucket/x.zip"], "bucket no-such-bucket does not exist"),
                           (["list", f"gs://{BUCKET}/in/missing.zip"], "no such object"),
                           (["shard", f"gs://{BUCKET}/in/sample.zip", "gs://no-such-bucket/out", *OPTIONS],
                            "bucket no-such-bucket does not exist")):
        result = vidshard(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
        assert fragment in lines[0] and args[1 if args[0] == "list" else 2] in lines[0], lines[0]
