"""Issue 21: the real ``vidshard shard`` on Beam's FlinkRunner, against a Flink session cluster on localhost.

A JobManager and a TaskManager (separate processes, from PyPI's apache-flink 1.19 in a virtualenv
of its own) and the SDK worker pool come from :mod:`vidshard.testing.clusters`; the job server is
assembled from Beam's runner modules (:mod:`vidshard.pipelines.jobserver`).  The output must
carry the DirectRunner's bytes.  The tests that need the cluster are slow: the first run installs
Flink (about 230 MB from PyPI) and assembles its job server (Maven).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

if shutil.which("java") is None:
    pytest.skip("the Flink tests need Java (java is not on PATH): Flink and Beam's job server are Java programs",
                allow_module_level=True)

from vidshard.errors import VidshardError  # noqa: E402
from vidshard.format.info import INFO_FILE  # noqa: E402
from vidshard.pipelines import jobserver  # noqa: E402
from vidshard.testing import clusters  # noqa: E402

from test_pipeline import OPTIONS, _pinned_digests, assert_one_line_error, data_files, shard  # noqa: E402
from cluster_runs import PER_VIDEO_LOGS, VIDEO_LINE, _fetches_per_video, expected, served  # noqa: E402,F401

FLINK = "1.19"


@pytest.fixture(scope="module")
def flink(tmp_path_factory):
    """A Flink 1.19 session cluster, with its job server assembled (both fetched once, then cached)."""
    try:
        jobserver.assemble(jobserver.flink_job_server(FLINK))
        home = clusters.flink_distribution(FLINK)
    except VidshardError as exc:
        pytest.skip(f"no Flink {FLINK}: {exc}")
    with clusters.start_flink(tmp_path_factory.mktemp("flink"), home) as cluster:
        yield cluster


@pytest.mark.slow
def test_flink_cluster_writes_the_direct_runners_bytes(flink, served, expected, tmp_path):
    url, zip_path, server = served
    before = len(server.log)
    proc = subprocess.run([sys.executable, "-m", "vidshard.pipelines.shard", url, str(tmp_path / "out"), *OPTIONS,
                           *flink.beam_args, PER_VIDEO_LOGS], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _pinned_digests(tmp_path / "out", url) == expected
    assert "12 videos written, 2 failed" in proc.stdout and "Complete: " in proc.stdout
    fetched = _fetches_per_video(zip_path, server.log[before:])
    assert set(fetched.values()) == {1}
    # The TaskManager's log names every video its SDK workers took, once.
    (log,) = (flink.folder / "log").glob("*taskexecutor*.log")
    taken = [match[1] for match in VIDEO_LINE.finditer(log.read_text(errors="replace"))]
    assert sorted(taken) == sorted(fetched)


@pytest.mark.slow
def test_a_flink_version_the_cluster_is_not_is_one_line_before_any_work(flink, served, tmp_path):
    url, _, server = served
    before = len(server.log)
    args = [arg for arg in flink.beam_args if not arg.startswith("--flink_version")]
    result = shard(url, str(tmp_path / "out"), *OPTIONS, *args, "--flink_version", "1.20")
    assert_one_line_error(result, "--flink_version 1.20: the Flink cluster at", "is Flink 1.19.",
                          "pass --flink_version 1.19")
    assert not (tmp_path / "out").exists() and len(server.log) == before


def test_a_flink_master_that_nobody_answers_is_one_line(served, tmp_path):
    url, _, server = served
    before = len(server.log)
    master = f"localhost:{clusters.free_port()}"
    result = shard(url, str(tmp_path / "out"), *OPTIONS, "--runner", "FlinkRunner", "--flink_master", master,
                   "--flink_version", FLINK)
    assert_one_line_error(result, f"--flink_master {master}: no Flink JobManager answers there")
    assert not (tmp_path / "out").exists() and len(server.log) == before


def _wait_for(condition, what: str, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


def _running_jobs(master: str) -> list[str]:
    with urllib.request.urlopen(f"http://{master}/jobs/overview", timeout=5) as answer:
        return [job["jid"] for job in json.load(answer)["jobs"] if job["state"] == "RUNNING"]


@pytest.mark.slow
def test_a_job_outlives_its_launcher(flink, served, expected, tmp_path):
    """--detach returns once Flink has the job; a launcher killed mid-job: the job finishes the output itself."""
    url = served[0]
    # A job server of its own, as --detach needs (the launcher's own would stop with it).
    job_server = [*flink.beam_args, *clusters.start_job_server(flink)]
    detached = tmp_path / "detached"
    proc = subprocess.run([sys.executable, "-m", "vidshard.pipelines.shard", url, str(detached), *OPTIONS,
                           *job_server, "--detach"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Submitted: job " in proc.stdout and "Complete:" not in proc.stdout, proc.stdout
    _wait_for(lambda: (detached / INFO_FILE).exists() and not (detached / ".vidshard-tmp").exists(),
              "the detached job never finished")
    assert _pinned_digests(detached, url) == expected
    assert sorted(os.listdir(detached)) == sorted(data_files(detached) + [INFO_FILE])

    killed = tmp_path / "killed"
    master = flink.info["flink_master"]
    before = set(_running_jobs(master))
    launcher = subprocess.Popen([sys.executable, "-m", "vidshard.pipelines.shard", url, str(killed), *OPTIONS,
                                 *job_server], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: set(_running_jobs(master)) - before, "the job never ran on the cluster")
    launcher.kill()  # SIGKILL: no cleanup of any kind, as when the laptop that launched it is gone
    launcher.wait()
    _wait_for(lambda: (killed / INFO_FILE).exists(), "the job did not finish without its launcher")
    assert _pinned_digests(killed, url) == expected
    # What an attached launcher removes after its report stays: the staging folder (docs/runners.md).
    assert sorted(os.listdir(killed)) == sorted(data_files(killed) + [INFO_FILE, ".vidshard-tmp"])


def test_detach_where_the_job_runs_in_the_launcher_is_one_line(served, tmp_path):
    url, _, server = served
    before = len(server.log)
    result = shard(url, str(tmp_path / "out"), *OPTIONS, "--detach")
    assert_one_line_error(result, "--detach: DirectRunner runs the job in this process")
    result = shard(url, str(tmp_path / "out"), *OPTIONS, "--detach", "--runner", "FlinkRunner")
    assert_one_line_error(result, "--detach: FlinkRunner needs Beam's job server to outlive this launcher",
                          "--job_endpoint HOST:PORT")
    assert not (tmp_path / "out").exists() and len(server.log) == before
