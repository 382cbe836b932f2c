"""Issue 21: the real ``vidshard shard`` on Beam's SparkRunner, against a Spark standalone cluster on 127.0.0.1.

The cluster (a master and two workers, separate processes from pyspark's own Spark, and the SDK
worker pool) and the job server come from :mod:`vidshard.testing.clusters` and
:mod:`vidshard.pipelines.jobserver`, as docs/runners.md tells a user to start them.  The source
is test_pipeline.py's zip over HTTP, so the output must carry the DirectRunner's bytes; the
range server's log shows how often each video was read, and Spark's event log which executor
ran which part of the job.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("pyspark", reason="the Spark tests need pyspark: pip install -e '.[spark]'")
if shutil.which("java") is None:
    pytest.skip("the Spark tests need Java (java is not on PATH): Beam's Spark job server is a Java program",
                allow_module_level=True)

from vidshard.errors import VidshardError  # noqa: E402
from vidshard.format.info import INFO_FILE  # noqa: E402
from vidshard.pipelines import jobserver  # noqa: E402
from vidshard.testing import clusters  # noqa: E402
from vidshard.testing.rangeserver import RangeServer  # noqa: E402

from test_pipeline import (  # noqa: E402
    BAR, OPTIONS, _pinned_digests, _run_in_a_terminal, assert_one_line_error, shard,
)
from cluster_runs import PER_VIDEO_LOGS, VIDEO_LINE, _fetches_per_video, expected, served  # noqa: E402,F401

#: The driver (Beam's job server) advertises this address to the executors: loopback only.
LOOPBACK = {"SPARK_LOCAL_IP": "127.0.0.1"}


@pytest.fixture(scope="module")
def job_server_jar() -> str:
    """Beam's Spark job server, assembled from Maven Central once (minutes the first time, then cached)."""
    try:
        return jobserver.assemble(jobserver.spark_job_server())
    except VidshardError as exc:
        pytest.skip(f"no Spark job server: {exc}")


@pytest.fixture
def loopback(monkeypatch):
    for name, value in LOOPBACK.items():
        monkeypatch.setenv(name, value)


def test_spark_cluster_writes_the_direct_runners_bytes(job_server_jar, served, expected, loopback, tmp_path):
    url, zip_path, server = served
    with clusters.start_spark(tmp_path / "cluster", workers=2) as cluster:
        before = len(server.log)
        code, text = _run_in_a_terminal(url, str(tmp_path / "out"), *OPTIONS, *cluster.beam_args, PER_VIDEO_LOGS)
        log = server.log[before:]
    assert code == 0, text[-3000:]
    # Shards, errors.jsonl (a video that fails to fetch-decode, one empty) and dataset_info.json.
    assert _pinned_digests(tmp_path / "out", url) == expected
    # The progress bar and the accounting, as on every runner.
    states = [tuple(map(int, match.groups())) for match in BAR.finditer(text)]
    assert states and states[-1] == (14, 14, 2), text[-3000:]
    assert "12 videos written, 2 failed" in text and f"Complete: {tmp_path / 'out'}/{INFO_FILE}" in text
    # Every video fetched once.
    assert set(_fetches_per_video(zip_path, log).values()) == {1}
    # Both workers did part of the work: each ran one executor, whose SDK workers took some of the
    # 14 videos that Reshuffle spread (random keys: all 14 on one worker has odds of 2 in 16384).
    taken = {}
    for worker in cluster.info["workers"]:
        (executor_log,) = clusters.executor_logs(worker)
        taken[worker] = [match[1] for match in VIDEO_LINE.finditer(executor_log.read_text(errors="replace"))]
    assert all(taken.values()), taken
    assert sorted(video for videos in taken.values() for video in videos) == sorted(_fetches_per_video(zip_path, log))


