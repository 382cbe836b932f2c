"""A quiet terminal: by default the real ``vidshard`` command shows its own lines; ``-v`` shows libraries' logs.

Each test runs the installed command in a fresh process, because what is hidden is written by
native code and by Beam's worker processes to file descriptor 2, which no in-process runner sees.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from vidshard.format.info import ERRORS_FILE
from vidshard.testing.synthetic import MOTION_CLASSES, make_ucf_zip

RANDOM_AVI = f"UCF101/v_{MOTION_CLASSES[0]}_g09_c01.avi"
#: What the terminal showed before: Beam's worker start-up, OpenCV/FFmpeg decoder warnings, TensorFlow's C++ lines.
NOISE = ("apitools not found", "Logging handler created", "[ WARN", "overread", "absl::InitializeLog",
         "I0000", "E0000", "cuInit", "Retrying")


def _vidshard(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "OPENCV_LOG_LEVEL")}
    return subprocess.run([sys.executable, "-m", "vidshard.cli", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def _noise(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if any(mark in line for mark in NOISE)]


@pytest.fixture(scope="module")
def source(tmp_path_factory, tiny_spec):
    """4 tiny videos of 2 classes and one of random bytes, which fails to decode."""
    path = tmp_path_factory.mktemp("quiet") / "sample.zip"
    make_ucf_zip(path, classes=MOTION_CLASSES[:2], groups=2, clips_per_group=1, spec=tiny_spec,
                 extra_members={RANDOM_AVI: np.random.default_rng(0).bytes(6000)})
    return path


def test_shard_hides_workers_and_decoders_unless_verbose(source, tmp_path):
    # Worker processes are what logs the most: run them even for this small job.
    options = ["--splits", "train=0.5,test=0.5", "--n-frames", "2", "--size", "16x16", "--shards", "1",
               "--direct_running_mode", "multi_processing"]
    quiet = _vidshard("shard", str(source), str(tmp_path / "quiet"), *options)
    assert quiet.returncode == 0, quiet.stderr
    assert _noise(quiet.stderr) == [], quiet.stderr
    assert "4 videos written, 1 failed" in quiet.stdout
    # Nothing that matters is hidden: the failed video and its reason are in errors.jsonl.
    failed = [json.loads(line) for line in (tmp_path / "quiet" / ERRORS_FILE).read_text().splitlines()]
    assert [f["video_id"] for f in failed] == [RANDOM_AVI] and failed[0]["reason"]

    verbose = _vidshard("-v", "shard", str(source), str(tmp_path / "verbose"), *options)
    assert verbose.returncode == 0, verbose.stderr
    # What quiet hid comes through: the decoder's warning on the broken file (OpenCV, native, in a worker), and
    # where the worker's root logger has a stream handler (it depends on the installed extras) Beam's start-up line.
    assert _noise(verbose.stderr), verbose.stderr


def test_tensorflow_start_up_lines_only_with_verbose(tmp_path):
    """``evaluate`` imports TensorFlow before it finds no model: one ``Error:`` line, TensorFlow's lines with -v."""
    quiet = _vidshard("evaluate", str(tmp_path))
    assert quiet.returncode == 1
    assert quiet.stderr.splitlines() == [f"Error: {tmp_path} has no model.keras: train first "
                                         f"(vidshard train DATA_DIR {tmp_path})"]
    verbose = _vidshard("--verbose", "evaluate", str(tmp_path))
    assert verbose.returncode == 1
    lines = verbose.stderr.splitlines()
    assert lines[-1] == quiet.stderr.strip() and len(lines) > 1  # TensorFlow's own start-up lines before it


_RETRY = """
import logging, sys
from vidshard.cli.terminal import configure_logging
configure_logging(sys.argv[1] == "verbose")
logging.getLogger("urllib3.connectionpool").warning("Retrying (Retry(total=None, connect=3)) after ...")
logging.getLogger("vidshard.sources").warning("a warning of vidshard's own")
"""


@pytest.mark.parametrize("mode", ["quiet", "verbose"])
def test_urllib3_retries_are_logged_only_with_verbose(mode):
    out = subprocess.run([sys.executable, "-c", _RETRY, mode], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert ("Retrying" in out.stderr) == (mode == "verbose")
    assert "WARNING vidshard.sources: a warning of vidshard's own" in out.stderr
