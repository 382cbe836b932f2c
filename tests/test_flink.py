"""Issue 21: the real ``vidshard shard`` on Beam's FlinkRunner, against a Flink session cluster on localhost.

A JobManager and a TaskManager (separate processes, from PyPI's apache-flink 1.19 in a virtualenv
of its own) and the SDK worker pool come from :mod:`vidshard.testing.clusters`; the job server is
assembled from Beam's runner modules (:mod:`vidshard.pipelines.jobserver`).  The output must
carry the DirectRunner's bytes.
"""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

if shutil.which("java") is None:
    pytest.skip("the Flink tests need Java (java is not on PATH): Flink and Beam's job server are Java programs",
                allow_module_level=True)

from vidshard.errors import VidshardError  # noqa: E402
from vidshard.pipelines import jobserver  # noqa: E402
from vidshard.testing import clusters  # noqa: E402

from test_pipeline import OPTIONS, _pinned_digests, assert_one_line_error, shard  # noqa: E402
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
