"""A small threaded HTTP server with Range support and fault injection, for tests, the demo
and the benchmark.

It is a test/demo server, not a production file server: it binds to 127.0.0.1, serves the
regular files of one directory with GET and HEAD, answers ``Range: bytes=a-b``, ``bytes=a-``
and ``bytes=-n`` with ``206 Partial Content`` (``416`` when unsatisfiable; a multi-range or
malformed header is ignored and answered ``200`` with the whole file, as RFC 9110 allows), and
logs nothing.  :class:`Faults` makes it misbehave in the ways real servers do (5xx bursts,
dropped connections, short bodies, slow answers, ignoring Range) so the robustness of
:mod:`vidshard.sources` can be tested against real HTTP rather than mocks.

    with RangeServer(directory) as srv:
        url = srv.url("sample.zip")      # http://127.0.0.1:PORT/sample.zip

``python -m vidshard.testing.rangeserver DIR [--port N]`` serves a directory until interrupted.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_CHUNK = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class Faults:
    """Misbehaviour to inject; every count applies to the first N requests it can apply to.

    ``fail_first`` counts all requests; ``drop_first`` and ``truncate_first`` count GET
    responses with a body that were not failed.  Counters restart with
    :meth:`RangeServer.set_faults`.
    """

    fail_first: int = 0          # answer the first N requests with ``fail_status`` and no body
    fail_status: int = 503
    drop_first: int = 0          # send headers and half the body, then close the connection
    truncate_first: int = 0      # send half the body with a matching Content-Length, but a
                                 # Content-Range that still claims the whole range (a lying server)
    delay: float = 0.0           # seconds to wait before answering every request
    ignore_range: bool = False   # answer Range requests with 200 and the whole file


@dataclass
class RequestRecord:
    """One answered request, for assertions in tests.

    It is logged before the status line is sent and ``body_bytes`` grows before each chunk is
    written, so once a client has seen a response the log already holds it (never undercounts).
    """

    method: str
    path: str
    range: str | None
    status: int
    body_bytes: int


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that carries the served root, the faults and the request log."""

    daemon_threads = True

    def __init__(self, root: Path, faults: Faults, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.root = root
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.log: list[RequestRecord] = []
        self.reset(faults)

    def reset(self, faults: Faults) -> None:
        with self.lock:
            self.faults = faults
            self.seen = 0
            self.bodies = 0

    def next_fault(self, method: str) -> tuple[Faults, str | None]:
        """Pick the fault (``"fail"``, ``"drop"``, ``"truncate"`` or None) for a new request."""
        with self.lock:
            faults, index = self.faults, self.seen
            self.seen += 1
            if index < faults.fail_first:
                return faults, "fail"
            if method != "GET":
                return faults, None
            body_index = self.bodies
            self.bodies += 1
            if body_index < faults.drop_first:
                return faults, "drop"
            if body_index < faults.drop_first + faults.truncate_first:
                return faults, "truncate"
            return faults, None

    def record(self, method: str, path: str, range_header: str | None, status: int) -> RequestRecord:
        entry = RequestRecord(method, path, range_header, int(status), 0)
        with self.lock:
            self.log.append(entry)
        return entry

    def count_body(self, entry: RequestRecord, size: int) -> None:
        with self.lock:
            entry.body_bytes += size

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001 - socketserver API
        """Stay quiet: clients that hang up (timeouts in tests) are expected here."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Without TCP_NODELAY the body's last segment waits for a delayed ACK: ~40 ms per request.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base class name
        """No request logging: tests and the demo keep stderr for real problems."""

    def do_HEAD(self) -> None:  # noqa: N802 - http.server API
        self._serve(body=False)

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        faults, fault = self.server.next_fault(self.command)
        if faults.delay > 0 and self.server.stopping.wait(faults.delay):
            self.close_connection = True
            return
        range_header = self.headers.get("Range")
        if fault == "fail":
            self._empty(faults.fail_status, range_header)
            return
        path = self._resolve()
        if path is None:
            self._empty(HTTPStatus.NOT_FOUND, range_header)
            return
        size = path.stat().st_size
        span = None if faults.ignore_range else _parse_range(range_header, size)
        if span == "unsatisfiable":
            self._empty(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, range_header,
                        {"Content-Range": f"bytes */{size}"})
            return
        start, end = span if span else (0, size - 1)
        length = end - start + 1
        send = length
        if fault in ("drop", "truncate"):
            send = length // 2
        status = HTTPStatus.PARTIAL_CONTENT if span else HTTPStatus.OK
        entry = self.server.record(self.command, self.path, range_header, status)
        self.send_response(status)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        if span:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(send if fault == "truncate" else length))
        if fault == "drop":
            self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self._copy(path, start, send, entry)
        if fault == "drop":
            self.close_connection = True

    def _resolve(self) -> Path | None:
        """The served file for the request path, or None if missing or outside the root."""
        rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        path = (self.server.root / rel).resolve()
        if not path.is_relative_to(self.server.root) or not path.is_file():
            return None
        return path

    def _empty(self, status: int, range_header: str | None, headers: dict[str, str] | None = None) -> None:
        self.server.record(self.command, self.path, range_header, status)
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _copy(self, path: Path, start: int, count: int, entry: RequestRecord) -> None:
        """Write ``count`` bytes of ``path`` from ``start``, counting each chunk before it goes out."""
        sent = 0
        try:
            with open(path, "rb") as f:
                f.seek(start)
                while sent < count:
                    chunk = f.read(min(_CHUNK, count - sent))
                    if not chunk:
                        break
                    self.server.count_body(entry, len(chunk))
                    self.wfile.write(chunk)
                    sent += len(chunk)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """``(start, end)`` inclusive for a single byte range, ``"unsatisfiable"``, or None to ignore."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or (last != "" and int(last) < start):
        return "unsatisfiable" if start >= size else None
    return start, end


class RangeServer:
    """Serve ``root`` on 127.0.0.1 in a daemon thread; a context manager that starts and stops it."""

    def __init__(
        self, root: str | os.PathLike, faults: Faults | None = None, port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Bind 127.0.0.1:``port`` (0: a free port); with ``ssl_context`` serve HTTPS."""
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise NotADirectoryError(f"RangeServer root is not a directory: {self.root}")
        self._server = _Server(self.root, faults or Faults(), port)
        self._scheme = "http"
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, name: str = "") -> str:
        """The URL of ``name`` (a path relative to the root)."""
        return f"{self._scheme}://127.0.0.1:{self.port}/{urllib.parse.quote(name)}"

    def set_faults(self, faults: Faults | None) -> None:
        """Replace the injected faults and restart their counters (the request log is kept)."""
        self._server.reset(faults or Faults())

    @property
    def log(self) -> list[RequestRecord]:
        """A copy of every answered request so far, in order."""
        with self._server.lock:
            return [dataclasses.replace(entry) for entry in self._server.log]

    @property
    def requests_served(self) -> int:
        return len(self.log)

    @property
    def bytes_sent(self) -> int:
        """Body bytes written to clients so far (headers excluded)."""
        return sum(entry.body_bytes for entry in self.log)

    def start(self) -> "RangeServer":
        # A short poll interval makes stop() (and so every test's teardown) return in ~50 ms.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="RangeServer",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; delayed handlers wake up and exit; the port is released."""
        self._server.stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> "RangeServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve a directory until Ctrl-C (for the demo and manual tries of remote sources)."""
    parser = argparse.ArgumentParser(description="Serve a directory over HTTP with Range support (test/demo only).")
    parser.add_argument("directory")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args(argv)
    server = RangeServer(args.directory, port=args.port)
    print(f"Serving {server.root} at {server.url()}  (Ctrl-C stops)", flush=True)
    try:
        server._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
