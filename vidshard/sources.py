"""Video sources: one interface over a remote zip (HTTP Range), a local zip and a local folder.

A source lists its video members and reads one member's bytes into memory; nothing is ever
extracted to disk.  ``open_source`` picks the kind from the URI:

* ``http(s)://host/…`` -> :class:`RemoteZipSource`: the zip's central directory and each member
  are fetched with HTTP Range requests through :mod:`remotezip`; the whole file is never
  downloaded (a server that ignores Range is refused).  Transient faults are retried with
  backoff, in two layers: urllib3's ``Retry`` on the session retries connection errors,
  timeouts and 500/502/503/504 before any body byte arrives; a bounded loop around each read
  retries what urllib3 cannot see (a connection dropped mid-body, a short body).
* an existing local file -> :class:`LocalZipSource` (:mod:`zipfile`);
* an existing local directory -> :class:`FolderSource` (``<split>/<class>/*.avi`` or flat names,
  walked recursively; nothing that resolves outside the folder is read).

Errors: anything that stops the whole source (unreachable, 404, not a zip, no videos, ...) is a
:class:`~vidshard.errors.SourceError` with one clear line; anything wrong with one member is a
:class:`~vidshard.errors.MemberReadError`, which a job records and goes past.
"""
from __future__ import annotations

import abc
import os
import re
import stat
import threading
import time
import urllib.parse
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, TypeVar

import remotezip
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from vidshard.errors import MemberReadError, SourceError

#: Extensions (lower case) of the members a source lists; everything else is ignored.
VIDEO_EXTENSIONS: tuple[str, ...] = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v")

#: Largest member read into memory: UCF101's largest video is ~30 MB, so 1 GiB leaves room for
#: other datasets while a zip bomb cannot fill memory.
DEFAULT_MAX_MEMBER_BYTES: int = 1 << 30

#: HTTP statuses that urllib3 retries with backoff.
RETRY_STATUSES: tuple[int, ...] = (500, 502, 503, 504)

#: Members under this folder are macOS resource forks with video-like names, not videos.
_MACOS_METADATA = "__MACOSX"

_ENCRYPTED_FLAG = 0x1
T = TypeVar("T")


@dataclass(frozen=True)
class SourceOptions:
    """How a source talks to the network and what it accepts; picklable, so Beam DoFns carry it."""

    timeout: float = 30.0           # seconds per HTTP request (connect, and each socket read)
    retries: int = 4                # bounded retries of each kind of transient fault
    backoff: float = 0.5            # first backoff in seconds, doubled on every retry
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES
    verify_tls: bool = True         # verify HTTPS certificates (turn off only for a trusted host)

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise SourceError(f"source timeout must be > 0 seconds, got {self.timeout}")
        if self.retries < 0:
            raise SourceError(f"source retries must be >= 0, got {self.retries}")
        if self.backoff < 0:
            raise SourceError(f"source backoff must be >= 0 seconds, got {self.backoff}")
        if self.max_member_bytes <= 0:
            raise SourceError(f"max member size must be > 0 bytes, got {self.max_member_bytes}")


@dataclass(frozen=True)
class Member:
    """One video in a source: its name (the id used everywhere) and uncompressed size in bytes."""

    name: str
    size: int


def is_video_name(name: str) -> bool:
    """True for a file name with a video extension outside macOS metadata folders."""
    return (
        not name.endswith("/")
        and name.lower().endswith(VIDEO_EXTENSIONS)
        and _MACOS_METADATA not in PurePosixPath(name).parts
    )


class VideoSource(abc.ABC):
    """A listable collection of videos; a context manager whose ``close`` frees sessions/files."""

    uri: str

    def __init__(self, uri: str, options: SourceOptions) -> None:
        self.uri = uri
        self.options = options

    @abc.abstractmethod
    def list_members(self) -> list[Member]:
        """The video members (no directories, no other files); SourceError if there are none."""

    @abc.abstractmethod
    def read(self, name: str) -> bytes:
        """The bytes of member ``name``; MemberReadError with the reason if they cannot be read."""

    def close(self) -> None:
        """Release what the source holds; the default holds nothing."""

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _no_videos(self) -> SourceError:
        return SourceError(f"no video members ({' '.join(VIDEO_EXTENSIONS)}) in {self.uri}")

    def _too_big(self, name: str, what: str) -> MemberReadError:
        """``what`` says which size, e.g. ``declared size 5000 bytes``."""
        return MemberReadError(f"{name}: {what} exceeds the member size cap of {self.options.max_member_bytes} bytes")


