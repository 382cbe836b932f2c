"""Zip archives: what local and remote zips share (listing, pre-read checks, capped reads) and
:class:`LocalZipSource`, a zip on a local or mounted file system read with :mod:`zipfile`.

Imports :mod:`.base` only; :mod:`.remote` builds on :class:`ZipSource`.
"""
from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

from vidshard.errors import MemberReadError, SourceError
from vidshard.sources.base import Member, SourceOptions, VideoSource, is_video_name, one_line

_ENCRYPTED_FLAG = 0x1

#: Member read failures that are the member's own fault (retrying cannot help).
CORRUPT_MEMBER = (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError, ValueError, OSError)


class ZipSource(VideoSource):
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

    def _drop_archive(self) -> None:
        """Forget a remote archive's handle (``self._archive``) after a fault: its stream state may be stale.

        The remote kinds (HTTP, object storage) reopen it on the next read (their retry's reset).
        """
        if self._archive is not None:
            try:
                self._archive.close()
            except Exception:  # noqa: BLE001 - closing a broken stream may fail; it is gone anyway
                pass
            self._archive = None


def open_failure(uri: str, exc: BaseException) -> SourceError:
    """One line for a zip that cannot be opened: bad UTF-8 names, not a zip, unreadable."""
    if isinstance(exc, UnicodeDecodeError):
        return SourceError(f"{uri}: a member name is flagged UTF-8 but is not valid UTF-8 ({exc.reason})")
    if isinstance(exc, (zipfile.BadZipFile, EOFError, ValueError)):
        return SourceError(f"{uri} is not a zip archive ({one_line(exc)})")
    return SourceError(f"cannot read {uri}: {one_line(exc)}")


class LocalZipSource(ZipSource):
    """A zip file on a local (or mounted) file system, read with :mod:`zipfile`."""

    def __init__(self, uri: str, path: Path, options: SourceOptions) -> None:
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError) as exc:
            raise open_failure(uri, exc) from exc
        super().__init__(uri, options)
        self._archive = archive
        self._index(archive.infolist())

    def read(self, name: str) -> bytes:
        info = self._checked_info(name)
        try:
            return self._read_capped(self._archive, info)
        except CORRUPT_MEMBER as exc:
            raise MemberReadError(f"{name}: corrupt member ({one_line(exc)})") from exc

    def close(self) -> None:
        self._archive.close()
