"""HTTP for remote zips: the retrying ``requests`` session, a strict :mod:`remotezip` fetcher,
the bounded retry of what urllib3 cannot retry, and one-line wording of network faults.

Transient faults are retried in two layers: urllib3's ``Retry`` on the session retries
connection errors, timeouts and 500/502/503/504 before any body byte arrives; :func:`retrying`
retries what urllib3 cannot see (a connection dropped mid-body, a short body).

Imports :mod:`.base` only.
"""
from __future__ import annotations

import re
import time
import zipfile
from typing import Callable, TypeVar

import remotezip
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from vidshard.sources.base import SourceOptions, one_line

#: HTTP statuses that urllib3 retries with backoff.
RETRY_STATUSES: tuple[int, ...] = (500, 502, 503, 504)

T = TypeVar("T")


class RemoteFailure(remotezip.RemoteZipError):
    """A failure found by the fetcher; not an IOError, so remotezip passes it on unwrapped.

    ``transient`` says whether a fresh request may succeed (a short body) or not (404, Range
    ignored, or a request that urllib3 already retried until its budget ran out).  ``unreachable``:
    the server could not be reached at all (no connection, no name resolution) after those retries.
    """

    def __init__(self, reason: str, transient: bool, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.transient = transient
        self.unreachable = unreachable


class Exhausted(Exception):
    """Bounded retries ran out; the message holds the last fault."""


class CheckedFetcher(remotezip.RemoteFetcher):
    """remotezip's fetcher, made strict: only a 206 with Content-Range is data, bodies are complete.

    remotezip's own check (a missing Content-Range) would also catch a 200, but it leaves the
    response open and loses the status; this one closes it unread and says what happened.
    """

    def _request(self, kwargs: dict) -> tuple:
        try:
            response = self._session.get(self._url, stream=True, **kwargs)
        except requests.RequestException as exc:
            unreachable = isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.exceptions.SSLError)
            raise RemoteFailure(_network_reason(exc, kwargs.get("timeout")), transient=False,
                                unreachable=unreachable) from exc
        if response.status_code == 206 and "Content-Range" in response.headers:
            return response.raw, response.headers["Content-Range"]
        response.close()  # never read a body we did not ask for (a 200 would be the whole file)
        if response.status_code == 200:
            raise RemoteFailure(
                "server ignores HTTP Range requests (it answered 200 with the whole file); vidshard reads "
                "remote zips by range only and will not download the whole file: download it and pass "
                "the local path", transient=False)
        if response.status_code == 416:
            raise RemoteFailure("HTTP 416 Range Not Satisfiable (empty file?)", transient=False)
        reason = f"HTTP {response.status_code} {response.reason or ''}".strip()
        raise RemoteFailure(reason, transient=False)

    def fetch(self, data_range: tuple, stream: bool = False) -> remotezip.PartialBuffer:
        buffer = super().fetch(data_range, stream=stream)
        if not stream:  # read eagerly: check that the whole announced range arrived
            received = len(buffer.buffer.getbuffer())
            if received < len(buffer):
                buffer.close()
                raise RemoteFailure(f"short body: {received} of {len(buffer)} bytes", transient=True)
        return buffer


#: Remote faults worth a fresh request: dropped connections and short bodies during a body
#: read (urllib3 retries only before the first body byte), and what zipfile makes of them.
_TRANSIENT = (urllib3.exceptions.HTTPError, OSError, EOFError, zipfile.BadZipFile, remotezip.OutOfBound)


def retrying(action: Callable[[], T], options: SourceOptions, on_fault: Callable[[], None],
             permanent: tuple = ()) -> T:
    """Run ``action``; on a transient fault call ``on_fault``, back off and try again, boundedly.

    ``on_fault`` runs after any failure (transient or not), so the caller can drop state that
    the fault may have left stale.  Raises :class:`Exhausted` when the retries run out.
    """
    attempts = options.retries + 1
    for attempt in range(attempts):
        if attempt:
            time.sleep(options.backoff * 2 ** (attempt - 1))
        try:
            return action()
        except Exception as exc:
            on_fault()
            if isinstance(exc, RemoteFailure):
                transient = exc.transient
            else:
                transient = isinstance(exc, _TRANSIENT) and not isinstance(exc, permanent)
            if not transient:
                raise
            last: BaseException = exc
    raise Exhausted(f"{_fault_text(last)} (gave up after {attempts} attempts)")


def make_session(options: SourceOptions) -> requests.Session:
    """A session whose adapter retries connection errors, timeouts and 5xx with backoff.

    ``Retry-After`` is not honoured so a server cannot stretch the bounded retry time.
    """
    retry = Retry(
        total=None, connect=options.retries, read=options.retries, status=options.retries,
        other=options.retries, status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"GET", "HEAD"}),
        backoff_factor=options.backoff, raise_on_status=True, respect_retry_after_header=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "vidshard"
    return session


def _network_reason(exc: requests.RequestException, timeout: float | None) -> str:
    """A short reason for a request that failed after urllib3's retries."""
    reason: BaseException = exc
    inner = exc.args[0] if exc.args else None
    if isinstance(inner, urllib3.exceptions.MaxRetryError) and inner.reason is not None:
        reason = inner.reason
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS error, certificate not verified ({_errno_text(reason)})"
    if isinstance(reason, urllib3.exceptions.ResponseError):
        return f"server kept failing ({reason})"
    # NameResolutionError < NewConnectionError < ConnectTimeoutError in urllib3 2: test in that order.
    if isinstance(reason, urllib3.exceptions.NameResolutionError):
        return "cannot resolve the host name"
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        return f"cannot connect to the host ({_errno_text(reason)})"
    if isinstance(exc, requests.exceptions.ConnectTimeout) or isinstance(reason, urllib3.exceptions.ConnectTimeoutError):
        return f"connection timed out after {timeout} s"
    if isinstance(exc, requests.exceptions.ReadTimeout) or isinstance(reason, urllib3.exceptions.ReadTimeoutError):
        return f"no response within {timeout} s"
    return _fault_text(reason)


def _fault_text(exc: BaseException) -> str:
    """One line for a fault met while reading a body (urllib3 wraps the cause in a tuple)."""
    if isinstance(exc, urllib3.exceptions.ProtocolError) and len(exc.args) == 2:
        return f"{exc.args[0]}"
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return "read timed out"
    return one_line(exc)


def _errno_text(exc: BaseException) -> str:
    """``Connection refused`` out of urllib3's ``...: [Errno 111] Connection refused``."""
    text = one_line(exc)
    match = re.search(r"\[Errno [^\]]*\] ([^')\"]*)", text)
    if match:
        return match.group(1).strip()
    return text
