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
response, which is how tests measure that a zip is read by ranges, never whole.

:class:`TensorFlowGcsFront` puts TensorFlow's own GCS filesystem, which ignores
``STORAGE_EMULATOR_HOST``, in front of the emulator: an HTTPS proxy that answers as Google's hosts::

    with GcsEmulator() as gcs, StoreProxy(gcs.endpoint, api="gcs") as proxy:
        with TensorFlowGcsFront(proxy.endpoint) as front:
            subprocess.run([...], env={**os.environ, **front.environment})  # tf.io.gfile / tf.data on gs://

Standard library only (plus the servers' own packages, started as subprocesses, and ``cryptography``
for the front's certificate).
"""
from __future__ import annotations

import http.client
import json
import os
import select
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
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


class _FrontServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _FrontHandler(socketserver.BaseRequestHandler):
    """One client connection: ``CONNECT host:443``, then TLS as ``host``, relayed to the upstream in plain HTTP."""

    server: "_FrontServer"

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        method, target = (head.split(b"\r\n", 1)[0].decode("latin-1").split() + ["", ""])[:2]
        if method != "CONNECT" or target.rsplit(":", 1)[0] not in GOOGLE_HOSTS:
            self.request.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        try:
            tls = self.server.context.wrap_socket(self.request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        with tls, socket.create_connection(self.server.upstream, timeout=60) as upstream:
            _relay(tls, upstream)


def _relay(tls: ssl.SSLSocket, upstream: socket.socket) -> None:
    """Copy bytes both ways until either side closes (one thread: an SSL socket is not shared between threads)."""
    while True:
        ready = [tls] if tls.pending() else select.select([tls, upstream], [], [], 60)[0]
        if not ready:
            return
        for source in ready:
            try:
                data = source.recv(1 << 16)
            except (OSError, ssl.SSLError):
                return
            if not data:
                return
            (upstream if source is tls else tls).sendall(data)


#: The hosts TensorFlow's GCS filesystem talks to (compiled into TSL's ``gcs_file_system.cc``).
GOOGLE_HOSTS = ("www.googleapis.com", "storage.googleapis.com")


class TensorFlowGcsFront:
    """An HTTPS proxy on 127.0.0.1 that answers TensorFlow's GCS filesystem as ``www.googleapis.com``
    and ``storage.googleapis.com``, relaying every request to ``upstream`` (the GCS emulator, or a
    :class:`StoreProxy` in front of it).

    TensorFlow's GCS filesystem has its endpoints compiled in and ignores ``STORAGE_EMULATOR_HOST``.
    Its HTTP client, libcurl, takes a proxy from ``https_proxy``, and TensorFlow takes the CA bundle
    from ``CURL_CA_BUNDLE`` and a bearer token from ``GOOGLE_AUTH_TOKEN_FOR_TESTING``, so a process
    started with :attr:`environment` sends ``CONNECT www.googleapis.com:443`` here; the proxy ends
    TLS with a certificate made for the two names (self-signed, valid one day, in a temporary folder)
    and relays the plain HTTP, ``Host`` header and all, to ``upstream``.  It refuses every other
    host.  Reads only: the emulator hands out ``http://`` resumable-upload URLs, which libcurl would
    then fetch past this proxy.  Needs ``cryptography`` (installed with apache-beam).
    """

    def __init__(self, upstream: str) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._folder: tempfile.TemporaryDirectory | None = None
        self._server: _FrontServer | None = None
        self._thread: threading.Thread | None = None
        self.ca_bundle = ""

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "start the front first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def environment(self) -> dict[str, str]:
        """What a TensorFlow process needs to reach the emulator through this front."""
        return {"https_proxy": self.endpoint, "HTTPS_PROXY": self.endpoint, "CURL_CA_BUNDLE": self.ca_bundle,
                "GOOGLE_AUTH_TOKEN_FOR_TESTING": "vidshard-test-token", "NO_GCE_CHECK": "True",
                "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"}

    def _certificate(self, folder: str) -> tuple[str, str]:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vidshard test front of the GCS emulator")])
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                       .serial_number(x509.random_serial_number())
                       .not_valid_before(now - datetime.timedelta(minutes=5))
                       .not_valid_after(now + datetime.timedelta(days=1))
                       .add_extension(x509.SubjectAlternativeName([x509.DNSName(host) for host in GOOGLE_HOSTS]),
                                      critical=False)
                       .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                       .sign(key, hashes.SHA256()))
        cert_path, key_path = os.path.join(folder, "front.pem"), os.path.join(folder, "front.key")
        with open(cert_path, "wb") as fh:
            fh.write(certificate.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as fh:
            fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
        return cert_path, key_path

    def __enter__(self) -> "TensorFlowGcsFront":
        self._folder = tempfile.TemporaryDirectory(prefix="vidshard-front-")
        self.ca_bundle, key_path = self._certificate(self._folder.name)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_bundle, key_path)
        self._server = _FrontServer(("127.0.0.1", 0), _FrontHandler)
        self._server.context, self._server.upstream = context, self._upstream
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        if self._folder is not None:
            self._folder.cleanup()


__all__ = ["Faults", "GOOGLE_HOSTS", "GcsEmulator", "MotoServer", "ProxyRecord", "StoreProxy", "TEST_ACCESS_KEY",
           "TEST_SECRET_KEY", "TensorFlowGcsFront", "free_port"]
