"""Object storage end to end, against moto's real S3 server on 127.0.0.1 (started and stopped here).

Sources (a zip read by ranged GETs, a prefix of class folders), outputs (byte-identical to a local
output; --overwrite; --resume after kill -9), readers and tools reading the output in place, a
counting and fault-injecting proxy in front of the server, and bad input refused in one line.
Needs ``pip install -e ".[s3]"`` (boto3 through apache-beam[aws], and moto's server).
"""
from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import time

import numpy as np
import pytest

pytest.importorskip("boto3", reason="object-storage tests need the s3 extra: pip install -e '.[s3]'")
pytest.importorskip("moto.server", reason="object-storage tests need the s3 extra: pip install -e '.[s3]'")

import boto3  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from vidshard.cli import main  # noqa: E402
from vidshard.errors import ShardFormatError  # noqa: E402
from vidshard.format import arrayrecord, storage  # noqa: E402
from vidshard.format.info import ERRORS_FILE, INFO_FILE  # noqa: E402
from vidshard.readers.numpy_reader import ShardReader  # noqa: E402
from vidshard.sources import use_options  # noqa: E402
from vidshard.sources.objectstore import ZIP_BUFFER  # noqa: E402
from vidshard.testing.objectstores import (  # noqa: E402
    TEST_ACCESS_KEY, TEST_SECRET_KEY, Faults, MotoServer, StoreProxy, free_port,
)
from vidshard.testing.synthetic import MOTION_CLASSES, VideoSpec, make_ucf_zip  # noqa: E402

from objectstore_checks import (  # noqa: E402
    assert_one_line_error, assert_same_output, check_export_tfds, kill_after_staging, vidshard,
)

BUCKET = "vidshard-test"
CLASSES = MOTION_CLASSES[:3]
RANDOM_AVI = f"UCF101/v_{CLASSES[0]}_g05_c01.avi"
OPTIONS = ["--splits", "train=0.5,val=0.25,test=0.25", "--seed", "7", "--n-frames", "4", "--frame-step", "3",
           "--size", "32x40", "--clips-per-video", "2", "--encoding", "png", "--shards", "2"]
#: The job's runner: worker processes, so the S3 options must reach workers through Beam's pipeline options.
RUNNER = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def s3_options(endpoint: str, key: str = TEST_ACCESS_KEY) -> list[str]:
    return [f"--s3_endpoint_url={endpoint}", f"--s3_access_key_id={key}", f"--s3_secret_access_key={TEST_SECRET_KEY}",
            "--s3_region_name=us-east-1"]


