"""Video sources: one interface over a remote zip (HTTP Range), a local zip and a local folder.

A source lists its video members and reads one member's bytes into memory; nothing is ever
extracted to disk.  :func:`open_source` picks the kind from the URI:

* ``http(s)://host/…`` -> :class:`RemoteZipSource` (:mod:`.remote`): the zip's central directory
  and each member are fetched with HTTP Range requests through :mod:`remotezip`; the whole file
  is never downloaded (a server that ignores Range is refused).  Transient faults are retried
  with backoff, in two layers (:mod:`.http`): urllib3's ``Retry`` on the session retries
  connection errors, timeouts and 500/502/503/504 before any body byte arrives; a bounded loop
  around each read retries what urllib3 cannot see (a connection dropped mid-body, a short body).
* ``s3://bucket/archive.zip``, ``gs://...`` -> a zip read by ranged GETs; ``s3://bucket/prefix/`` -> the
  video objects under it (:mod:`.objectstore`, through Beam's ``FileSystems``);
* an existing local file -> :class:`LocalZipSource` (:mod:`.archive`, :mod:`zipfile`);
* an existing local ``.csv``, ``.jsonl`` or ``.parquet`` file -> :class:`UrlListSource` (:mod:`.urls`:
  a URL list, one ``http(s)://`` video per row, each fetched whole by a streaming GET);
* an existing local directory -> :class:`FolderSource` (:mod:`.folder`: ``<split>/<class>/*.avi``
  or flat names, walked recursively; nothing that resolves outside the folder is read).

Errors: anything that stops the whole source (unreachable, 404, not a zip, no videos, ...) is a
:class:`~vidshard.errors.SourceError` with one clear line; anything wrong with one member is a
:class:`~vidshard.errors.MemberReadError`, which a job records and goes past.

This module is the package's public face; :mod:`.base` holds the interface every kind shares.
"""
from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from vidshard.errors import SourceError
from vidshard.format import storage
from vidshard.sources.archive import LocalZipSource
from vidshard.sources.base import (
    DEFAULT_MAX_MEMBER_BYTES,
    VIDEO_EXTENSIONS,
    Member,
    SourceOptions,
    VideoSource,
    is_video_name,
)
from vidshard.sources.folder import FolderSource
from vidshard.sources.http import RETRY_STATUSES
from vidshard.sources.objectstore import check_access, check_output_location, open_object_source, use_options
from vidshard.sources.remote import RemoteZipSource
from vidshard.sources.urls import UrlListSource
from vidshard.tables import is_table

__all__ = [
    "DEFAULT_MAX_MEMBER_BYTES",
    "RETRY_STATUSES",
    "VIDEO_EXTENSIONS",
    "FolderSource",
    "LocalZipSource",
    "Member",
    "RemoteZipSource",
    "SourceOptions",
    "UrlListSource",
    "VideoSource",
    "check_output_location",
    "check_source",
    "is_video_name",
    "open_source",
    "use_options",
]


def check_source(uri: str | os.PathLike) -> None:
    """Before any work, ask an object store once for an ``s3://`` or ``gs://`` source (one line if it fails)."""
    if storage.is_remote(uri):
        check_access(os.fspath(uri))


def open_source(uri: str | os.PathLike, options: SourceOptions = SourceOptions()) -> VideoSource:
    """Open ``uri`` (an http(s) URL of a zip, an s3:// or gs:// zip or prefix, a local zip or folder) as a VideoSource."""
    uri = os.fspath(uri)
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme in ("http", "https"):
        return RemoteZipSource(uri, options)
    if scheme in storage.SCHEMES:  # s3://, gs://: a zip object or a prefix of video objects
        return open_object_source(uri, options)
    if scheme:
        raise SourceError(
            f"unsupported source {uri!r}: only http://, https://, s3://, gs:// URLs and local paths are accepted"
        )
    path = Path(uri).expanduser()
    if path.is_dir():
        return FolderSource(uri, path, options)
    if path.is_file() and is_table(path.name):
        return UrlListSource(uri, path, options)
    if path.is_file():
        return LocalZipSource(uri, path, options)
    if path.exists() or path.is_symlink():
        raise SourceError(f"source {uri} is neither a zip file nor a folder")
    raise SourceError(f"source not found: {uri}")