def open_source(uri: str | os.PathLike, options: SourceOptions = SourceOptions()) -> VideoSource:
    """Open ``uri`` (an http(s) URL of a zip, a local zip, or a local folder) as a VideoSource."""
    uri = os.fspath(uri)
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme in ("http", "https"):
        return RemoteZipSource(uri, options)
    if scheme:
        raise SourceError(
            f"unsupported source {uri!r}: only http://, https:// URLs and local paths are accepted"
        )
    path = Path(uri).expanduser()
    if path.is_dir():
        return FolderSource(uri, path, options)
    if path.is_file():
        return LocalZipSource(uri, path, options)
    if path.exists() or path.is_symlink():
        raise SourceError(f"source {uri} is neither a zip file nor a folder")
    raise SourceError(f"source not found: {uri}")


# --------------------------------------------------------------------------------------------
# zip archives (local and remote)


class _ZipSource(VideoSource):
    """What local and remote zips share: the listing and the checks made before reading."""

    def _index(self, infos: list[zipfile.ZipInfo]) -> None:
        """Keep the video members of the central directory, in archive order, counting copies."""
        self._infos: dict[str, zipfile.ZipInfo] = {}
        self._copies: dict[str, int] = {}
        for info in infos:
            if is_video_name(info.filename):
                self._infos.setdefault(info.filename, info)
                self._copies[info.filename] = self._copies.get(info.filename, 0) + 1

    def list_members(self) -> list[Member]:
        """Video members in archive order; a name stored twice is listed once (reading it fails)."""
        if not self._infos:
            raise self._no_videos()
        return [Member(name, info.file_size) for name, info in self._infos.items()]

    def _checked_info(self, name: str) -> zipfile.ZipInfo:
        """The member's ZipInfo after the checks that need no read: exists, unique, clear, small."""
        info = self._infos.get(name)
        if info is None:
            raise MemberReadError(f"{name}: no video member of that name in {self.uri}")
        if self._copies[name] > 1:
            raise MemberReadError(f"{name}: the archive holds {self._copies[name]} members of that name; ambiguous")
        if info.flag_bits & _ENCRYPTED_FLAG:
            raise MemberReadError(f"{name}: encrypted member (encrypted zips are not supported)")
        if info.file_size > self.options.max_member_bytes:
            raise self._too_big(name, f"declared size {info.file_size} bytes")
        return info

    def _read_capped(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
        """Read at most the cap, whatever the header says; zipfile checks the CRC at the end."""
        cap = self.options.max_member_bytes
        with archive.open(info) as member:
            data = member.read(cap + 1)
        if len(data) > cap:
            raise self._too_big(info.filename, f"actual size over {cap} bytes")
        return data


#: Member read failures that are the member's own fault (retrying cannot help).
_CORRUPT_MEMBER = (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError, ValueError, OSError)


def _open_failure(uri: str, exc: BaseException) -> SourceError:
    """One line for a zip that cannot be opened: bad UTF-8 names, not a zip, unreadable."""
    if isinstance(exc, UnicodeDecodeError):
        return SourceError(f"{uri}: a member name is flagged UTF-8 but is not valid UTF-8 ({exc.reason})")
    if isinstance(exc, (zipfile.BadZipFile, EOFError, ValueError)):
        return SourceError(f"{uri} is not a zip archive ({_one_line(exc)})")
    return SourceError(f"cannot read {uri}: {_one_line(exc)}")


class LocalZipSource(_ZipSource):
    """A zip file on a local (or mounted) file system, read with :mod:`zipfile`."""

    def __init__(self, uri: str, path: Path, options: SourceOptions) -> None:
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError) as exc:
            raise _open_failure(uri, exc) from exc
        super().__init__(uri, options)
        self._archive = archive
        self._index(archive.infolist())

    def read(self, name: str) -> bytes:
        info = self._checked_info(name)
        try:
            return self._read_capped(self._archive, info)
        except _CORRUPT_MEMBER as exc:
            raise MemberReadError(f"{name}: corrupt member ({_one_line(exc)})") from exc

    def close(self) -> None:
        self._archive.close()


