"""Ctrl-C (SIGINT) and SIGTERM in `vidshard shard` and `vidshard train`: real subprocesses, real signals.

Each run reads its videos from the range server with a delay on every response, so a job cannot
finish between the moment the test sees the first staged video and the moment it signals: the
delay sets a floor under the job's length whatever the machine's speed.  Ctrl-C in a terminal
reaches the whole foreground process group (launcher and workers); ``kill PID`` and schedulers
send SIGTERM to the launcher alone, which must then stop its workers itself.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest

from vidshard.pipelines import staging
from vidshard.format.info import INFO_FILE
from vidshard.testing.rangeserver import Faults, RangeServer
from vidshard.testing.synthetic import MOTION_CLASSES, VideoSpec, make_ucf_zip

#: 30 tiny videos; with DELAY seconds on every response they take at least 30 * DELAY / 2 s on 2 workers.
DELAY = 0.5
OPTIONS = ["--splits", "train=1.0", "--n-frames", "4", "--frame-step", "2", "--size", "32"]
MODES = {
    "in_memory": [],  # the default for up to 500 videos: threads of the launcher
    "multi_processing": ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
    "one_worker": ["--direct_num_workers=1"],
}
LINE = re.compile(r"Interrupted \((SIGINT|SIGTERM)\): (\d+) of 30 videos are staged in (\S+); rerun the same command "
                  r"with --resume to continue from there")


@pytest.fixture
def slow_source(tmp_path):
    """A 30-video zip served with DELAY seconds before every response; yields (server, url)."""
    root = tmp_path / "www"
    root.mkdir()
    make_ucf_zip(root / "s.zip", classes=MOTION_CLASSES[:2], groups=5, clips_per_group=3,
                 spec=VideoSpec(total_frames=20, width=48, height=32))
    with RangeServer(root, Faults(delay=DELAY)) as server:
        yield server, server.url("s.zip")


def start_shard(url: str, out, *extra: str) -> subprocess.Popen:
    """``vidshard shard`` in its own process group, as a terminal runs it."""
    return subprocess.Popen([sys.executable, "-m", "vidshard.cli", "shard", url, str(out), *OPTIONS, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_until_staged(proc: subprocess.Popen, out, count: int = 1) -> None:
    deadline = time.monotonic() + 300
    while staging.count_outcomes(str(out))[0] < count:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the run ended or hung before staging {count} videos: {proc.communicate()}")
        time.sleep(0.02)


def assert_one_line(stderr: str, pattern: re.Pattern) -> re.Match:
    """The run's stderr: what it announced, then exactly one line matching ``pattern``; nothing else."""
    assert "Traceback" not in stderr and "terminate called" not in stderr and "Aborted!" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if not line.startswith(("Sharding ", "Resuming: "))]
    assert len(lines) == 1, stderr
    match = pattern.fullmatch(lines[0])
    assert match, stderr
    return match


def signal_mid_job(proc: subprocess.Popen, out, signum: int, group: bool) -> tuple[list[psutil.Process], str]:
    """Once a video is staged, send ``signum`` (to the process group, or to the launcher alone); return
    the launcher's child processes as they were and the run's stderr."""
    wait_until_staged(proc, out)
    workers = psutil.Process(proc.pid).children(recursive=True)
    (os.killpg if group else os.kill)(proc.pid, signum)
    _, stderr = proc.communicate(timeout=120)
    return workers, stderr


@pytest.mark.parametrize("mode, signum, group", [
    ("in_memory", signal.SIGINT, True),
    ("multi_processing", signal.SIGTERM, False),
    ("one_worker", signal.SIGINT, True),
    pytest.param("in_memory", signal.SIGTERM, False, marks=pytest.mark.slow),
    pytest.param("multi_processing", signal.SIGINT, True, marks=pytest.mark.slow),
    pytest.param("one_worker", signal.SIGTERM, False, marks=pytest.mark.slow),
])
def test_a_signal_stops_shard_with_one_line_and_keeps_what_is_staged(slow_source, tmp_path, mode, signum, group):
    server, url = slow_source
    out = tmp_path / "out"
    proc = start_shard(url, out, *MODES[mode])
    workers, stderr = signal_mid_job(proc, out, signum, group)
    assert proc.returncode == 128 + signum, stderr  # 130 for SIGINT, 143 for SIGTERM, as a shell reports them
    match = assert_one_line(stderr, LINE)
    assert match.group(1) == signal.Signals(signum).name and match.group(3) == str(out)
    # The count is what stays staged (in process, a worker thread may still rename one more example into
    # place between the count and the exit), and nothing is marked complete.
    staged = int(match.group(2))
    done, failed = staging.count_outcomes(str(out))
    assert 1 <= staged <= done - failed < 30 and not (out / INFO_FILE).exists()
    assert mode != "multi_processing" or staged == done - failed  # workers are gone before the count
    # Every worker process is gone, also when the launcher alone got the signal.
    assert mode != "multi_processing" or workers, "multi_processing ran no worker processes?"
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, alive
    if mode == "in_memory" and signum == signal.SIGINT:
        # --resume takes every staged video and finishes the job.
        server.set_faults(None)
        resumed = subprocess.run([sys.executable, "-m", "vidshard.cli", "shard", url, str(out), *OPTIONS, "--resume"],
                                 capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        assert f"Resuming: {done - failed} of the videos were staged by the interrupted run" in resumed.stderr
        assert "30 videos written, 0 failed" in resumed.stdout and (out / INFO_FILE).is_file()


def test_an_interrupt_before_the_pipeline_is_one_line_too(slow_source, tmp_path):
    """Ctrl-C while the source is being listed: one line, 130, no traceback, nothing created."""
    server, url = slow_source
    server.set_faults(Faults(delay=600))  # the listing waits for an answer until the server stops
    proc = start_shard(url, tmp_path / "out")
    deadline = time.monotonic() + 120
    while not any(conn.raddr and conn.raddr.port == server.port and conn.status == psutil.CONN_ESTABLISHED
                  for conn in psutil.Process(proc.pid).net_connections("tcp")):
        assert time.monotonic() < deadline and proc.poll() is None, "the launcher never asked the server"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert_one_line(stderr, re.compile(r"Interrupted \(SIGINT\)"))
    assert not (tmp_path / "out").exists()


TRAIN_LINE = re.compile(r"Interrupted \((SIGINT|SIGTERM)\): (\S+) keeps (\d+) finished epoch\(s\) "
                        r"\(checkpoints/last\.keras\); rerun the same command with --resume to continue from epoch (\d+)")


@pytest.mark.slow
@pytest.mark.parametrize("signum, group", [(signal.SIGINT, True), (signal.SIGTERM, False)])
def test_a_signal_stops_train_with_one_line_naming_resume(tmp_path, signum, group):
    from vidshard.testing.shards import make_shards

    make_shards(tmp_path / "data", splits={"train": 6, "val": 2})
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "vidshard.cli", "train", str(tmp_path / "data"), str(run),
                             "--epochs", "1000", "--batch-size", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    history = run / "history.json"
    deadline = time.monotonic() + 600
    while not (history.is_file() and json.loads(history.read_text())["loss"]):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    (os.killpg if group else os.kill)(proc.pid, signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr and "Aborted!" not in stderr, stderr
    match = TRAIN_LINE.fullmatch(stderr.strip().splitlines()[-1])
    assert match, stderr
    epochs = len(json.loads(history.read_text())["loss"])
    assert match.group(2) == str(run) and int(match.group(3)) == epochs and int(match.group(4)) == epochs + 1