@pytest.mark.slow
def test_a_killed_spark_worker_never_leaves_an_output_marked_complete(job_server_jar, served, expected,
                                                                      loopback, tmp_path):
    """SIGKILL one worker (and its executor) once videos are being staged: same bytes, or one line and no info file."""
    url = served[0]
    out = tmp_path / "out"
    with clusters.start_spark(tmp_path / "cluster", workers=2) as cluster:
        proc = subprocess.Popen([sys.executable, "-m", "vidshard.pipelines.shard", url, str(out), *OPTIONS,
                                 *cluster.beam_args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        staged = out / ".vidshard-tmp" / "staged"
        deadline = time.monotonic() + 400
        while not (staged.is_dir() and any(staged.iterdir())):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
            time.sleep(0.05)
        cluster.kill("spark-worker-1")
        stdout, stderr = proc.communicate(timeout=500)
    if proc.returncode == 0:
        assert _pinned_digests(out, url) == expected
        assert "12 videos written, 2 failed" in stdout
    else:
        errors = [line for line in stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
        assert not (out / INFO_FILE).exists()


def _listener() -> socket.socket:
    """Something that answers on a loopback port (a master address that is there), for the checks after it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def _nothing_done(out: Path, server: RangeServer, before: int) -> None:
    assert not out.exists() and len(server.log) == before  # no listing, no output


def test_a_master_that_nobody_answers_is_one_line_before_any_work(served, tmp_path):
    url, _, server = served
    before = len(server.log)
    port = clusters.free_port()
    result = shard(url, str(tmp_path / "out"), *OPTIONS, "--runner", "SparkRunner",
                   f"--spark_master_url=spark://127.0.0.1:{port}")
    assert_one_line_error(result, f"--spark_master_url spark://127.0.0.1:{port}", "no Spark master answers")
    _nothing_done(tmp_path / "out", server, before)


def test_missing_java_is_one_line_before_any_work(served, tmp_path):
    url, _, server = served
    before = len(server.log)
    with _listener() as master:
        result = shard(url, str(tmp_path / "out"), *OPTIONS, "--runner", "SparkRunner",
                       f"--spark_master_url=spark://127.0.0.1:{master.getsockname()[1]}",
                       f"--job_server_java_launcher={tmp_path / 'jdk' / 'bin' / 'java'}")
    assert_one_line_error(result, "Beam's Spark job server, a Java program", "is not on PATH")
    _nothing_done(tmp_path / "out", server, before)


def test_a_jar_that_cannot_be_fetched_is_one_line_naming_it_and_where(served, tmp_path):
    url, _, server = served
    before = len(server.log)
    with _listener() as master:
        spark = ["--runner", "SparkRunner", f"--spark_master_url=spark://127.0.0.1:{master.getsockname()[1]}"]
        missing = url.rsplit("/", 1)[0] + "/no-such-job-server.jar"
        result = shard(url, str(tmp_path / "out"), *OPTIONS, *spark, f"--spark_job_server_jar={missing}")
        assert_one_line_error(result, f"--spark_job_server_jar {missing} cannot be fetched from {missing}: HTTP 404")
        # Without a jar of its own, Beam would download its shaded job server from Maven Central,
        # which does not serve it (or is not reachable); an empty jar cache holds no assembled one.
        result = shard(url, str(tmp_path / "out"), *OPTIONS, *spark, f"--jar_cache_dir={tmp_path / 'jars'}")
        assert_one_line_error(result, "beam-runners-spark-3-job-server-", "cannot be fetched from "
                              "https://repo.maven.apache.org/maven2/org/apache/beam/beam-runners-spark-3-job-server/",
                              "python -m vidshard.testing.clusters jar spark")
    # The source was not listed (the one request is the HEAD of the missing jar), nothing written.
    assert [entry.path.rsplit("/", 1)[-1] for entry in server.log[before:]] == ["no-such-job-server.jar"]
    assert not (tmp_path / "out").exists()


def test_an_artifact_maven_cannot_fetch_is_one_line_naming_it(tmp_path):
    """A runner module that is not served: the error names the artifact and the repository."""
    if shutil.which("mvn") is None:
        pytest.skip("needs Maven (mvn is not on PATH)")
    with pytest.raises(VidshardError) as raised:
        jobserver.assemble(jobserver.flink_job_server("9.9"), cache_dir=str(tmp_path))
    message = str(raised.value)
    assert "org.apache.beam:beam-runners-flink-9.9:" in message and "cannot be fetched from https://" in message
    assert "\n" not in message and not list(tmp_path.rglob("*.jar"))  # nothing half-assembled is left


def test_class_path_keeps_the_newer_of_two_versions_and_every_base_jar():
    base = ["/spark/guava-14.0.1.jar", "/spark/hive-shims-0.23-2.3.9.jar", "/spark/hive-shims-2.3.9.jar",
            "/spark/jackson-core-2.15.2.jar", "/spark/zstd-jni-1.5.5-4.jar"]
    added = ["/beam/guava-33.1.0-jre.jar", "/beam/jackson-core-2.15.1.jar", "/beam/beam-runners-spark-3-2.62.0.jar"]
    paths, first = jobserver.class_path(base, added)
    assert paths == ["/beam/guava-33.1.0-jre.jar", "/spark/hive-shims-0.23-2.3.9.jar", "/spark/hive-shims-2.3.9.jar",
                     "/spark/jackson-core-2.15.2.jar", "/spark/zstd-jni-1.5.5-4.jar",
                     "/beam/beam-runners-spark-3-2.62.0.jar"]
    assert first == ["/beam/guava-33.1.0-jre.jar"]


def test_launcher_jar_is_a_manifest_that_java_runs(tmp_path):
    """The assembled launcher: java -jar finds the main class through the manifest's class path."""
    classes = tmp_path / "classes"
    classes.mkdir()
    (classes / "Hello.java").write_text('public class Hello { public static void main(String[] a) '
                                        '{ System.out.println("hello " + a[0]); } }')
    if shutil.which("javac") is None:
        pytest.skip("needs javac (a JDK) to compile the class the launcher names")
    subprocess.run(["javac", str(classes / "Hello.java")], check=True)
    lib = tmp_path / "with space"
    lib.mkdir()
    subprocess.run(["jar", "cf", str(lib / "hello-1.0.jar"), "-C", str(classes), "Hello.class"], check=True)
    launcher = tmp_path / "launcher.jar"
    jobserver.write_launcher_jar(str(launcher), "Hello", [str(lib / "hello-1.0.jar")] * 3)
    done = subprocess.run(["java", "-jar", str(launcher), "world"], capture_output=True, text=True, timeout=60)
    assert done.stdout == "hello world\n", done.stderr
    assert os.path.getsize(launcher) < 4096