@pytest.fixture(scope="module")
def server():
    with MotoServer() as moto, StoreProxy(moto.endpoint) as proxy:
        client = boto3.client("s3", endpoint_url=moto.endpoint, aws_access_key_id=TEST_ACCESS_KEY,
                              aws_secret_access_key=TEST_SECRET_KEY, region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        # The test process reads and checks objects too (staging, readers): the same options.
        use_options({"s3_endpoint_url": proxy.endpoint, "s3_access_key_id": TEST_ACCESS_KEY,
                     "s3_secret_access_key": TEST_SECRET_KEY, "s3_region_name": "us-east-1"})
        yield client, proxy
        use_options({})


@pytest.fixture(scope="module")
def source(server, tmp_path_factory, tiny_spec):
    """12 good tiny XVID videos and one of random bytes, as a zip object and as class-folder objects."""
    client, _ = server
    folder = tmp_path_factory.mktemp("s3src")
    zip_path = folder / "sample.zip"
    names = make_ucf_zip(zip_path, classes=CLASSES, groups=4, clips_per_group=1, spec=tiny_spec,
                         extra_members={RANDOM_AVI: np.random.default_rng(0).bytes(6000)})
    client.upload_file(str(zip_path), BUCKET, "in/sample.zip")
    import zipfile
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            name = info.filename.split("/")[-1]
            if not name.endswith(".avi"):
                continue
            label = name.split("_")[1]
            client.put_object(Bucket=BUCKET, Key=f"folders/{label}/{name}", Body=archive.read(info))
    return zip_path, names


@pytest.fixture(scope="module")
def local_reference(source, tmp_path_factory):
    zip_path, _ = source
    out = tmp_path_factory.mktemp("s3ref") / "out"
    result = vidshard("shard", str(zip_path), str(out), *OPTIONS)
    assert result.returncode == 0, result.stderr
    return out


def objects(client, prefix: str) -> dict[str, bytes]:
    found = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {item["Key"][len(prefix):]: client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            for item in found}


@pytest.fixture(scope="module")
def s3_output(server, source, local_reference):
    """The zip in S3 sharded into S3 by worker processes, through the proxy."""
    client, proxy = server
    proxy.set_faults(Faults())
    result = vidshard("shard", f"s3://{BUCKET}/in/sample.zip", f"s3://{BUCKET}/out", *OPTIONS, *RUNNER,
                      *s3_options(proxy.endpoint))
    assert result.returncode == 0, result.stderr
    return result, proxy.log


def test_list_reads_a_zip_by_ranges_and_a_prefix_of_class_folders(server, source):
    client, proxy = server
    zip_path, names = source
    proxy.set_faults(Faults())
    result = vidshard("list", f"s3://{BUCKET}/in/sample.zip", "--json", *s3_options(proxy.endpoint))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["total"]["videos"] == 13 and summary["classes_from"] == "ucf101"
    # The central directory only: a few ranged GETs, a small part of the zip.
    fetched = proxy.body_bytes("GET", "/in/sample.zip")
    assert 0 < fetched < os.path.getsize(zip_path) / 10
    assert all(record.range for record in proxy.log if record.method == "GET" and "sample.zip" in record.path)
    folders = vidshard("list", f"s3://{BUCKET}/folders/", "--json", *s3_options(proxy.endpoint))
    assert folders.returncode == 0, folders.stderr
    listed = json.loads(folders.stdout)
    assert listed["total"]["videos"] == 13 and [row["name"] for row in listed["classes"]] == sorted(CLASSES)


def test_s3_output_is_byte_identical_to_a_local_one(server, source, local_reference, s3_output):
    client, _ = server
    result, log = s3_output
    assert "1 failed" in result.stdout and f"Complete: s3://{BUCKET}/out/{INFO_FILE}" in result.stdout
    assert_same_output(objects(client, "out/"), local_reference, f"s3://{BUCKET}/in/sample.zip")
    # Every video was fetched once, by ranged GETs: bytes requested ~ bytes of the videos.
    zip_path, _ = source
    import zipfile
    with zipfile.ZipFile(zip_path) as archive:
        videos = sum(info.compress_size for info in archive.infolist())
    fetched = sum(record.body_bytes for record in log if record.method == "GET" and "sample.zip" in record.path)
    # Per member at most two buffers beyond its bytes (its header's, and the last one's), plus the
    # central directory (about 1.1 KiB) for every worker that opened the zip; every GET is bounded.
    assert videos <= fetched <= videos + 2 * ZIP_BUFFER * 13 + 16 * 1200, (fetched, videos)
    assert all(re.fullmatch(r"bytes=\d+-\d+", record.range or "") for record in log
               if record.method == "GET" and "sample.zip" in record.path)


def test_a_prefix_of_class_folders_shards_like_the_zip(server, source, tmp_path):
    client, proxy = server
    proxy.set_faults(Faults())
    local_folder = tmp_path / "folders"
    for key, data in objects(client, "folders/").items():
        (local_folder / key).parent.mkdir(parents=True, exist_ok=True)
        (local_folder / key).write_bytes(data)
    local = tmp_path / "local"
    assert vidshard("shard", str(local_folder), str(local), *OPTIONS).returncode == 0
    result = vidshard("shard", f"s3://{BUCKET}/folders/", f"s3://{BUCKET}/from-folders", *OPTIONS,
                      *s3_options(proxy.endpoint))
    assert result.returncode == 0, result.stderr
    assert_same_output(objects(client, "from-folders/"), local, f"s3://{BUCKET}/folders/")


def test_overwrite_replaces_an_s3_output_and_its_absence_is_refused(server, s3_output, local_reference):
    client, proxy = server
    before = objects(client, "out/")
    refused = vidshard("shard", f"s3://{BUCKET}/in/sample.zip", f"s3://{BUCKET}/out", *OPTIONS,
                       *s3_options(proxy.endpoint))
    assert_one_line_error(refused, "already holds a finished vidshard output", "--overwrite")
    assert objects(client, "out/") == before
    client.put_object(Bucket=BUCKET, Key="out/stale-file.txt", Body=b"left by someone")
    result = vidshard("shard", f"s3://{BUCKET}/in/sample.zip", f"s3://{BUCKET}/out", *OPTIONS, "--overwrite",
                      *s3_options(proxy.endpoint))
    assert result.returncode == 0, result.stderr
    assert_same_output(objects(client, "out/"), local_reference, f"s3://{BUCKET}/in/sample.zip")


def test_readers_and_tools_read_the_s3_output_in_place(server, s3_output, local_reference, tmp_path):
    client, proxy = server
    uri = f"s3://{BUCKET}/out"
    for split in ("train", "val", "test"):
        here = list(ShardReader(uri, split, batch_size=2, shuffle=False))
        there = list(ShardReader(local_reference, split, batch_size=2, shuffle=False))
        assert len(here) == len(there) and all(
            np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(here, there))
    verified = vidshard("inspect", uri, "--verify", *s3_options(proxy.endpoint))
    assert verified.returncode == 0, verified.stderr
    assert "verified: 12 records" in verified.stdout
    for out, data_dir in ((tmp_path / "s3.gif", uri), (tmp_path / "local.gif", str(local_reference))):
        result = vidshard("preview", data_dir, "--split", "val", "--index", "1", "--out", str(out),
                          *s3_options(proxy.endpoint))
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "s3.gif").read_bytes() == (tmp_path / "local.gif").read_bytes()
    # Streaming: a shard is read by ranged GETs, never in one piece bigger than the reader's chunk.
    proxy.set_faults(Faults())
    list(ShardReader(uri, "train", batch_size=2, shuffle=False))
    assert all(record.range for record in proxy.log if record.method == "GET" and record.path.endswith(".tfrecord"))


