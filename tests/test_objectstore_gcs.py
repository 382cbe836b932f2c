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
from vidshard.errors import ShardFormatError  # noqa: E402
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


#: Run in a subprocess (Grain and PyTorch beside TensorFlow and Beam): each reader over the gs:// output and
#: over the same files on local disk; prints, per reader, a digest of every element's frames and label.
_READERS = r"""
import hashlib, importlib.util, json, sys
tf_uri, tf_local, ar_uri, ar_local = sys.argv[1:5]

def digest(elements):
    return [hashlib.sha256(bytes(memoryview(frames).cast("B")) + int(label).to_bytes(8, "little")).hexdigest()
            for frames, label in elements]

found = {}
if importlib.util.find_spec("grain") is not None:
    from vidshard.grain_data import make_dataset
    for where, uri in (("gs", ar_uri), ("local", ar_local)):
        found[f"grain {where}"] = digest((e["frames"], e["label"]) for e in make_dataset(uri, "train", seed=4, num_epochs=2))
if importlib.util.find_spec("torch") is not None:
    from torch.utils.data import DataLoader
    from vidshard.torch_data import ArrayRecordDataset, ShardIterableDataset
    for where, uri in (("gs", tf_uri), ("local", tf_local)):
        loader = DataLoader(ShardIterableDataset(uri, "train", seed=4), batch_size=None, num_workers=2)
        found[f"torch iterable {where}"] = digest((f.numpy(), l) for f, l in loader)
    for where, uri in (("gs", ar_uri), ("local", ar_local)):
        dataset = ArrayRecordDataset(uri, "train", seed=4)
        found[f"torch map-style {where}"] = digest((dataset[k][0].numpy(), dataset[k][1]) for k in range(len(dataset)))
print(json.dumps(found))
"""


def test_gs_outputs_read_in_place_by_array_record_grain_and_pytorch(emulator, tmp_path):
    """ArrayRecord's own GCS client (google-cloud-cpp, pointed at the emulator from STORAGE_EMULATOR_HOST) reads
    an ArrayRecord output in place: by index, through Grain and PyTorch's map-style dataset; PyTorch's iterable
    dataset reads a TFRecord output in place.  Every element equals the one read from the same files on disk."""
    pytest.importorskip("array_record.python.array_record_module", reason="needs the grain extra: pip install "
                        "-e '.[grain]'")
    from vidshard.format import arrayrecord
    from vidshard.random_access import SplitSource

    bucket, zip_path = emulator
    outputs = {}
    for file_format in ("tfrecord", "array_record"):
        local = tmp_path / file_format
        result = CliRunner().invoke(main, ["shard", str(zip_path), str(local), *OPTIONS, "--format", file_format,
                                           "--quiet"])
        assert result.exit_code == 0, result.output
        for name in os.listdir(local):
            bucket.blob(f"readers/{file_format}/{name}").upload_from_filename(str(local / name))
        outputs[file_format] = (f"gs://{BUCKET}/readers/{file_format}", str(local))
    ar_uri, ar_local = outputs["array_record"]
    there, here = SplitSource(ar_uri, "train"), SplitSource(ar_local, "train")
    assert len(there) == len(here) == 6
    assert [there[k] for k in (5, 0, 3)] == [here[k] for k in (5, 0, 3)]  # any record by its number
    with pytest.raises(ShardFormatError, match="not a readable ArrayRecord file"):
        arrayrecord.open_reader(f"gs://{BUCKET}/readers/array_record/missing.array_record")
    verified = vidshard("inspect", ar_uri, "--verify")
    assert verified.returncode == 0 and "verified: 12 records" in verified.stdout, verified.stderr
    run = subprocess.run([sys.executable, "-c", _READERS, *outputs["tfrecord"], *outputs["array_record"]],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    import importlib.util

    readers = ({"grain"} if importlib.util.find_spec("grain") else set()) | (
        {"torch iterable", "torch map-style"} if importlib.util.find_spec("torch") else set())
    assert {name.rsplit(" ", 1)[0] for name in found} == readers
    for reader in readers:
        assert found[f"{reader} gs"] == found[f"{reader} local"] and len(found[f"{reader} gs"]) >= 6, reader
