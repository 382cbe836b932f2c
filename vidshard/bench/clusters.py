"""Wall time and peak memory of every process of ``vidshard shard`` on Spark and Flink clusters, against the DirectRunner.

``python -m vidshard.bench.clusters --workdir DIR [--videos 50,200] [--runners direct,spark,flink] [--json FILE]``

For every video count and runner, one run of the real CLI (``--splits train=1.0 --quiet``) on
UCF101-shaped videos (320x240 XVID, 175 frames, the default clip: 10 frames every 15th,
224x224, JPEG) in a folder.  Spark and Flink run on the clusters of
:mod:`vidshard.testing.clusters` (Spark: a master and 2 workers of 1 core; Flink: a JobManager
and a TaskManager of 2 slots; the SDK worker pool) with a job server of their own, started
before the clock starts, so each process is measured by itself.  Every 0.2 s the resident memory
of each process and its descendants is sampled: the launcher; the job server; the master and each
worker with its executors (Spark), the JobManager and the TaskManager (Flink); the worker pool
with its SDK workers (also the largest single SDK worker).  The outputs' shard files and
``errors.jsonl`` are compared with the DirectRunner's.  Nothing here asserts a timing.
"""
from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from vidshard.bench.dask_runner import report
from vidshard.bench.measure import BenchConfig, write_video_folder
from vidshard.testing import clusters


class Sampler:
    """Peak resident memory of named process trees, sampled together until stopped."""

    def __init__(self, roots: dict[str, int], poll: float = 0.2) -> None:
        self.peaks: dict[str, float] = dict.fromkeys(roots, 0.0)
        self.largest_child: dict[str, float] = dict.fromkeys(roots, 0.0)
        self._roots = roots
        self._poll = poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self._roots.items():
                try:
                    root = psutil.Process(pid)
                    sizes = [root.memory_info().rss]
                    children = []
                    for child in root.children(recursive=True):
                        try:
                            children.append(child.memory_info().rss)
                        except psutil.Error:
                            pass
                except psutil.Error:
                    continue
                self.peaks[name] = max(self.peaks[name], (sum(sizes) + sum(children)) / 2**20)
                self.largest_child[name] = max(self.largest_child[name], max(children, default=0) / 2**20)
            self._stop.wait(self._poll)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        return {name: {"peak_mib": round(peak, 1), "largest_descendant_mib": round(self.largest_child[name], 1)}
                for name, peak in self.peaks.items()}


def _run(source: Path, data_dir: Path, extra: list[str], cluster: clusters.Cluster | None) -> dict[str, Any]:
    """One run of the CLI; its wall time and the peaks of the launcher and of every cluster process."""
    shutil.rmtree(data_dir, ignore_errors=True)
    command = [sys.executable, "-m", "vidshard.cli", "shard", str(source), str(data_dir), "--splits", "train=1.0",
               "--quiet", *extra]
    roots = {name: proc.pid for name, proc in (cluster.processes.items() if cluster else [])}
    started = time.perf_counter()
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})
    sampler = Sampler({"launcher": launcher.pid, **roots})
    out, _ = launcher.communicate()
    seconds = time.perf_counter() - started
    peaks = sampler.stop()
    if launcher.returncode != 0:
        raise RuntimeError(f"vidshard shard failed ({launcher.returncode}):\n{out[-3000:]}")
    return {"seconds": round(seconds, 1), "processes": peaks, "load_after": round(os.getloadavg()[0], 2)}


def _cluster(kind: str, folder: Path) -> clusters.Cluster:
    shutil.rmtree(folder, ignore_errors=True)
    cluster = clusters.start_spark(folder) if kind == "spark" else clusters.start_flink(folder)
    cluster.beam_args += clusters.start_job_server(cluster)
    return cluster


def run(workdir: Path, counts: list[int], runners: list[str]) -> dict[str, Any]:
    config = BenchConfig(workdir=str(workdir))
    largest = write_video_folder(workdir / f"videos{max(counts)}", max(counts), config)
    results: dict[str, Any] = {"load_before": round(os.getloadavg()[0], 2), "cores": os.cpu_count(), "runs": {}}
    for count in counts:
        source = workdir / f"videos{count}"
        for path in largest[:count]:  # the first `count` videos of the largest set, same files
            target = source / path.relative_to(workdir / f"videos{max(counts)}")
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        row: dict[str, Any] = {}
        for runner in runners:
            out = workdir / f"{runner}{count}"
            if runner == "direct":
                row[runner] = _run(source, out, ["--direct_running_mode", "multi_processing",
                                                 "--direct_num_workers", "2"], None)
                continue
            with _cluster(runner, workdir / f"cluster-{runner}") as cluster:
                row[runner] = _run(source, out, cluster.beam_args, cluster)
        if "direct" in runners:
            names = [name for name in sorted(os.listdir(workdir / f"direct{count}")) if name != "dataset_info.json"
                     and not name.startswith(".")]
            for runner in runners:
                if runner != "direct":
                    same = filecmp.cmpfiles(workdir / f"{runner}{count}", workdir / f"direct{count}", names,
                                            shallow=False)
                    row[runner]["identical_files"] = len(same[0])
                    row[runner]["differing_files"] = same[1] + same[2]
        results["runs"][count] = row
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--videos", default="50,200", help="comma-separated video counts")
    parser.add_argument("--runners", default="direct,spark,flink", help="comma-separated: direct, spark, flink")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    result = run(args.workdir, [int(count) for count in args.videos.split(",")], args.runners.split(","))
    report(result, args.json)


if __name__ == "__main__":
    main()
