"""What the s3:// and gs:// tests share: the CLI in a fresh interpreter, the one-line-error check, a
run killed mid-job, the check that an output in object storage holds a local output's bytes, and
``export-tfds`` of an output in object storage checked against a local export."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from vidshard.format.info import INFO_FILE
from vidshard.pipelines import staging

if TYPE_CHECKING:
    from vidshard.testing.objectstores import StoreProxy


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


def check_export_tfds(uri: str, read: Callable[[str], dict[str, bytes]], proxy: "StoreProxy", local: Path,
                      options: Sequence[str] = ()) -> dict[str, int]:
    """``vidshard export-tfds`` of the output at ``uri`` (in process, as a user runs the CLI), run twice.

    ``read(uri)`` gives the objects under a prefix, by name.  Checks: the exported folder holds exactly
    the files of a local export of the same output (its links resolved), byte for byte, after each
    run; the client read no shard's bytes (the store copied them) and fetched far fewer bytes than
    the shards hold.  Returns the proxy's counts for the docs.
    """
    from click.testing import CliRunner

    from vidshard.cli import main
    from vidshard.format.info import load_info
    from vidshard.testing.objectstores import Faults

    stored = read(uri)
    local.mkdir()
    for name, data in stored.items():
        (local / name).write_bytes(data)
    exported = CliRunner().invoke(main, ["export-tfds", str(local)])
    assert exported.exit_code == 0, exported.output
    expected = {name: (local / "tfds" / name).read_bytes() for name in os.listdir(local / "tfds")}
    shards = [name for split in load_info(str(local)).splits.values() for name in split.shards]
    assert set(expected) == {"dataset_info.json", "features.json", "label.labels.txt", *shards}
    log = []
    for _ in range(2):  # idempotent: the second run leaves the same folder
        proxy.set_faults(Faults())  # clears the log
        result = CliRunner().invoke(main, ["export-tfds", uri, *options])
        assert result.exit_code == 0, result.output
        assert f"{uri}/tfds: load it with tfds.builder_from_directory" in result.output
        log += proxy.log  # the export's requests, not the reads below
        assert read(f"{uri}/tfds") == expected
    shard_bytes = sum(len(stored[name]) for name in shards)
    fetched = sum(record.body_bytes for record in log) / 2  # per run
    # No shard was downloaded: every GET naming one is GCS's JSON metadata of the object, never its media.
    data_reads = [record for record in log if record.method == "GET" and any(name in record.path for name in shards)
                  and not (record.path.startswith("/storage/v1/") and "alt=media" not in record.path)]
    assert data_reads == [], data_reads
    assert fetched < shard_bytes / 4, (fetched, shard_bytes)
    print(f"export-tfds {uri}: {len(log) / 2:.0f} requests and {fetched:.0f} bytes fetched per run; shards: "
          f"{shard_bytes} bytes in {len(shards)} objects")
    return {"requests": len(log) // 2, "fetched": int(fetched), "shard_bytes": shard_bytes}
