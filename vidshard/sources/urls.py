"""A URL list: a table file (CSV, JSON Lines, Parquet) whose rows name one ``http(s)://`` video each.

Datasets distributed as lists of URLs (video2dataset's input: a ``url`` column; vidshard's
manifest: ``path``) are read from here.  The launcher lists the table (:meth:`list_members`: the
distinct URLs); a worker never reads the table: it gets its rows' URLs in its work items and
fetches each video with one streaming GET, through the retrying session of :mod:`.http` (urllib3
retries connection errors, timeouts and 5xx; :func:`~.http.retrying` retries a body cut short),
refusing a body over the size cap from its ``Content-Length`` or as it streams past the cap.

Imports :mod:`.base`, :mod:`.http` and :mod:`vidshard.tables`.
"""
from __future__ import annotations

import threading
import urllib.parse
from pathlib import Path

import requests

from vidshard.errors import CatalogError, MemberReadError, SourceError
from vidshard.sources.base import Member, SourceOptions, VideoSource
from vidshard.sources.http import Exhausted, RemoteFailure, _network_reason, make_session, retrying
from vidshard.tables import read_rows

#: Bytes read from a body per call while streaming it.
_CHUNK = 1 << 20


def is_url(text: str) -> bool:
    """Whether ``text`` is an ``http(s)://`` URL with a host."""
    parts = urllib.parse.urlsplit(text)
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


class UrlListSource(VideoSource):
    """The videos a table file lists by URL; each read is one streaming, capped, retried GET."""

    def __init__(self, uri: str, path: Path, options: SourceOptions) -> None:
        super().__init__(uri, options)
        self._path = path
        self._session: requests.Session | None = None
        self._lock = threading.Lock()

    def list_members(self) -> list[Member]:
        """The distinct URLs of the table's ``path`` (or ``url``) column, in row order; sizes unknown (0)."""
        try:
            _, rows = read_rows(str(self._path))
        except CatalogError as exc:
            raise SourceError(str(exc)) from None
        members: dict[str, Member] = {}
        for where, row in rows:
            value = row.get("path") or row.get("url")
            url = "" if value is None else str(value).strip()
            if not is_url(url):
                raise SourceError(f"{where}: {url!r} is not an http:// or https:// URL (a URL list names one per row)")
            # A segment's URL carries #t=...; the file is the URL before it.
            members.setdefault(url.split("#", 1)[0], Member(url.split("#", 1)[0], 0))
        if not members:
            raise SourceError(f"URL list {self.uri} names no video")
        return list(members.values())

    def _get(self) -> requests.Session:
        if self._session is None:
            self._session = make_session(self.options)
        return self._session

    def _fetch(self, url: str) -> bytes:
        """One GET of the whole body, streamed and capped; a short body is a transient fault."""
        cap = self.options.max_member_bytes
        try:
            response = self._get().get(url, stream=True, timeout=self.options.timeout,
                                       verify=self.options.verify_tls)
        except requests.RequestException as exc:
            raise RemoteFailure(_network_reason(exc, self.options.timeout), transient=False) from exc
        with response:
            if response.status_code != 200:
                raise RemoteFailure(f"HTTP {response.status_code} {response.reason or ''}".strip(), transient=False)
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > cap:
                raise self._too_big(url, f"declared size {declared} bytes")
            body = bytearray()
            for chunk in response.raw.stream(_CHUNK, decode_content=True):
                body += chunk
                if len(body) > cap:
                    raise self._too_big(url, f"actual size over {cap} bytes")
            if declared is not None and declared.isdigit() and len(body) < int(declared):
                raise RemoteFailure(f"short body: {len(body)} of {declared} bytes", transient=True)
        return bytes(body)

    def read(self, name: str) -> bytes:
        if not is_url(name):
            raise MemberReadError(f"{name}: not an http:// or https:// URL")
        with self._lock:
            try:
                return retrying(lambda: self._fetch(name), self.options, lambda: None)
            except MemberReadError:
                raise
            except (Exhausted, RemoteFailure) as exc:
                raise MemberReadError(f"{name}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None