def test_export_tfds_has_the_store_copy_the_shards_and_writes_a_local_exports_files(server, s3_output, tmp_path):
    """export-tfds of an s3:// output: TFDS's folder (DATA_DIR/tfds) holds a local export's files, the
    shards copied by the store (CopyObject), none read by the client; twice is the same; bad input is one line."""
    pytest.importorskip("tensorflow_datasets", reason="export-tfds needs the tfds extra: pip install -e '.[tfds]'")
    client, proxy = server
    for name in objects(client, "out/"):  # a copy of the output of its own, so out/ stays as the other tests expect
        client.copy_object(Bucket=BUCKET, Key=f"tfdsout/{name}", CopySource={"Bucket": BUCKET, "Key": f"out/{name}"})
    options = s3_options(proxy.endpoint)
    check_export_tfds(f"s3://{BUCKET}/tfdsout", lambda uri: objects(client, uri.split("/", 3)[3] + "/"), proxy,
                      tmp_path / "local", options)
    before = objects(client, "tfdsout/")
    for args, fragments in (
            (["s3://no-such-bucket/out"], ["s3://no-such-bucket/out", "bucket no-such-bucket"]),
            ([f"s3://{BUCKET}/tfdsout", "--to", "s3://no-such-bucket/t"], ["s3://no-such-bucket/t", "bucket no-such"]),
            ([f"s3://{BUCKET}/tfdsout", "--to", str(tmp_path / "here")], ["is not in the store of s3://"]),
            ([str(tmp_path / "local"), "--to", f"s3://{BUCKET}/up"], [f"s3://{BUCKET}/up is not in the store of"]),
            ([f"s3://{BUCKET}/tfdsout", "--to", f"s3://{BUCKET}/folders"], ["holds other objects than an earlier"]),
            ([f"s3://{BUCKET}/tfdsout", "--to", f"s3://{BUCKET}/tfdsout/"], ["is the output itself"])):
        result = CliRunner().invoke(main, ["export-tfds", *args, *options])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
        assert all(fragment in lines[0] for fragment in fragments), lines[0]
    assert objects(client, "tfdsout/") == before and not (tmp_path / "here").exists()
    assert not objects(client, "up/")


