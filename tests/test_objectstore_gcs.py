"""gs:// end to end against gcp-storage-emulator on 127.0.0.1 (started and stopped here), behind the
counting, fault-injecting proxy: a zip source read by ranges, an output byte-identical to a local one,
readers reading it in place, ``--overwrite``, ``--resume`` after kill -9, GCS's retryable errors (503,
429) and dropped connections losing nothing, and bad input (a missing bucket, no credentials) in one
line.  Beam's GCS filesystem and google-cloud-storage find the proxy through ``STORAGE_EMULATOR_HOST``.
Needs ``pip install -e ".[gcs]"``.
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
from vidshard.format.info import ERRORS_FILE, INFO_FILE  # noqa: E402
from vidshard.readers.numpy_reader import ShardReader  # noqa: E402
from vidshard.testing.objectstores import Faults, GcsEmulator, StoreProxy, TensorFlowGcsFront  # noqa: E402
from vidshard.testing.synthetic import MOTION_CLASSES, VideoSpec, make_ucf_zip  # noqa: E402

from objectstore_checks import (  # noqa: E402
    assert_one_line_error, assert_same_output, check_export_tfds, kill_after_staging, vidshard,
)

BUCKET = "vidshard-gcs"
CLASSES = MOTION_CLASSES[:3]
RANDOM_AVI = f"UCF101/v_{CLASSES[0]}_g05_c01.avi"
OPTIONS = ["--splits", "train=0.5,val=0.25,test=0.25", "--seed", "7", "--n-frames", "4", "--frame-step", "3",
           "--size", "32x40", "--encoding", "png", "--shards", "2"]
#: Worker processes: what they read and write goes through the proxy too.
RUNNER = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
SOURCE = f"gs://{BUCKET}/in/sample.zip"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory, tiny_spec):
    """The emulator behind a GCS-speaking proxy; everything, the setup included, talks to the proxy (the
    emulator writes the address it was asked at into the objects' download links).  Yields the bucket,
    the zip (12 good videos and one of random bytes) and the proxy."""
    with GcsEmulator() as gcs, StoreProxy(gcs.endpoint, api="gcs") as proxy:
        environment = {**gcs.environment, "STORAGE_EMULATOR_HOST": proxy.endpoint}
        saved = {name: os.environ.get(name) for name in environment}
        os.environ.update(environment)  # this process's readers, and the CLI processes below
        storage.configure()
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage as gcs_storage

        client = gcs_storage.Client(project="vidshard", credentials=AnonymousCredentials())
        bucket = client.create_bucket(BUCKET)
        zip_path = tmp_path_factory.mktemp("gcssrc") / "sample.zip"
        make_ucf_zip(zip_path, classes=CLASSES, groups=4, clips_per_group=1, spec=tiny_spec,
                     extra_members={RANDOM_AVI: np.random.default_rng(0).bytes(6000)})
        bucket.blob("in/sample.zip").upload_from_filename(str(zip_path))
        yield bucket, zip_path, proxy
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        storage.configure()


def objects(bucket, prefix: str) -> dict[str, bytes]:
    return {blob.name[len(prefix):]: blob.download_as_bytes() for blob in bucket.list_blobs(prefix=prefix)}


@pytest.fixture(scope="module")
def local_reference(emulator, tmp_path_factory):
    _, zip_path, _ = emulator
    out = tmp_path_factory.mktemp("gcsref") / "out"
    result = CliRunner().invoke(main, ["shard", str(zip_path), str(out), *OPTIONS, "--quiet"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def gs_output(emulator, local_reference):
    """The zip in gs:// sharded into gs:// by worker processes, through the proxy (no faults)."""
    _, _, proxy = emulator
    proxy.set_faults(Faults())
    result = vidshard("shard", SOURCE, f"gs://{BUCKET}/out", *OPTIONS, *RUNNER)
    assert result.returncode == 0, result.stderr
    return result


def test_gs_zip_to_gs_output_is_byte_identical_and_read_in_place(emulator, local_reference, gs_output):
    bucket, _, _ = emulator
    listed = vidshard("list", SOURCE, "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["total"]["videos"] == 13
    assert "1 failed" in gs_output.stdout and f"Complete: gs://{BUCKET}/out/{INFO_FILE}" in gs_output.stdout
    assert_same_output(objects(bucket, "out/"), local_reference, SOURCE)
    for split in ("train", "val", "test"):
        here = list(ShardReader(f"gs://{BUCKET}/out", split, batch_size=2, shuffle=False))
        there = list(ShardReader(local_reference, split, batch_size=2, shuffle=False))
        assert len(here) == len(there) and all(np.array_equal(a[0], b[0]) for a, b in zip(here, there))
    verified = vidshard("inspect", f"gs://{BUCKET}/out", "--verify")
    assert verified.returncode == 0 and "verified: 12 records" in verified.stdout, verified.stderr


def test_overwrite_replaces_a_gs_output_and_its_absence_is_refused(emulator, local_reference, gs_output):
    bucket, _, _ = emulator
    before = objects(bucket, "out/")
    refused = vidshard("shard", SOURCE, f"gs://{BUCKET}/out", *OPTIONS)
    assert_one_line_error(refused, "already holds a finished vidshard output", "--overwrite")
    assert objects(bucket, "out/") == before
    bucket.blob("out/stale-file.txt").upload_from_string(b"left by someone")
    result = vidshard("shard", SOURCE, f"gs://{BUCKET}/out", *OPTIONS, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert_same_output(objects(bucket, "out/"), local_reference, SOURCE)


def test_export_tfds_has_the_store_copy_the_shards_and_writes_a_local_exports_files(emulator, gs_output, tmp_path):
    """export-tfds of a gs:// output: TFDS's folder (DATA_DIR/tfds) holds a local export's files, the shards
    copied by the store (GCS's objects.copy), none read by the client; twice is the same; bad input is one line."""
    pytest.importorskip("tensorflow_datasets", reason="export-tfds needs the tfds extra: pip install -e '.[tfds]'")
    bucket, _, proxy = emulator
    for blob in bucket.list_blobs(prefix="out/"):  # an output of its own, so out/ stays as the other tests expect
        bucket.copy_blob(blob, bucket, "tfdsout/" + blob.name[len("out/"):])
    check_export_tfds(f"gs://{BUCKET}/tfdsout", lambda uri: objects(bucket, uri.split("/", 3)[3] + "/"), proxy,
                      tmp_path / "local")
    before = objects(bucket, "tfdsout/")
    for args, fragment in ((["gs://no-such-bucket/out"], "bucket no-such-bucket does not exist"),
                           ([f"gs://{BUCKET}/tfdsout", "--to", "gs://no-such-bucket/t"], "bucket no-such-bucket"),
                           ([f"gs://{BUCKET}/tfdsout", "--to", f"s3://{BUCKET}/t"], "is not in the store of gs://"),
                           ([f"gs://{BUCKET}/tfdsout", "--to", f"gs://{BUCKET}/in"], "holds other objects")):
        result = CliRunner().invoke(main, ["export-tfds", *args])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
        assert fragment in lines[0] and args[-1] in lines[0], lines[0]
    assert objects(bucket, "tfdsout/") == before


#: Run in a subprocess with TensorFlowGcsFront's environment: tf.data (vidshard.readers.tf_data) and TFDS read the
#: gs:// output and its TFDS export through TensorFlow's own GCS filesystem, and the same on local disk;
#: prints a digest of every element, per reader, place and split.
_TF_GCS = r"""
import hashlib, json, sys
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from vidshard.readers.tf_data import make_dataset
out_gs, out_local, tfds_gs, tfds_local = sys.argv[1:5]
digest = lambda *arrays: hashlib.sha256(b"".join(np.asarray(a).tobytes() for a in arrays)).hexdigest()
found = {"exists": tf.io.gfile.exists(out_gs + "/dataset_info.json")}
for where, uri in (("gs", out_gs), ("local", out_local)):
    for split in ("train", "val", "test"):
        batches = make_dataset(uri, split, batch_size=2, shuffle=False, cache=False)
        found[f"tf.data {where} {split}"] = [digest(c.numpy(), l.numpy()) for c, l in batches]
for where, folder in (("gs", tfds_gs), ("local", tfds_local)):
    builder = tfds.builder_from_directory(folder)
    for split in builder.info.splits:
        examples = tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))
        found[f"tfds {where} {split}"] = [digest(e["frames"], e["label"], e["video_id"]) for e in examples]
print(json.dumps(found))
"""


def test_tf_data_and_tfds_read_gs_in_place_through_tensorflows_gcs_filesystem(emulator, gs_output, local_reference,
                                                                               tmp_path):
    """TensorFlow's own GCS filesystem, pointed at the emulator by TensorFlowGcsFront (an HTTPS proxy answering as
    Google's hosts): tf.data reads the gs:// output and TFDS its gs:// export, by ranged GETs, each element equal to
    the one read from the same output on disk."""
    pytest.importorskip("tensorflow_datasets", reason="TFDS needs the tfds extra: pip install -e '.[tfds]'")
    _, _, proxy = emulator
    exported = CliRunner().invoke(main, ["export-tfds", f"gs://{BUCKET}/out", "--to", f"gs://{BUCKET}/out-tfds"])
    assert exported.exit_code == 0, exported.output
    local_tfds = tmp_path / "local-tfds"
    exported = CliRunner().invoke(main, ["export-tfds", str(local_reference), "--to", str(local_tfds)])
    assert exported.exit_code == 0, exported.output
    proxy.set_faults(Faults())
    with TensorFlowGcsFront(proxy.endpoint) as front:
        run = subprocess.run([sys.executable, "-c", _TF_GCS, f"gs://{BUCKET}/out", str(local_reference),
                              f"gs://{BUCKET}/out-tfds", str(local_tfds)], capture_output=True, text=True,
                             timeout=600, env={**os.environ, **front.environment, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found.pop("exists") is True
    for key in [key for key in found if " gs " in key]:
        assert found[key] == found[key.replace(" gs ", " local ")] and found[key], key
    assert len([key for key in found if key.startswith("tfds gs")]) == 3
    # TensorFlow read the shards itself, from storage.googleapis.com, by ranged GETs (XML API paths).
    reads = [record for record in proxy.log if record.method == "GET" and record.path.startswith(f"/{BUCKET}/")
             and ".tfrecord" in record.path]
    assert reads and all(record.range for record in reads), reads


@pytest.mark.parametrize("faults", [
    # All slow (run by hand, not in CI): google-cloud-storage backs off 1 s, doubling; 60-130 s each here.
    pytest.param(Faults(fail_every=5, fail_status=429), marks=pytest.mark.slow),
    pytest.param(Faults(fail_every=5, fail_status=503), marks=pytest.mark.slow),
    pytest.param(Faults(drop_every=6), marks=pytest.mark.slow),
    pytest.param(Faults(delay=0.05), marks=pytest.mark.slow),
], ids=["429-every-5th", "503-every-5th", "dropped-connection-every-6th", "throttled"])
def test_faults_lose_nothing_and_write_nothing_twice(emulator, local_reference, faults):
    """GCS's retryable answers (its JSON error body), dropped connections and a slow store, on every request of
    the job (the launcher's checks, the workers' ranged reads, Beam's writes and renames): the output is the
    clean one's bytes, and only the broken video is listed as failed."""
    bucket, _, proxy = emulator
    prefix = f"faults-{faults.fail_every}-{faults.fail_status}-{faults.drop_every}-{int(faults.delay * 1000)}/"
    proxy.set_faults(faults)
    try:
        result = vidshard("shard", SOURCE, f"gs://{BUCKET}/{prefix.rstrip('/')}", *OPTIONS, *RUNNER)
        log = proxy.log
    finally:
        proxy.set_faults(Faults())
    assert result.returncode == 0, result.stderr
    if faults.fail_every:
        assert sum(record.status == faults.fail_status for record in log) >= 20  # the faults happened
    if faults.drop_every:
        assert sum(record.status == 0 for record in log) >= 20
    stored = objects(bucket, prefix)
    assert_same_output(stored, local_reference, SOURCE)
    errors = stored[ERRORS_FILE].decode().splitlines()
    assert [json.loads(line)["video_id"] for line in errors] == [RANDOM_AVI]  # only the broken video


@pytest.mark.slow
def test_resume_after_sigkill_on_gs_writes_the_bytes_of_an_uninterrupted_run(emulator, tmp_path):
    bucket, _, proxy = emulator
    proxy.set_faults(Faults())
    zip_path = tmp_path / "thirty.zip"
    make_ucf_zip(zip_path, classes=CLASSES, groups=5, clips_per_group=2,
                 spec=VideoSpec(total_frames=150, width=160, height=120))
    bucket.blob("in/thirty.zip").upload_from_filename(str(zip_path))
    source = f"gs://{BUCKET}/in/thirty.zip"
    options = ["--splits", "train=0.7,val=0.3", "--n-frames", "8", "--frame-step", "15", "--size", "96",
               "--encoding", "png", "--shards", "3", "--direct_running_mode=multi_processing",
               "--direct_num_workers=1"]
    full = tmp_path / "full"
    assert vidshard("shard", str(zip_path), str(full), *options).returncode == 0
    target = f"gs://{BUCKET}/killed"
    kill_after_staging(source, target, options)
    assert INFO_FILE not in objects(bucket, "killed/")
    assert_one_line_error(vidshard("shard", source, target, *options), "unfinished run")
    resumed = vidshard("shard", source, target, *options, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming: " in resumed.stderr
    assert_same_output(objects(bucket, "killed/"), full, source)


def test_gs_missing_bucket_and_object_are_one_line(emulator):
    for args, fragment in ((["list", "gs://no-such-bucket/x.zip"], "bucket no-such-bucket does not exist"),
                           (["list", f"gs://{BUCKET}/in/missing.zip"], "no such object"),
                           (["shard", SOURCE, "gs://no-such-bucket/out", *OPTIONS],
                            "bucket no-such-bucket does not exist")):
        assert_one_line_error(vidshard(*args), fragment, args[1 if args[0] == "list" else 2])


def test_missing_or_unreadable_google_credentials_are_one_line_naming_the_uri(tmp_path):
    """Away from the emulator, google-auth's own refusals: no Application Default Credentials at all, and a
    credentials file that is not one.  (The emulator accepts any request, so a key the store refuses
    cannot be tested here: see docs/runners.md.)"""
    home = tmp_path / "home"
    home.mkdir()
    bad_file = tmp_path / "key.json"
    bad_file.write_text("not a key")
    clean = {name: value for name, value in os.environ.items()
             if name not in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS")}
    clean.update(HOME=str(home), CLOUDSDK_CONFIG=str(home / "gcloud"), NO_GCE_CHECK="True")
    for extra, fragment in (({}, "default credentials were not found"),
                            ({"GOOGLE_APPLICATION_CREDENTIALS": str(bad_file)}, "is not a valid json file")):
        env = {**clean, **extra}
        for args, named in ((["list", SOURCE], SOURCE), (["inspect", f"gs://{BUCKET}/out"], f"gs://{BUCKET}/out"),
                            (["shard", str(tmp_path / "x.zip"), f"gs://{BUCKET}/never", *OPTIONS],
                             f"output gs://{BUCKET}/never")):
            run = subprocess.run([sys.executable, "-m", "vidshard.cli", *args], capture_output=True, text=True,
                                 timeout=300, env=env)
            assert_one_line_error(run, named, fragment)


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
    from vidshard.readers.grain_data import make_dataset
    for where, uri in (("gs", ar_uri), ("local", ar_local)):
        found[f"grain {where}"] = digest(make_dataset(uri, "train", seed=4, num_epochs=2))
if importlib.util.find_spec("torch") is not None:
    from torch.utils.data import DataLoader
    from vidshard.readers.torch_data import ArrayRecordDataset, ShardIterableDataset
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
    from vidshard.readers.random_access import SplitSource

    bucket, zip_path, _ = emulator
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
    assert len(there) == len(here) >= 6
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
