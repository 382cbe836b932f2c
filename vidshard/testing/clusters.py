"""Local Spark and Flink clusters on 127.0.0.1, and the Beam job servers they need: written once.

The tests, the benchmark and docs/runners.md all start clusters through this module, so what a
user types is what was tested::

    python -m vidshard.testing.clusters jar spark             # Beam's Spark job server into Beam's jar cache
    python -m vidshard.testing.clusters start spark DIR       # master + 2 workers + SDK worker pool
    python -m vidshard.testing.clusters stop DIR
    python -m vidshard.testing.clusters jar flink             # Flink 1.19's job server
    python -m vidshard.testing.clusters start flink DIR       # JobManager + TaskManager + SDK worker pool
    python -m vidshard.testing.clusters start flink DIR --job-server   # and Beam's job server (for --detach)

A cluster is a set of separate processes, each in its own process group (so that a killed one
takes its children, e.g. a Spark worker's executors, with it), logging into ``DIR``; ``start``
returns once the cluster has registered every worker, and prints the Beam options that run a job
on it.  The SDK workers run in a worker pool (``python -m vidshard.pipelines.worker_pool``, Beam's
pool made safe for several executors), the ``--environment_type EXTERNAL`` of a machine without
Docker; it must run the same vidshard and Beam as the launcher.

Spark comes from pyspark's wheel (``bin/spark-class``, its ``jars/``), with ``SPARK_LOCAL_IP``
127.0.0.1 so that nothing listens beyond loopback.  Flink comes from PyPI's apache-flink and
apache-flink-libraries in a virtualenv of their own (:func:`flink_distribution`), bound to localhost.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from vidshard.errors import VidshardError
from vidshard.pipelines import jobserver

#: The file in a cluster's folder that ``stop`` reads: every process's id, and the cluster's addresses.
STATE_FILE = "cluster.json"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(check, what: str, processes: Sequence[subprocess.Popen], timeout: float, logs: Sequence[Path]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        dead = [proc for proc in processes if proc.poll() is not None]
        if dead or time.monotonic() > deadline:
            tail = "".join(log.read_text(errors="replace")[-1500:] for log in logs if log.exists())
            why = f"a process exited with status {dead[0].returncode}" if dead else f"not within {timeout:.0f} s"
            raise VidshardError(f"{what}: {why}; logs: {', '.join(map(str, logs))}\n{tail}")
        time.sleep(0.3)


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@dataclass
class Cluster:
    """Processes started for one cluster, their logs, and how to reach it."""

    folder: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    beam_args: list[str] = field(default_factory=list)
    info: dict[str, object] = field(default_factory=dict)

    def _spawn(self, name: str, command: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "ab")
        proc = subprocess.Popen(list(command), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, start_new_session=True, cwd=self.folder)
        log.close()
        self.processes[name] = proc
        self._save()
        return proc

    def _save(self) -> None:
        state = {"pids": {name: proc.pid for name, proc in self.processes.items()},
                 "beam_args": self.beam_args, **self.info}
        (self.folder / STATE_FILE).write_text(json.dumps(state, indent=1))

    def kill(self, name: str) -> None:
        """SIGKILL one process and its process group (a worker and the executors it started)."""
        proc = self.processes[name]
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after 10 s), workers first; drop jars staged to executors.

        Logs stay.  Each Spark executor holds a copy of the job server's class path (about 400
        MiB per executor and job: Beam stages every jar of it), which nothing reads afterwards.
        """
        for name in reversed(list(self.processes)):
            _stop_group(self.processes[name].pid)
        for proc in self.processes.values():
            proc.wait()
        for jar in self.folder.glob("worker-*/app-*/*/*.jar"):
            jar.unlink()

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop_group(pid: int, grace: float = 10.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def start_worker_pool(cluster: Cluster, port: int | None = None, timeout: float = 120) -> list[str]:
    """An SDK worker pool (:mod:`vidshard.pipelines.worker_pool`), a separate process: the Beam options for it."""
    port = port or free_port()
    proc = cluster._spawn("sdk-worker-pool", [sys.executable, "-m", "vidshard.pipelines.worker_pool",
                                              f"--service_port={port}"])
    _wait_for(lambda: _answers(port), "Beam's SDK worker pool did not start", [proc], timeout,
              [cluster.folder / "sdk-worker-pool.log"])
    return ["--environment_type=EXTERNAL", f"--environment_config=localhost:{port}"]


def spark_home() -> str:
    """pyspark's own Spark (``bin/spark-class``, ``jars/``)."""
    try:
        import pyspark
    except ImportError:
        raise VidshardError("a Spark cluster starts from pyspark's Spark, which is not installed: "
                            "pip install 'vidshard[spark]'") from None
    return os.path.dirname(pyspark.__file__)


def _spark_workers_alive(webui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{webui_port}/json/", timeout=2) as answer:
            return sum(1 for worker in json.load(answer)["workers"] if worker["state"] == "ALIVE")
    except (OSError, ValueError, KeyError):
        return 0


def start_spark(folder: str | os.PathLike, workers: int = 2, cores: int = 1, memory: str = "1g",
                worker_pool: bool = True, timeout: float = 180) -> Cluster:
    """A Spark standalone master and ``workers`` workers, separate processes on 127.0.0.1, plus a worker pool.

    Each worker offers ``cores`` cores and ``memory``, and works in ``folder/worker-N`` (its
    executors' logs are there: ``app-*/EXECUTOR/stderr``).  Returns once every worker is ALIVE
    on the master; ``cluster.beam_args`` then holds ``--runner SparkRunner`` and the master's URL.
    """
    home = spark_home()
    root = Path(folder).resolve()
    root.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(root)
    port, webui = free_port(), free_port()
    env = {"SPARK_HOME": home, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(root),
           "SPARK_NO_DAEMONIZE": "1"}
    spark_class = os.path.join(home, "bin", "spark-class")
    try:
        master = cluster._spawn("spark-master", [spark_class, "org.apache.spark.deploy.master.Master",
                                                 "--host", "127.0.0.1", "--port", str(port),
                                                 "--webui-port", str(webui)], env)
        _wait_for(lambda: _spark_workers_alive(webui) >= 0 and _answers(port) and _answers(webui),
                  "the Spark master did not start", [master], timeout, [root / "spark-master.log"])
        url = f"spark://127.0.0.1:{port}"
        for index in range(workers):
            work = root / f"worker-{index}"
            work.mkdir(exist_ok=True)
            cluster._spawn(f"spark-worker-{index}", [
                spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", str(cores),
                "--memory", memory, "--work-dir", str(work), "--webui-port", str(free_port()), url], env)
        _wait_for(lambda: _spark_workers_alive(webui) == workers, f"{workers} Spark worker(s) did not register",
                  list(cluster.processes.values()), timeout,
                  [root / f"spark-worker-{index}.log" for index in range(workers)])
        cluster.beam_args = ["--runner=SparkRunner", f"--spark_master_url={url}"]
        if worker_pool:
            cluster.beam_args += start_worker_pool(cluster)
        cluster.info = {"kind": "spark", "master_url": url, "webui": f"http://127.0.0.1:{webui}",
                        "workers": [str(root / f"worker-{index}") for index in range(workers)]}
        cluster._save()
    except BaseException:
        cluster.stop()
        raise
    return cluster


#: Where :func:`flink_distribution` keeps the virtualenvs that hold Flink distributions.
FLINK_ENVS = Path(os.path.expanduser(os.path.join("~", ".cache", "vidshard", "flink")))


def flink_distribution(version: str = "1.19", envs: str | os.PathLike = FLINK_ENVS) -> Path:
    """A Flink ``X.Y`` distribution (``bin/``, ``conf/``, ``lib/``) from PyPI, in a virtualenv of its own.

    PyPI's ``apache-flink`` (PyFlink) carries Flink's scripts and ``apache-flink-libraries`` its
    jars; PyFlink pins an apache-beam older than vidshard's, so they go into their own
    virtualenv, installed without their Python dependencies (only the JVM cluster is used).
    Returns the distribution's folder (``.../site-packages/pyflink``); reused once there.
    """
    venv = Path(envs) / version
    found = sorted(venv.glob("lib/python*/site-packages/pyflink/bin/jobmanager.sh"))
    if found:
        return found[0].parent.parent
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps"]
    done = subprocess.run([*pip, f"apache-flink=={version}.*", f"apache-flink-libraries=={version}.*"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        raise VidshardError(f"could not install Flink {version} from PyPI (apache-flink, apache-flink-libraries): "
                            + (done.stderr.strip().splitlines() or ["pip failed"])[-1])
    return flink_distribution(version, envs)


def _flink_config(home: Path, rpc_port: int, rest_port: int, slots: int) -> str:
    """A Flink ``config.yaml`` for a session cluster on loopback; the JVM options of the distribution's own."""
    java_opts = next((line.split(":", 1)[1].strip() for line in (home / "conf" / "config.yaml").read_text().splitlines()
                      if line.strip().startswith("all: --add")), "")
    settings = {
        "env.java.opts.all": java_opts,
        "jobmanager.bind-host": "localhost", "jobmanager.rpc.address": "localhost", "jobmanager.rpc.port": rpc_port,
        "jobmanager.memory.process.size": "1024m",
        "taskmanager.bind-host": "localhost", "taskmanager.host": "localhost",
        "taskmanager.numberOfTaskSlots": slots, "taskmanager.memory.process.size": "1728m",
        "parallelism.default": slots,
        "rest.address": "localhost", "rest.bind-address": "localhost", "rest.port": rest_port,
    }
    return "".join(f"{key}: {value}\n" for key, value in settings.items())


def _flink_task_managers(rest_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://localhost:{rest_port}/taskmanagers", timeout=2) as answer:
            return len(json.load(answer)["taskmanagers"])
    except (OSError, ValueError, KeyError):
        return 0


def start_flink(folder: str | os.PathLike, home: str | os.PathLike | None = None, version: str = "1.19",
                slots: int = 2, worker_pool: bool = True, timeout: float = 180) -> Cluster:
    """A Flink session cluster: a JobManager and a TaskManager of ``slots`` slots, separate processes on localhost.

    ``home`` is a Flink distribution (default: :func:`flink_distribution` of ``version``).  The
    processes log into ``folder/log``.  Returns once the TaskManager has registered;
    ``cluster.beam_args`` then holds ``--runner FlinkRunner``, the REST address and the version.
    """
    home = Path(home) if home else flink_distribution(version)
    root = Path(folder).resolve()
    (root / "conf").mkdir(parents=True, exist_ok=True)
    (root / "log").mkdir(exist_ok=True)
    for name in os.listdir(home / "conf"):
        if name.startswith(("log4j", "logback")):
            shutil.copy(home / "conf" / name, root / "conf" / name)
    rpc, rest = free_port(), free_port()
    (root / "conf" / "config.yaml").write_text(_flink_config(home, rpc, rest, slots))
    env = {"FLINK_CONF_DIR": str(root / "conf"), "FLINK_LOG_DIR": str(root / "log")}
    cluster = Cluster(root)
    try:
        jobmanager = cluster._spawn("flink-jobmanager", [str(home / "bin" / "jobmanager.sh"), "start-foreground"], env)
        _wait_for(lambda: _answers(rest), "the Flink JobManager did not start", [jobmanager], timeout,
                  [root / "flink-jobmanager.log"])
        cluster._spawn("flink-taskmanager", [str(home / "bin" / "taskmanager.sh"), "start-foreground"], env)
        _wait_for(lambda: _flink_task_managers(rest) == 1, "the Flink TaskManager did not register",
                  list(cluster.processes.values()), timeout, [root / "flink-taskmanager.log"])
        master = f"localhost:{rest}"
        cluster.beam_args = ["--runner=FlinkRunner", f"--flink_master={master}",
                             f"--flink_version={jobserver.flink_cluster_version(master).rsplit('.', 1)[0]}"]
        if worker_pool:
            cluster.beam_args += start_worker_pool(cluster)
        cluster.info = {"kind": "flink", "flink_master": master, "home": str(home)}
        cluster._save()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def start_job_server(cluster: Cluster, timeout: float = 180) -> list[str]:
    """Beam's job server for ``cluster`` as a process of its own; the Beam options that submit jobs to it.

    The launcher-started job server (Beam's default) stops with its launcher; one started here
    outlives it, which ``--detach`` needs (and a Spark job needs to outlive its launcher at all:
    the Spark driver runs in the job server).  The jar is the assembled one
    (:func:`vidshard.pipelines.jobserver.assemble`).
    """
    kind = cluster.info["kind"]
    server = jobserver.spark_job_server() if kind == "spark" else \
        jobserver.flink_job_server(next(arg.split("=", 1)[1] for arg in cluster.beam_args
                                        if arg.startswith("--flink_version=")))
    jar = jobserver.assemble(server)
    port = free_port()
    master = ["--spark-master-url", str(cluster.info["master_url"])] if kind == "spark" else \
        ["--flink-master", str(cluster.info["flink_master"])]
    properties = [f"-Dspark.executor.extraClassPath={os.pathsep.join(jobserver.executor_class_path(jar))}"] \
        if kind == "spark" and jobserver.executor_class_path(jar) else []
    (cluster.folder / "artifacts").mkdir(exist_ok=True)
    proc = cluster._spawn("job-server", ["java", *jobserver.JVM_OPENS, *properties, "-jar", jar, *master,
                                         "--artifacts-dir", str(cluster.folder / "artifacts"), "--job-port", str(port),
                                         "--artifact-port", "0", "--expansion-port", "0"], {"SPARK_LOCAL_IP": "127.0.0.1"})
    _wait_for(lambda: _answers(port), "Beam's job server did not start", [proc], timeout,
              [cluster.folder / "job-server.log"])
    return [f"--job_endpoint=localhost:{port}"]


def executor_logs(worker_dir: str | os.PathLike) -> list[Path]:
    """The stderr logs of every executor a Spark worker ran (``WORK/app-*/N/stderr``)."""
    return sorted(Path(worker_dir).glob("app-*/*/stderr"))


def stop(folder: str | os.PathLike) -> None:
    """Stop the cluster whose state ``start`` wrote into ``folder``."""
    state = json.loads((Path(folder) / STATE_FILE).read_text())
    for pid in reversed(list(state["pids"].values())):
        _stop_group(pid)
    for jar in Path(folder).glob("worker-*/app-*/*/*.jar"):
        jar.unlink()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vidshard.testing.clusters {jar,start,stop}``: see the module doc."""
    parser = argparse.ArgumentParser(prog="python -m vidshard.testing.clusters", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    jar = commands.add_parser("jar", help="assemble Beam's job server for a runner into Beam's jar cache (Maven)")
    jar.add_argument("runner", choices=["spark", "flink"])
    jar.add_argument("--flink-version", default="1.19")
    start = commands.add_parser("start", help="start a local cluster; its processes log into DIR")
    start.add_argument("kind", choices=["spark", "flink"])
    start.add_argument("dir")
    start.add_argument("--workers", type=int, default=2, help="Spark workers")
    start.add_argument("--flink-version", default="1.19", help="Flink X.Y, installed from PyPI into its own virtualenv")
    start.add_argument("--flink-home", help="a Flink distribution to start instead")
    start.add_argument("--job-server", action="store_true",
                       help="also start Beam's job server, which outlives launchers (needed by --detach)")
    stop_cmd = commands.add_parser("stop", help="stop the cluster started in DIR")
    stop_cmd.add_argument("dir")
    args = parser.parse_args(argv)
    try:
        if args.command == "jar":
            server = jobserver.spark_job_server() if args.runner == "spark" else \
                jobserver.flink_job_server(args.flink_version)
            print(jobserver.assemble(server, log=lambda line: print(line, file=sys.stderr)))
        elif args.command == "start":
            cluster = start_spark(args.dir, workers=args.workers) if args.kind == "spark" else \
                start_flink(args.dir, args.flink_home, args.flink_version)
            if args.job_server:
                cluster.beam_args += start_job_server(cluster)
                cluster._save()
            print(" ".join(cluster.beam_args))
        else:
            stop(args.dir)
    except VidshardError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
