"""Issue 14: the real ``vidshard shard`` CLI on Beam's DaskRunner, against a dask.distributed cluster.

A LocalCluster of 2 worker processes runs in the test process (so its scheduler can be watched);
the CLI runs in a subprocess and connects with ``--dask_client_address``.  The source is the
generated zip of test_pipeline.py served over HTTP, so the output must carry the pinned digests of
the DirectRunner's reference run, and the range server's log shows how often each video was read.
"""
from __future__ import annotations

import subprocess
import sys
import zipfile
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("distributed", reason="DaskRunner needs the dask extra: pip install -e '.[dask]'")

from distributed import LocalCluster  # noqa: E402
from distributed.diagnostics.plugin import SchedulerPlugin  # noqa: E402

from vidshard.pipelines.transforms import FetchDecodeEncode  # noqa: E402
from vidshard.testing.rangeserver import RangeServer  # noqa: E402
from vidshard.testing.synthetic import make_ucf_zip  # noqa: E402

from test_pipeline import (  # noqa: E402
    CLASSES, EMPTY_AVI, OPTIONS, PINNED_SHA256, RANDOM_AVI, _pinned_digests, pinned_opencv,
)


def _holds(spec: object, cls: type, depth: int = 0) -> bool:
    """Whether a task's run_spec (Dask's Task/DataNode objects, tuples, dicts) contains an instance of ``cls``."""
    if isinstance(spec, cls):
        return True
    if depth > 12 or isinstance(spec, (str, bytes, type)):
        return False
    if isinstance(spec, (list, tuple, set, frozenset)):
        return any(_holds(part, cls, depth + 1) for part in spec)
    if isinstance(spec, dict):
        return any(_holds(part, cls, depth + 1) for part in dict.values(spec))
    return any(_holds(getattr(spec, name), cls, depth + 1)
               for name in ("args", "kwargs", "value", "do_fn") if hasattr(spec, name))


class FetchTasksPerWorker(SchedulerPlugin):
    """Counts, per worker, the finished tasks that run FetchDecodeEncode (one per partition of videos)."""

    def __init__(self, scheduler) -> None:
        self.scheduler = scheduler
        self.per_worker: Counter[str] = Counter()

    def transition(self, key, start, finish, *args, **kwargs) -> None:
        if finish == "memory":
            task = self.scheduler.tasks.get(key)
            if task is not None and _holds(task.run_spec, FetchDecodeEncode):
                self.per_worker[kwargs.get("worker")] += 1


def test_dask_runner_on_two_worker_processes(tmp_path, tiny_spec):
    folder = tmp_path / "www"
    folder.mkdir()
    zip_path = folder / "sample.zip"  # the videos of test_pipeline.py's source, byte for byte
    # The last member pads the zip's tail: remotezip opens a zip by reading its last 64 KiB, so no
    # video may lie there, or it would be read with the directory rather than by its own request.
    make_ucf_zip(zip_path, classes=CLASSES, groups=4, clips_per_group=1, spec=tiny_spec,
                 extra_members={RANDOM_AVI: np.random.default_rng(0).bytes(6000), EMPTY_AVI: b"",
                                "UCF101/zz_padding.txt": bytes(70_000)})
    out = tmp_path / "dask"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            RangeServer(folder) as server:
        watcher = FetchTasksPerWorker(cluster.scheduler)
        cluster.scheduler.add_plugin(watcher)
        url = server.url(zip_path.name)
        proc = subprocess.run(
            [sys.executable, "-m", "vidshard.pipelines.shard", url, str(out), *OPTIONS,
             "--runner", "DaskRunner", "--dask_client_address", cluster.scheduler_address],
            capture_output=True, text=True, timeout=300)
        log = server.log
        workers = set(cluster.scheduler.workers)
        if pinned_opencv():
            expected = PINNED_SHA256
        else:  # another OpenCV writes other bytes: compare with the DirectRunner on this machine
            direct = subprocess.run([sys.executable, "-m", "vidshard.pipelines.shard", url, str(tmp_path / "direct"),
                                     *OPTIONS], capture_output=True, text=True, timeout=300)
            assert direct.returncode == 0, direct.stderr[-3000:]
            expected = _pinned_digests(tmp_path / "direct", url)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Shards, errors.jsonl and dataset_info.json: the bytes of the DirectRunner's run.
    assert _pinned_digests(out, url) == expected
    # The 14 videos went out in 14 partitions (the launcher's --dask_npartitions), over both workers.
    assert sum(watcher.per_worker.values()) == 14
    assert set(watcher.per_worker) == workers and len(workers) == 2, watcher.per_worker
    # Every video was fetched exactly once: one range request starting at its local header.
    with zipfile.ZipFile(zip_path) as archive:
        videos = {info.header_offset: info.filename for info in archive.infolist() if info.filename.endswith(".avi")}
    starts = Counter(int(entry.range.split("=")[1].split("-")[0]) for entry in log
                     if entry.method == "GET" and entry.range and not entry.range.startswith("bytes=-"))
    assert {name: starts[offset] for offset, name in videos.items()} == {name: 1 for name in videos.values()}
