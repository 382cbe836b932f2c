"""Videos in a local folder (``<split>/<class>/*.avi`` or flat names), walked recursively.

Imports :mod:`.base` only.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from vidshard.errors import MemberReadError, SourceError
from vidshard.sources.base import Member, SourceOptions, VideoSource, is_video_name, one_line


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
                raise MemberReadError(f"{name}: read failed ({one_line(exc)})") from exc
        if len(data) > cap:
            raise self._too_big(name, f"actual size over {cap} bytes")
        return data
