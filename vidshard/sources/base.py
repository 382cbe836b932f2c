"""What every video source shares: the interface, its options, the member record, the name filter.

Imports nothing of the other source modules (they all import this one).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import PurePosixPath

from vidshard.errors import MemberReadError, SourceError

#: Extensions (lower case) of the members a source lists; everything else is ignored.
VIDEO_EXTENSIONS: tuple[str, ...] = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v")

#: Largest member read into memory: UCF101's largest video is ~30 MB, so 1 GiB leaves room for
#: other datasets while a zip bomb cannot fill memory.
DEFAULT_MAX_MEMBER_BYTES: int = 1 << 30

#: Members under this folder are macOS resource forks with video-like names, not videos.
_MACOS_METADATA = "__MACOSX"


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


def one_line(exc: BaseException) -> str:
    """An exception's text on one line (its type name when it has no text)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


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
