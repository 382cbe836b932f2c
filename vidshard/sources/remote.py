"""A zip behind an http(s) URL, read by HTTP Range requests through :mod:`remotezip`.

Imports :mod:`.base`, :mod:`.archive` (the zip checks it shares with local zips) and
:mod:`.http` (session, strict fetcher, bounded retries).
"""
from __future__ import annotations

import threading
import zipfile

import remotezip

from vidshard.errors import MemberReadError, SourceError, SourceUnreachableError
from vidshard.sources.archive import CORRUPT_MEMBER, ZipSource, open_failure
from vidshard.sources.base import SourceOptions, one_line
from vidshard.sources.http import CheckedFetcher, Exhausted, RemoteFailure, make_session, retrying


class RemoteZipSource(ZipSource):
    """A zip behind an http(s) URL, read by HTTP Range requests through :mod:`remotezip`.

    One ``requests.Session`` per source (so one per Beam worker) with urllib3 ``Retry``
    mounted.  Reads are serialised with a lock: remotezip keeps one stream position.
    Any failure drops the archive handle (remotezip's stream position may be stale), so the
    next attempt or read reopens it: two small range requests for the central directory.
    """

    def __init__(self, uri: str, options: SourceOptions) -> None:
        super().__init__(uri, options)
        self._session = make_session(options)
        self._lock = threading.Lock()
        self._archive: remotezip.RemoteZip | None = None
        try:
            archive = retrying(self._open_archive, options, self._drop_archive, permanent=(zipfile.BadZipFile,))
        except (Exhausted, RemoteFailure) as exc:
            self._session.close()
            raise _failure(exc, SourceError)(f"cannot open {uri}: {exc}") from exc
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
            self._session.close()
            raise open_failure(uri, exc) from exc
        self._index(archive.infolist())

    def _open_archive(self) -> remotezip.RemoteZip:
        if self._archive is None:
            self._archive = remotezip.RemoteZip(
                self.uri, session=self._session, fetcher=CheckedFetcher,
                timeout=self.options.timeout, verify=self.options.verify_tls,
            )
        return self._archive

    def read(self, name: str) -> bytes:
        info = self._checked_info(name)
        with self._lock:
            try:
                return retrying(lambda: self._read_capped(self._open_archive(), info), self.options, self._drop_archive)
            except MemberReadError:
                raise
            except (Exhausted, RemoteFailure) as exc:
                raise _failure(exc, MemberReadError)(f"{name}: {exc}") from exc
            except CORRUPT_MEMBER as exc:
                raise MemberReadError(f"{name}: corrupt member ({one_line(exc)})") from exc

    def close(self) -> None:
        with self._lock:
            self._drop_archive()
            self._session.close()


def _failure(exc: BaseException, otherwise: type[SourceError]) -> type[SourceError]:
    """:class:`SourceUnreachableError` for a server that could not be reached at all, else ``otherwise``."""
    return SourceUnreachableError if getattr(exc, "unreachable", False) else otherwise
