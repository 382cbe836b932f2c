"""Peak memory and wall time of ``vidshard shard`` on Beam's DaskRunner, against the DirectRunner.

``python -m vidshard.bench.dask_runner --workdir DIR [--videos 50,200] [--workers 2]``

For every video count: a fresh dask.distributed cluster of separate processes, as on a real
cluster (``dask scheduler`` and ``dask worker --nworkers N --nthreads 1``), and the real CLI with
``--runner DaskRunner --dask_client_address``; the peak RSS of the launcher, the scheduler and each
worker process is sampled every 50 ms.  Then the same job on the DirectRunner (``multi_processing``,
N workers) for its wall time and peak, and a byte comparison of the two outputs.  UCF101-shaped
videos (320x240 XVID, 175 frames) in a folder, the default clip (10 frames every 15th, 224x224,
JPEG).  Nothing here asserts a timing.
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from vidshard.bench.measure import BenchConfig, write_video_folder


class PeakRSS:
    """Samples a process and its descendants until it exits: peak of their sum and of the largest one."""

    def __init__(self, process: subprocess.Popen, poll: float = 0.05) -> None:
        self.total = self.largest = 0
        self._process = process
        self._poll = poll
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        try:
            root = psutil.Process(self._process.pid)
        except psutil.NoSuchProcess:
            return
        while self._process.poll() is None:
            sizes = []
            try:
                for proc in [root] + root.children(recursive=True):
                    try:
                        sizes.append(proc.memory_info().rss)
                    except psutil.Error:
                        pass
            except psutil.Error:
                break
            self.total = max(self.total, sum(sizes))
            self.largest = max(self.largest, max(sizes, default=0))
            time.sleep(self._poll)

    def result(self) -> dict[str, float]:
        self._thread.join()
        return {"peak_mib": self.total / 2**20, "largest_process_mib": self.largest / 2**20}


def _shard(source: Path, data_dir: Path, extra: list[str]) -> tuple[float, dict[str, float]]:
    shutil.rmtree(data_dir, ignore_errors=True)
    command = [sys.executable, "-m", "vidshard.cli", "shard", str(source), str(data_dir), "--splits", "train=1.0",
               "--quiet", *extra]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = PeakRSS(process)
    out, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"vidshard shard failed ({process.returncode}):\n{out[-3000:]}")
    return time.perf_counter() - started, peak.result()


def _dask_run(source: Path, data_dir: Path, workers: int, folder: Path) -> dict[str, Any]:
    """One job on a fresh cluster: wall seconds and the peaks of launcher, scheduler and workers."""
    from distributed import Client

    scheduler_file = folder / "scheduler.json"
    scheduler_file.unlink(missing_ok=True)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen(["dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                  "--scheduler-file", str(scheduler_file)], **quiet)
    worker = None
    try:
        while not scheduler_file.exists():
            time.sleep(0.1)
        worker = subprocess.Popen(["dask", "worker", "--scheduler-file", str(scheduler_file), "--nworkers",
                                   str(workers), "--nthreads", "1", "--no-dashboard"], **quiet)
        with Client(scheduler_file=str(scheduler_file)) as client:
            client.wait_for_workers(workers, timeout=120)
            address = client.scheduler.address
        scheduler_peak, worker_peak = PeakRSS(scheduler), PeakRSS(worker)
        seconds, launcher = _shard(source, data_dir, ["--runner", "DaskRunner", "--dask_client_address", address])
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.terminate()
                process.wait(timeout=60)
    return {"seconds": seconds, "launcher": launcher, "scheduler": scheduler_peak.result(),
            "workers": worker_peak.result()}


def run(workdir: Path, counts: list[int], workers: int) -> dict[str, Any]:
    config = BenchConfig(workdir=str(workdir))
    largest = write_video_folder(workdir / f"videos{max(counts)}", max(counts), config)
    results: dict[str, Any] = {"workers": workers, "load_before": os.getloadavg()[0], "runs": {}}
    for count in counts:
        source = workdir / f"videos{count}"
        for path in largest[:count]:  # the first `count` videos of the largest set, same files
            target = source / path.relative_to(workdir / f"videos{max(counts)}")
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        dask = _dask_run(source, workdir / f"dask{count}", workers, workdir)
        load = os.getloadavg()[0]
        direct_seconds, direct_peak = _shard(source, workdir / f"direct{count}", [
            "--direct_running_mode", "multi_processing", "--direct_num_workers", str(workers)])
        names = sorted(os.listdir(workdir / f"direct{count}"))
        same = filecmp.cmpfiles(workdir / f"dask{count}", workdir / f"direct{count}",
                                [name for name in names if name != "dataset_info.json"], shallow=False)
        results["runs"][count] = {"dask": dask, "load_after_dask": load,
                                  "direct": {"seconds": direct_seconds, **direct_peak},
                                  "load_after_direct": os.getloadavg()[0],
                                  "identical_files": len(same[0]), "differing_files": same[1] + same[2]}
    return results


def report(result: dict[str, Any], path: Path | None) -> None:
    """Print a benchmark's result as JSON, and write it to ``path`` too when given (``--json``)."""
    text = json.dumps(result, indent=1)
    print(text)
    if path:
        path.write_text(text + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--videos", default="50,200", help="comma-separated video counts")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    result = run(args.workdir, [int(count) for count in args.videos.split(",")], args.workers)
    report(result, args.json)


if __name__ == "__main__":
    main()