def test_tf_data_refuses_s3_naming_the_tf_free_reader_and_array_record_is_refused(s3_output):
    from vidshard.readers.tf_data import make_dataset

    with pytest.raises(ShardFormatError, match="vidshard.readers.numpy_reader.ShardReader"):
        make_dataset(f"s3://{BUCKET}/out", "train")
    with pytest.raises(ShardFormatError, match="opens local files and gs:// objects only"):
        arrayrecord.open_reader(f"s3://{BUCKET}/out/train-00000-of-00002.array_record")


def test_inspect_verify_finds_a_damaged_object(server, s3_output):
    client, proxy = server
    data = bytearray(objects(client, "out/")["train-00000-of-00002.tfrecord"])
    data[100] ^= 0xFF
    client.put_object(Bucket=BUCKET, Key="damaged/train-00000-of-00002.tfrecord", Body=bytes(data))
    for name, body in objects(client, "out/").items():
        if name != "train-00000-of-00002.tfrecord":
            client.put_object(Bucket=BUCKET, Key=f"damaged/{name}", Body=body)
    result = vidshard("inspect", f"s3://{BUCKET}/damaged", "--verify", *s3_options(proxy.endpoint))
    assert result.returncode == 1 and "CRC mismatch" in result.stderr


@pytest.mark.parametrize("faults", [Faults(fail_every=5), Faults(drop_every=6), Faults(delay=0.05)],
                         ids=["503-slowdown-every-5th", "dropped-connection-every-6th", "throttled"])
def test_faults_lose_nothing_and_write_nothing_twice(server, source, local_reference, faults):
    client, proxy = server
    prefix = f"faults-{faults.fail_every}-{faults.drop_every}-{int(faults.delay * 1000)}/"
    proxy.set_faults(faults)
    try:
        result = vidshard("shard", f"s3://{BUCKET}/in/sample.zip", f"s3://{BUCKET}/{prefix.rstrip('/')}", *OPTIONS,
                          *s3_options(proxy.endpoint))  # in process: the workers' options are tested above
        log = proxy.log
    finally:
        proxy.set_faults(Faults())
    assert result.returncode == 0, result.stderr
    if faults.fail_every or faults.drop_every:
        assert any(record.status in (503, 0) for record in log)  # the faults happened
    assert_same_output(objects(client, prefix), local_reference, f"s3://{BUCKET}/in/sample.zip")
    errors = objects(client, prefix)[ERRORS_FILE].decode().splitlines()
    assert [json.loads(line)["video_id"] for line in errors] == [RANDOM_AVI]  # only the broken video


