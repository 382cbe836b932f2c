"""What the Spark and Flink tests share: the served source, the DirectRunner's digests, per-video evidence."""
from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from vidshard.testing.rangeserver import RangeServer
from vidshard.testing.synthetic import make_ucf_zip

from test_pipeline import CLASSES, EMPTY_AVI, OPTIONS, PINNED_SHA256, RANDOM_AVI, _pinned_digests, pinned_opencv


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_spec):
    """test_pipeline.py's videos in a zip whose tail is padding (remotezip reads the last 64 KiB with the directory)."""
    folder = tmp_path_factory.mktemp("www")
    zip_path = folder / "sample.zip"
    make_ucf_zip(zip_path, classes=CLASSES, groups=4, clips_per_group=1, spec=tiny_spec,
                 extra_members={RANDOM_AVI: np.random.default_rng(0).bytes(6000), EMPTY_AVI: b"",
                                "UCF101/zz_padding.txt": bytes(70_000)})
    with RangeServer(folder) as server:
        yield server.url(zip_path.name), zip_path, server


@pytest.fixture(scope="module")
def expected(served, tmp_path_factory) -> dict[str, str]:
    """The DirectRunner's digests: pinned, or this OpenCV's run of it."""
    url = served[0]
    if pinned_opencv():
        return PINNED_SHA256
    out = tmp_path_factory.mktemp("direct") / "out"
    proc = subprocess.run([sys.executable, "-m", "vidshard.pipelines.shard", url, str(out), *OPTIONS],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _pinned_digests(out, url)


def _fetches_per_video(zip_path: Path, log: list) -> dict[str, int]:
    """How often each video was read: range requests that start at its local header."""
    with zipfile.ZipFile(zip_path) as archive:
        videos = {info.header_offset: info.filename for info in archive.infolist() if info.filename.endswith(".avi")}
    starts = Counter(int(entry.range.split("=")[1].split("-")[0]) for entry in log
                     if entry.method == "GET" and entry.range and not entry.range.startswith("bytes=-"))
    return {name: starts[offset] for offset, name in videos.items()}


#: The SDK workers' per-video lines (see vidshard.pipelines.transforms) reach each executor's log.
PER_VIDEO_LOGS = '--sdk_harness_log_level_overrides={"vidshard.pipelines.transforms": "INFO"}'
VIDEO_LINE = re.compile(r"vidshard video (\S+): (staged|failed at \w+)")
