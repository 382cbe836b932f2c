"""An SDK worker pool for ``--environment_type EXTERNAL`` that several runner processes can share.

``python -m vidshard.pipelines.worker_pool --service_port PORT`` serves Beam's worker-pool API, as
``python -m apache_beam.runners.worker.worker_pool_main`` does, with three differences:

- Beam's pool keeps its SDK worker processes by worker id alone, but a runner numbers its workers
  per JVM: two Spark executors (or Flink task managers) that share one pool both ask for worker
  ``"2-1"``.  Beam's pool then forgets the first process, and when one executor stops its
  ``"2-1"`` it kills the other executor's worker, whose task waits for it forever ("Still
  waiting for startup of environment ... for worker id 2-1").  Here a worker is known by the
  requesting connection and its id, so a stop stops the worker that connection started.
- Beam's pool runs ``SdkHarness`` bare: the worker never learns the job's options (log levels,
  ``--sdk_harness_log_level_overrides``) and logs to the pool's stderr.  Here each worker runs
  ``apache_beam.runners.worker.sdk_worker_main``, as Beam's container boot does, with the job's
  options from the runner's provision service and its logs sent to the runner (they land in the
  Spark executor's or Flink task manager's log, beside the tasks that wrote them).
- Beam's pool starts workers as ``python`` from PATH; here that is this interpreter, so the
  workers run the vidshard and Beam of the pool's own virtualenv.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Sequence

import grpc
from apache_beam.portability.api import (
    beam_fn_api_pb2, beam_fn_api_pb2_grpc, beam_provision_api_pb2, beam_provision_api_pb2_grpc,
)
from apache_beam.runners.worker.worker_pool_main import kill_process_gracefully
from apache_beam.utils import thread_pool_executor
from google.protobuf import json_format, text_format

_LOGGER = logging.getLogger(__name__)


def _provision(request: beam_fn_api_pb2.StartWorkerRequest) -> beam_provision_api_pb2.ProvisionInfo:
    """The job's provision info (pipeline options, endpoints) from the runner, as Beam's container boot asks it."""
    with grpc.insecure_channel(request.provision_endpoint.url) as channel:
        stub = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel)
        return stub.GetProvisionInfo(beam_provision_api_pb2.GetProvisionInfoRequest(),
                                     metadata=[("worker_id", request.worker_id)], timeout=60).info


def worker_environment(request: beam_fn_api_pb2.StartWorkerRequest,
                       info: beam_provision_api_pb2.ProvisionInfo) -> dict[str, str]:
    """The environment ``sdk_worker_main`` reads (what Beam's container boot sets)."""
    env = {
        "WORKER_ID": request.worker_id,
        "CONTROL_API_SERVICE_DESCRIPTOR": text_format.MessageToString(request.control_endpoint),
        "LOGGING_API_SERVICE_DESCRIPTOR": text_format.MessageToString(request.logging_endpoint),
        "PIPELINE_OPTIONS": json_format.MessageToJson(info.pipeline_options),
        "RUNNER_CAPABILITIES": " ".join(info.runner_capabilities),
    }
    if info.HasField("status_endpoint"):
        env["STATUS_API_SERVICE_DESCRIPTOR"] = text_format.MessageToString(info.status_endpoint)
    return env


class WorkerPool(beam_fn_api_pb2_grpc.BeamFnExternalWorkerPoolServicer):
    """SDK worker processes keyed by (requesting connection, worker id); see the module doc."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[tuple[str, str], list[subprocess.Popen]] = {}

    def StartWorker(self, start_worker_request: beam_fn_api_pb2.StartWorkerRequest,  # noqa: N802 (gRPC's name)
                    context) -> beam_fn_api_pb2.StartWorkerResponse:
        try:
            env = {**os.environ, **worker_environment(start_worker_request, _provision(start_worker_request))}
            process = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.sdk_worker_main"],
                                       env=env, stdin=subprocess.DEVNULL)
        except Exception as exc:  # noqa: BLE001 - the runner gets the reason, as from Beam's pool
            _LOGGER.exception("could not start SDK worker %s", start_worker_request.worker_id)
            return beam_fn_api_pb2.StartWorkerResponse(error=f"{type(exc).__name__}: {exc}")
        _LOGGER.info("started SDK worker %s for %s (pid %d)", start_worker_request.worker_id, context.peer(),
                     process.pid)
        with self._lock:
            self._started.setdefault((context.peer(), start_worker_request.worker_id), []).append(process)
        return beam_fn_api_pb2.StartWorkerResponse()

    def StopWorker(self, stop_worker_request: beam_fn_api_pb2.StopWorkerRequest,  # noqa: N802
                   context) -> beam_fn_api_pb2.StopWorkerResponse:
        with self._lock:
            processes = self._started.pop((context.peer(), stop_worker_request.worker_id), [])
        for process in processes:
            _LOGGER.info("stopping SDK worker %s of %s", stop_worker_request.worker_id, context.peer())
            kill_process_gracefully(process)
        # Another connection's worker of that id is left alone; it ends when its runner hangs up.
        return beam_fn_api_pb2.StopWorkerResponse()

    def stop_all(self) -> None:
        """Stop every worker this pool started (when the pool stops)."""
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
    pool = WorkerPool()
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(pool, server)
    server.start()
    return address, server, pool


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the pool on ``--service_port`` until interrupted or terminated; then stop its workers."""
    parser = argparse.ArgumentParser(prog="python -m vidshard.pipelines.worker_pool", description=__doc__.split("\n")[0])
    parser.add_argument("--service_port", type=int, required=True, help="port of the worker pool service")
    args = parser.parse_args(argv)
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
