"""What the s3:// and gs:// tests share: the CLI in a fresh interpreter, the one-line-error check, a
run killed mid-job, and the check that an output in object storage holds a local output's bytes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

from vidshard.format.info import INFO_FILE
from vidshard.pipelines import staging


def vidshard(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter, as a user runs it (Beam's options and FileSystems start clean)."""
    return subprocess.run([sys.executable, "-m", "vidshard.cli", *args], capture_output=True, text=True, timeout=600,
                          env=None if env is None else {**os.environ, **env})


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def assert_same_output(stored: Mapping[str, bytes], local: Path, source_uri: str) -> None:
    """``stored`` (an output's objects, by name under its prefix) holds exactly the local output's files,
    byte for byte (``dataset_info.json`` differs only in the source it names)."""
    assert sorted(stored) == sorted(os.listdir(local))
    for name, data in stored.items():
        expected = (local / name).read_bytes()
        if name == INFO_FILE:
            here, there = json.loads(data), json.loads(expected)
            assert here.pop("source") == source_uri
            there.pop("source")
            assert here == there
        else:
            assert data == expected, name


def kill_after_staging(source: str, target: str, options: Sequence[str], staged: int = 4) -> None:
    """Start ``vidshard shard SOURCE TARGET`` and SIGKILL it (launcher and workers) once ``staged`` videos are staged."""
    proc = subprocess.Popen([sys.executable, "-m", "vidshard.pipelines.shard", source, target, *options],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while staging.count_outcomes(target)[0] < staged:
        assert proc.poll() is None and time.monotonic() < deadline, f"the run ended before staging {staged} videos"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
