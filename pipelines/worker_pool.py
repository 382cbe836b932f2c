"""Beam's SDK worker pool for ``--environment_type EXTERNAL``, safe for several runner processes at once.

``python -m vidshard.pipelines.worker_pool --service_port PORT`` serves what
``python -m apache_beam.runners.worker.worker_pool_main`` serves, with two differences:

- Beam's pool keeps its SDK worker processes by worker id alone, but a runner numbers its workers
  per JVM: two Spark executors (or Flink task managers) that share one pool both ask for worker
  ``"2-1"``.  Beam's pool then forgets the first process, and when one executor stops its
  ``"2-1"`` it kills the other executor's worker, whose task waits for it forever ("Still
  waiting for startup of environment ... for worker id 2-1").  Here a worker is known by the
  requesting connection and its id, so a stop stops the worker that connection started.
- Beam's pool starts workers as ``python -c ...`` from PATH; here that ``python`` is this
  interpreter, so the workers run the vidshard and Beam of the pool's own virtualenv.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import signal
import threading
from typing import Sequence

import grpc
from apache_beam.portability.api import beam_fn_api_pb2, beam_fn_api_pb2_grpc
from apache_beam.runners.worker.worker_pool_main import BeamFnExternalWorkerPoolServicer, kill_process_gracefully
from apache_beam.utils import thread_pool_executor

_LOGGER = logging.getLogger(__name__)


class WorkerPool(BeamFnExternalWorkerPoolServicer):
    """Beam's worker pool (process mode), with workers keyed by (requesting peer, worker id)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._started: dict[tuple[str, str], list] = {}

    def StartWorker(self, start_worker_request: beam_fn_api_pb2.StartWorkerRequest,  # noqa: N802 (gRPC's name)
                    context) -> beam_fn_api_pb2.StartWorkerResponse:
        with self._lock:
            response = super().StartWorker(start_worker_request, context)
            process = self._worker_processes.pop(start_worker_request.worker_id, None)
            if process is not None:
                self._started.setdefault((context.peer(), start_worker_request.worker_id), []).append(process)
        return response

    def StopWorker(self, stop_worker_request: beam_fn_api_pb2.StopWorkerRequest,  # noqa: N802
                   context) -> beam_fn_api_pb2.StopWorkerResponse:
        with self._lock:
            processes = self._started.pop((context.peer(), stop_worker_request.worker_id), [])
        for process in processes:
            _LOGGER.info("Stopping worker %s of %s", stop_worker_request.worker_id, context.peer())
            kill_process_gracefully(process)
        # Another connection's worker of that id is left alone; it ends when its runner hangs up.
        return beam_fn_api_pb2.StopWorkerResponse()

    def stop_all(self) -> None:
        """Stop every worker this pool started (at exit)."""
        with self._lock:
            processes = [process for started in self._started.values() for process in started]
            self._started.clear()
        for process in processes:
            if process.poll() is None:
                kill_process_gracefully(process)


def serve(port: int) -> tuple[str, grpc.Server, WorkerPool]:
    """Start the pool's gRPC service on ``port`` (0: any free port); return its address, server and pool."""
    server = grpc.server(thread_pool_executor.shared_unbounded_instance(),
                         options=[("grpc.http2.max_pings_without_data", 0), ("grpc.http2.max_ping_strikes", 0)])
    address = f"localhost:{server.add_insecure_port(f'[::]:{port}')}"
    pool = WorkerPool(use_process=True, data_buffer_time_limit_ms=-1)
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(pool, server)
    server.start()
    return address, server, pool


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the pool on ``--service_port`` until interrupted or terminated; then stop its workers."""
    parser = argparse.ArgumentParser(prog="python -m vidshard.pipelines.worker_pool", description=__doc__.split("\n")[0])
    parser.add_argument("--service_port", type=int, required=True, help="port of the worker pool service")
    args = parser.parse_args(argv)
    # Beam's pool runs `python -c ...`: make that this interpreter.
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    logging.basicConfig(level=logging.INFO)
    address, server, pool = serve(args.service_port)
    _LOGGER.info("vidshard worker pool listening at %s", address)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    server.stop(0)
    pool.stop_all()


if __name__ == "__main__":
    main()
