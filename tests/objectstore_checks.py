"""What the s3:// and gs:// tests share: the CLI in a fresh interpreter, the one-line-error check, and
the check that an output in object storage holds a local output's bytes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Mapping

from vidshard.format.info import INFO_FILE


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
