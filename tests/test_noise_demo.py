"""The seed's own task end to end (issue 24): ``vidshard demo --task noise`` learns to tell noisy videos from clean.

About 6.5 min on 2 cores, so it is marked slow and left out of CI's slow pass (CI stays under 25 min):
run it by hand with ``python -m pytest -q -m slow tests/test_noise_demo.py``.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_network_detects_the_noise_well_above_chance(tmp_path):
    work = tmp_path / "noise"
    # The real command in its own process: TensorFlow's training cannot take the test run down with it.
    result = subprocess.run([sys.executable, "-m", "vidshard.cli", "demo", "--task", "noise", "--workdir", str(work)],
                            capture_output=True, text=True, timeout=1400)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((work / "run" / "eval" / "test" / "metrics.json").read_text())
    # 20 test videos, 10 a class: a network at chance scores 0.5 (it scored exactly that before the fix); 16 of
    # 20 right by luck has a probability under 0.6%.
    assert metrics["num_videos"] == 20
    assert metrics["video_accuracy"] >= 0.8, metrics
    last = result.stdout.strip().splitlines()[-1]  # the network's score, then the audit rule's on the same videos
    assert "of the audit's noisy flag" in last and last.rstrip().endswith("1.000; chance 0.50."), last
