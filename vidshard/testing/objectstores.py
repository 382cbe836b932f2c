"""Local object storage servers for tests, docs and benchmarks: moto's S3 server, the GCS emulator,
and a counting, fault-injecting HTTP proxy to put in front of either.

Both servers are real HTTP servers run as subprocesses on 127.0.0.1 (moto's ``moto.server`` speaks
the S3 REST API; ``gcp-storage-emulator`` the GCS JSON API), started and stopped by the caller::

    with MotoServer() as s3, StoreProxy(s3.endpoint, Faults(fail_every=5)) as proxy:
        ...  # talk to proxy.endpoint; proxy.log holds every answered request
    with GcsEmulator() as gcs, StoreProxy(gcs.endpoint, Faults(fail_every=5, fail_status=429), api="gcs") as proxy:
        ...  # STORAGE_EMULATOR_HOST=proxy.endpoint

:class:`StoreProxy` forwards every request unchanged and can misbehave as object stores do under
load: answer every Nth request with the store's retryable error (S3: ``503 SlowDown``; GCS: ``503``
``backendError`` or ``429`` ``rateLimitExceeded``, with the JSON error body GCS sends), close every
Nth connection without an answer, or wait before answering.  It passes the client's ``Host`` on,
so the URLs the GCS emulator hands out (an object's ``mediaLink``, a resumable upload's
``Location``) point at the proxy, not past it.  Its log counts the body bytes of every
response, which is how tests measure that a zip is read by ranges, never whole.  Standard library
only (plus the servers' own packages, started as subprocesses).
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: Credentials moto accepts (any are accepted; these are the ones the tests and docs use).
TEST_ACCESS_KEY = "testing"
TEST_SECRET_KEY = "testing"
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
_SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
              b'<Message>Please reduce your request rate.</Message></Error>')
#: GCS's retryable answers (its JSON API's error format), by status.
_GCS_ERRORS = {503: ("Service Unavailable", "backendError", "We encountered an internal error. Please try again."),
               429: ("Too Many Requests", "rateLimitExceeded", "The rate of change requests to the object is too high.")}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before it listened on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f} s")


class _Subprocess:
    """A server subprocess on 127.0.0.1:port, stopped (and waited for) on exit."""

    what = "server"

    def __init__(self, port: int | None = None, environment: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self._environment = dict(environment or {})
        self._proc: subprocess.Popen | None = None

    def _command(self) -> list[str]:
        raise NotImplementedError

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "_Subprocess":
        self._proc = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, env={**os.environ, **self._environment})
        _wait_for_port(self.port, self._proc, self.what)
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MotoServer(_Subprocess):
    """moto's S3 server (``python -m moto.server``) on 127.0.0.1; buckets live in its memory.

    It accepts any credentials; ``environment={"INITIAL_NO_AUTH_ACTION_COUNT": "0"}`` makes it check
    them as S3 does (keys it does not know are refused with ``InvalidAccessKeyId``).
    """

    what = "moto's S3 server"

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]


class GcsEmulator(_Subprocess):
    """gcp-storage-emulator (the GCS JSON API) on 127.0.0.1, in memory; clients find it by
    ``STORAGE_EMULATOR_HOST`` (see :attr:`environment`)."""

    what = "gcp-storage-emulator"

    def _command(self) -> list[str]:
        script = ("import sys; from gcp_storage_emulator.__main__ import main; "
                  "sys.argv = ['gcp-storage-emulator'] + sys.argv[1:]; main()")
        return [sys.executable, "-c", script, "start", "--host", "127.0.0.1", "--port", str(self.port),
                "--in-memory", "--default-bucket", "vidshard-default"]

    @property
    def environment(self) -> dict[str, str]:
        """What a client process needs: the emulator's address, and no probe of a GCE metadata
        server (google-auth waits for one for about 20 s per process on a machine outside GCP)."""
        return {"STORAGE_EMULATOR_HOST": self.endpoint, "NO_GCE_CHECK": "True"}


@dataclass(frozen=True)
class Faults:
    """Misbehaviour of :class:`StoreProxy`; every count restarts with :meth:`StoreProxy.set_faults`."""

    fail_every: int = 0      # answer every Nth request with fail_status (see StoreProxy), unforwarded
    fail_status: int = 503   # S3: 503 only (SlowDown); GCS: 503 (backendError) or 429 (rateLimitExceeded)
    drop_every: int = 0      # close every Nth request's connection without any answer, unforwarded
    delay: float = 0.0       # seconds to wait before forwarding every request (a slow store)


@dataclass
class ProxyRecord:
    """One request the proxy answered: what was asked and how many body bytes went back."""

    method: str
    path: str
    range: str | None
    status: int
    body_bytes: int


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, faults: Faults, api: str) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.api = api
        parts = urllib.parse.urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.lock = threading.Lock()
        self.log: list[ProxyRecord] = []
        self.faults = faults
        self.requests = 0

    def handle_error(self, request: object, client_address: object) -> None:
        """A client hanging up (as clients do when they give up on a dropped connection) is not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _record(self, status: int, body_bytes: int) -> None:
        with self.server.lock:
            self.server.log.append(ProxyRecord(self.command, self.path, self.headers.get("Range"), status, body_bytes))

    def _fail(self, status: int) -> None:
        """Answer with the store's own retryable error for ``status``."""
        if self.server.api == "gcs":
            reason, code, message = _GCS_ERRORS[status]
            error = {"code": status, "message": message, "errors": [{"message": message, "domain": "global",
                                                                     "reason": code}]}
            body, content_type = json.dumps({"error": error}).encode(), "application/json; charset=UTF-8"
        else:
            reason, body, content_type = "Slow Down", _SLOW_DOWN, "application/xml"
        self._record(status, len(body))
        self.send_response(status, reason)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self) -> None:
        body = self._body()
        server = self.server
        with server.lock:
            server.requests += 1
            number, faults = server.requests, server.faults
        if faults.delay:
            time.sleep(faults.delay)
        if faults.drop_every and number % faults.drop_every == 0:
            self._record(0, 0)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if faults.fail_every and number % faults.fail_every == 0:
            self._fail(faults.fail_status)
            return
        headers = {key: value for key, value in self.headers.items() if key.lower() not in _HOP_BY_HOP}
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(*server.upstream, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body if body or self.command in ("PUT", "POST") else None,
                             headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        self._record(response.status, len(data))
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            # A HEAD answer's Content-Length is the object's size: passed on as it is.
            if key.lower() not in _HOP_BY_HOP and (key.lower() != "content-length" or self.command == "HEAD"):
                self.send_header(key, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _forward


class StoreProxy:
    """A counting, fault-injecting HTTP proxy on 127.0.0.1 in front of ``upstream`` (see the module doc);
    ``api`` (``"s3"`` or ``"gcs"``) is whose error answers it gives."""

    def __init__(self, upstream: str, faults: Faults = Faults(), api: str = "s3") -> None:
        if api not in ("s3", "gcs"):
            raise ValueError(f"api must be 's3' or 'gcs', not {api!r}")
        self._server = _ProxyServer(upstream, self._checked(faults, api), api)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def log(self) -> list[ProxyRecord]:
        with self._server.lock:
            return list(self._server.log)

    @staticmethod
    def _checked(faults: Faults, api: str) -> Faults:
        allowed = (503, 429) if api == "gcs" else (503,)
        if faults.fail_status not in allowed:
            raise ValueError(f"the {api} proxy answers faults with {allowed}, not {faults.fail_status}")
        return faults

    def set_faults(self, faults: Faults) -> None:
        """New faults, counted from the next request; the log is cleared too."""
        self._checked(faults, self._server.api)
        with self._server.lock:
            self._server.faults = faults
            self._server.requests = 0
            self._server.log.clear()

    def body_bytes(self, method: str = "GET", path_part: str = "") -> int:
        """Response body bytes of ``method`` requests whose path contains ``path_part``."""
        return sum(record.body_bytes for record in self.log
                   if record.method == method and path_part in record.path)

    def __enter__(self) -> "StoreProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


__all__ = ["Faults", "GcsEmulator", "MotoServer", "ProxyRecord", "StoreProxy", "TEST_ACCESS_KEY",
           "TEST_SECRET_KEY", "free_port"]