class _RemoteFailure(remotezip.RemoteZipError):
    """A failure found by the fetcher; not an IOError, so remotezip passes it on unwrapped.

    ``transient`` says whether a fresh request may succeed (a short body) or not (404, Range
    ignored, or a request that urllib3 already retried until its budget ran out).
    """

    def __init__(self, reason: str, transient: bool) -> None:
        super().__init__(reason)
        self.transient = transient


class _CheckedFetcher(remotezip.RemoteFetcher):
    """remotezip's fetcher, made strict: only a 206 with Content-Range is data, bodies are complete.

    remotezip's own check (a missing Content-Range) would also catch a 200, but it leaves the
    response open and loses the status; this one closes it unread and says what happened.
    """

    def _request(self, kwargs: dict) -> tuple:
        try:
            response = self._session.get(self._url, stream=True, **kwargs)
        except requests.RequestException as exc:
            raise _RemoteFailure(_network_reason(exc, kwargs.get("timeout")), transient=False) from exc
        if response.status_code == 206 and "Content-Range" in response.headers:
            return response.raw, response.headers["Content-Range"]
        response.close()  # never read a body we did not ask for (a 200 would be the whole file)
        if response.status_code == 200:
            raise _RemoteFailure(
                "server ignores HTTP Range requests (it answered 200 with the whole file); vidshard reads "
                "remote zips by range only and will not download the whole file: download it and pass "
                "the local path", transient=False)
        if response.status_code == 416:
            raise _RemoteFailure("HTTP 416 Range Not Satisfiable (empty file?)", transient=False)
        reason = f"HTTP {response.status_code} {response.reason or ''}".strip()
        raise _RemoteFailure(reason, transient=False)

    def fetch(self, data_range: tuple, stream: bool = False) -> remotezip.PartialBuffer:
        buffer = super().fetch(data_range, stream=stream)
        if not stream:  # read eagerly: check that the whole announced range arrived
            received = len(buffer.buffer.getbuffer())
            if received < len(buffer):
                buffer.close()
                raise _RemoteFailure(f"short body: {received} of {len(buffer)} bytes", transient=True)
        return buffer


#: Remote faults worth a fresh request: dropped connections and short bodies during a body
#: read (urllib3 retries only before the first body byte), and what zipfile makes of them.
_TRANSIENT = (urllib3.exceptions.HTTPError, OSError, EOFError, zipfile.BadZipFile, remotezip.OutOfBound)


class RemoteZipSource(_ZipSource):
    """A zip behind an http(s) URL, read by HTTP Range requests through :mod:`remotezip`.

    One ``requests.Session`` per source (so one per Beam worker) with urllib3 ``Retry``
    mounted.  Reads are serialised with a lock: remotezip keeps one stream position.
    """

    def __init__(self, uri: str, options: SourceOptions) -> None:
        super().__init__(uri, options)
        self._session = _make_session(options)
        self._lock = threading.Lock()
        self._archive: remotezip.RemoteZip | None = None
        try:
            archive = self._retrying(self._open_archive, permanent=(zipfile.BadZipFile,))
        except (_Exhausted, _RemoteFailure) as exc:
            self._session.close()
            raise SourceError(f"cannot open {uri}: {exc}") from exc
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
            self._session.close()
            raise _open_failure(uri, exc) from exc
        self._index(archive.infolist())

    def _open_archive(self) -> remotezip.RemoteZip:
        if self._archive is None:
            self._archive = remotezip.RemoteZip(
                self.uri, session=self._session, fetcher=_CheckedFetcher,
                timeout=self.options.timeout, verify=self.options.verify_tls,
            )
        return self._archive

    def _drop_archive(self) -> None:
        """Forget the archive handle after a fault: remotezip's stream state may be stale."""
        if self._archive is not None:
            try:
                self._archive.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is gone anyway
                pass
            self._archive = None

    def _retrying(self, action: Callable[[], T], permanent: tuple = ()) -> T:
        """Run ``action``; on a transient fault drop the archive, back off and try again, boundedly.

        Any failure drops the archive handle (remotezip's stream position may be stale), so
        the next attempt or read reopens it: two small range requests for the central directory.
        """
        attempts = self.options.retries + 1
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.options.backoff * 2 ** (attempt - 1))
            try:
                return action()
            except Exception as exc:
                self._drop_archive()
                if isinstance(exc, _RemoteFailure):
                    transient = exc.transient
                else:
                    transient = isinstance(exc, _TRANSIENT) and not isinstance(exc, permanent)
                if not transient:
                    raise
                last: BaseException = exc
        raise _Exhausted(f"{_fault_text(last)} (gave up after {attempts} attempts)")

    def read(self, name: str) -> bytes:
        info = self._checked_info(name)
        with self._lock:
            try:
                return self._retrying(lambda: self._read_capped(self._open_archive(), info))
            except MemberReadError:
                raise
            except (_Exhausted, _RemoteFailure) as exc:
                raise MemberReadError(f"{name}: {exc}") from exc
            except _CORRUPT_MEMBER as exc:
                raise MemberReadError(f"{name}: corrupt member ({_one_line(exc)})") from exc

    def close(self) -> None:
        with self._lock:
            self._drop_archive()
            self._session.close()