@pytest.mark.slow
def test_resume_after_sigkill_on_s3_writes_the_bytes_of_an_uninterrupted_run(server, tmp_path):
    client, proxy = server
    proxy.set_faults(Faults())
    zip_path = tmp_path / "thirty.zip"
    make_ucf_zip(zip_path, classes=CLASSES, groups=5, clips_per_group=2,
                 spec=VideoSpec(total_frames=150, width=160, height=120))
    client.upload_file(str(zip_path), BUCKET, "in/thirty.zip")
    options = ["--splits", "train=0.7,val=0.3", "--n-frames", "8", "--frame-step", "15", "--size", "96",
               "--encoding", "png", "--shards", "3", "--direct_running_mode=multi_processing",
               "--direct_num_workers=1", *s3_options(proxy.endpoint)]
    full = tmp_path / "full"
    # In a process of its own: a pipeline run here would set this process's Beam options (without S3's).
    assert vidshard("shard", str(zip_path), str(full), *options[:-4]).returncode == 0
    target = f"s3://{BUCKET}/killed"
    kill_after_staging(f"s3://{BUCKET}/in/thirty.zip", target, options)
    assert INFO_FILE not in objects(client, "killed/")
    assert_one_line_error(vidshard("shard", f"s3://{BUCKET}/in/thirty.zip", target, *options), "unfinished run")
    resumed = vidshard("shard", f"s3://{BUCKET}/in/thirty.zip", target, *options, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming: " in resumed.stderr
    assert_same_output(objects(client, "killed/"), full, f"s3://{BUCKET}/in/thirty.zip")


def test_bad_object_storage_input_is_one_line_before_any_work(server, tmp_path):
    client, proxy = server
    endpoint = s3_options(proxy.endpoint)
    out = f"s3://{BUCKET}/never"
    cases = [
        (["list", "s3://no-such-bucket/x.zip", *endpoint], ["s3://no-such-bucket/x.zip", "bucket no-such-bucket"]),
        (["list", f"s3://{BUCKET}/in/missing.zip", *endpoint], [f"s3://{BUCKET}/in/missing.zip", "no such object"]),
        (["list", f"s3://{BUCKET}/in", *endpoint], [f"s3://{BUCKET}/in/", "is a prefix"]),
        (["list", f"s3://{BUCKET}/nothing-here/", *endpoint], ["no objects under"]),
        (["shard", f"s3://{BUCKET}/in/sample.zip", "s3://no-such-bucket/out", *OPTIONS, *endpoint],
         ["output s3://no-such-bucket/out", "bucket no-such-bucket"]),
        (["shard", f"s3://{BUCKET}/folders/", f"s3://{BUCKET}/folders/out", *OPTIONS, *endpoint], ["overlap"]),
        (["shard", f"s3://{BUCKET}/in/sample.zip", f"s3://{BUCKET}/in", *OPTIONS, *endpoint], ["overlap"]),
        (["inspect", "s3://no-such-bucket/out", *endpoint], ["s3://no-such-bucket/out", "bucket no-such-bucket"]),
        (["inspect", f"s3://{BUCKET}/in", *endpoint], [f"s3://{BUCKET}/in has no dataset_info.json"]),
    ]
    for args, fragments in cases:
        assert_one_line_error(vidshard(*args), *fragments)
    assert not objects(client, "never/") and not objects(client, "folders/out")
    # An endpoint nobody answers.
    nobody = s3_options(f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    assert_one_line_error(vidshard("list", f"s3://{BUCKET}/in/sample.zip", *nobody),
                          f"s3://{BUCKET}/in/sample.zip", "cannot connect")
    assert_one_line_error(vidshard("shard", str(tmp_path / "x.zip"), out, *OPTIONS, *nobody),
                          "output s3://", "cannot connect")
    assert time.monotonic() - started < 120


def test_wrong_credentials_are_one_line_naming_the_uri():
    with MotoServer(environment={"INITIAL_NO_AUTH_ACTION_COUNT": "0"}) as strict:
        bad = s3_options(strict.endpoint, key="AKIAWRONGKEY0000000")
        assert_one_line_error(vidshard("list", f"s3://{BUCKET}/in/sample.zip", *bad),
                              f"s3://{BUCKET}/in/sample.zip", "access denied", "credentials")
        assert_one_line_error(vidshard("inspect", f"s3://{BUCKET}/out", *bad), f"s3://{BUCKET}/out", "access denied")


def test_storage_reads_stream_in_bounded_ranges(server, s3_output):
    """A shard file is read through one chunk-sized buffer, whatever its size."""
    _, proxy = server
    proxy.set_faults(Faults())
    with storage.open_read(f"s3://{BUCKET}/out/train-00000-of-00002.tfrecord", chunk=4096) as fh:
        assert isinstance(fh, io.BufferedReader)
        data = b"".join(iter(lambda: fh.read(1000), b""))  # as the TFRecord reader reads: record by record
    gets = [record for record in proxy.log if record.method == "GET"]
    assert len(gets) == -(-len(data) // 4096) and max(record.body_bytes for record in gets) <= 4096