class _Exhausted(Exception):
    """Bounded retries ran out; the message holds the last fault."""


def _make_session(options: SourceOptions) -> requests.Session:
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
    return _one_line(exc)


def _errno_text(exc: BaseException) -> str:
    """``Connection refused`` out of urllib3's ``...: [Errno 111] Connection refused``."""
    text = _one_line(exc)
    match = re.search(r"\[Errno [^\]]*\] ([^')\"]*)", text)
    if match:
        return match.group(1).strip()
    return text


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


# --------------------------------------------------------------------------------------------
# local folders


class FolderSource(VideoSource):
    """Videos in a local folder, walked recursively; names are relative POSIX paths.

    Symbolic links are followed only while they stay inside the folder: directories that
    resolve outside are not walked, and files that do are listed but refused on read.
    """

    def __init__(self, uri: str, path: Path, options: SourceOptions) -> None:
        super().__init__(uri, options)
        self._root = os.path.realpath(path)

    def _inside(self, real: str) -> bool:
        return os.path.commonpath([self._root, real]) == self._root

    def list_members(self) -> list[Member]:
        """Video files under the folder, sorted by relative POSIX path."""
        members: list[Member] = []
        visited: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(self._root, followlinks=True, onerror=self._walk_error):
            visited.add(os.path.realpath(dirpath))
            dirnames[:] = [d for d in dirnames if self._walkable(os.path.join(dirpath, d), visited)]
            for filename in filenames:
                full = os.path.join(dirpath, filename)
                name = Path(os.path.relpath(full, self._root)).as_posix()
                if is_video_name(name):
                    members.append(Member(name, self._listed_size(full)))
        if not members:
            raise self._no_videos()
        return sorted(members, key=lambda m: m.name)

    def _walkable(self, path: str, visited: set[str]) -> bool:
        real = os.path.realpath(path)
        return self._inside(real) and real not in visited

    @staticmethod
    def _walk_error(exc: OSError) -> None:
        raise SourceError(f"cannot list folder {exc.filename}: {exc.strerror}")

    def _listed_size(self, full: str) -> int:
        """Size of a regular file inside the folder; 0 for anything read() will refuse."""
        real = os.path.realpath(full)
        try:
            st = os.stat(real)
        except OSError:
            return 0
        return st.st_size if self._inside(real) and stat.S_ISREG(st.st_mode) else 0

    def read(self, name: str) -> bytes:
        rel = PurePosixPath(name)
        if not name or rel.is_absolute() or ".." in rel.parts or not is_video_name(name):
            raise MemberReadError(f"{name}: not a video member name of this folder")
        real = os.path.realpath(os.path.join(self._root, *rel.parts))
        if not self._inside(real):
            raise MemberReadError(f"{name}: resolves outside the source folder (symbolic link?); refused")
        try:
            # O_NONBLOCK: opening a FIFO named like a video must not hang; it is refused below.
            fd = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            raise MemberReadError(f"{name}: no such file in {self.uri}") from None
        except OSError as exc:
            raise MemberReadError(f"{name}: cannot open ({exc.strerror})") from exc
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise MemberReadError(f"{name}: not a regular file")
            cap = self.options.max_member_bytes
            if st.st_size > cap:
                raise self._too_big(name, f"size on disk {st.st_size} bytes")
            try:
                data = f.read(cap + 1)
            except OSError as exc:
                raise MemberReadError(f"{name}: read failed ({_one_line(exc)})") from exc
        if len(data) > cap:
            raise self._too_big(name, f"actual size over {cap} bytes")
        return data
