"""Videos in object storage: a zip at ``s3://bucket/path/archive.zip`` (or ``gs://``), read by ranged
GETs and never downloaded whole, or ``s3://bucket/prefix/`` holding ``<class>/*.avi`` objects.

Reads go through Beam's ``FileSystems`` (``apache_beam.io.aws.s3filesystem``, ``gcsfilesystem``):
Beam hands the pipeline's options (``--s3_endpoint_url``, ``--s3_access_key_id``, ...) to every
worker's ``FileSystems``, so the options given to ``vidshard shard`` reach the launcher and every
worker alike, on any runner.  A zip is read by bounded ranged GETs through the client Beam's
filesystem holds, behind a :class:`io.BufferedReader` of :data:`ZIP_BUFFER` bytes, so a member
costs about its own size in bytes fetched (see :func:`_bounded_get_range` for why not
``FileSystems.open``).

One check is made without Beam: :func:`check_access`, called by the launcher and ``vidshard list``
before any work, asks the store once for the URI with :mod:`vidshard.format.storage` (boto3 / google-cloud-storage).  Beam's S3 layer
retries a refused connection or a missing bucket for minutes (7 retries from 5 s, doubling) and
then names neither; a check before any work must answer in one line, naming the URI.

Faults while reading (a 503 SlowDown, a dropped connection) are retried by the store clients and
then, boundedly, by :func:`vidshard.sources.http.retrying` around each member read; what still
fails is one :class:`~vidshard.errors.MemberReadError` for that video, recorded by the job.
"""
from __future__ import annotations

import io
import os
import threading
import zipfile
import zlib
from typing import Any, Callable, Mapping

from vidshard.errors import MemberReadError, SourceError
from vidshard.format import storage
from vidshard.sources.archive import CORRUPT_MEMBER, ZipSource, open_failure
from vidshard.sources.base import Member, SourceOptions, VideoSource, is_video_name, one_line
from vidshard.sources.http import Exhausted, RemoteFailure, retrying

#: Attempts of every S3 request (botocore's ``AWS_MAX_ATTEMPTS``) unless the environment says otherwise.
S3_MAX_ATTEMPTS = 10
#: Read buffer for a zip in object storage: each ranged GET of the end of the central directory or of a
#: member's header is at least this long (a member's data is read in one GET of its own size).
ZIP_BUFFER = 8 << 10


def use_options(options: Mapping[str, Any]) -> None:
    """Use the S3 options (Beam's names; None = unset) in this process: Beam's ``FileSystems`` and the readers'."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    given = {name: value for name, value in options.items() if value not in (None, False)}
    FileSystems.set_options(PipelineOptions.from_dictionary(given))
    # Beam's S3 client takes botocore's retry settings from the environment (it has no option for
    # them), and starts a multipart upload with no retry of its own: 3 attempts (botocore's
    # default) do not outlast a throttling store.  Local workers inherit these; set them on a
    # cluster's workers too.  A user's own settings win.
    os.environ.setdefault("AWS_RETRY_MODE", "standard")
    os.environ.setdefault("AWS_MAX_ATTEMPTS", str(S3_MAX_ATTEMPTS))
    storage.configure(**{name: value for name, value in options.items() if name in storage.S3_OPTIONS})


def use_beam_args(beam_args: list[str]) -> None:
    """Use the S3 options among ``vidshard shard``'s Beam options in the launcher too (see :func:`use_options`)."""
    from apache_beam.options.pipeline_options import PipelineOptions, S3Options

    s3 = PipelineOptions(list(beam_args)).view_as(S3Options)
    given = {name: getattr(s3, name) for name in storage.S3_OPTIONS}
    if any(value not in (None, False) for value in given.values()):  # none given: leave the process's as they are
        use_options(given)


def check_access(uri: str) -> None:
    """Ask the store for ``uri`` once, before any work (the launcher and ``vidshard list`` do; workers do not).

    A URI ending in ``/`` must be a prefix with objects under it, any other one an object (a zip).
    A missing bucket, object or prefix, refused credentials and an endpoint nobody answers are a
    SourceError of one line naming the URI.
    """
    try:
        if uri.endswith("/"):
            if storage.list_names(uri, storage.CHECK_ATTEMPTS):
                return
            raise SourceError(f"source not found: no objects under {uri}")
        if storage.exists(uri, storage.CHECK_ATTEMPTS):
            return
        if storage.list_names(uri, storage.CHECK_ATTEMPTS):
            raise SourceError(f"source {uri} is a prefix, not an object: write {uri}/ to read the videos under it")
    except storage.StorageError as exc:
        raise SourceError(str(exc)) from None
    raise SourceError(f"source not found: {uri}: no such object")


def open_object_source(uri: str, options: SourceOptions) -> VideoSource:
    """``uri`` ending in ``/``: the video objects under that prefix; otherwise a zip object (ranged reads)."""
    if uri.endswith("/"):
        return ObjectFolderSource(uri, options)
    return ObjectZipSource(uri, options)


def _bounded_get_range(uri: str) -> Callable[[str, int, int], bytes]:
    """``get_range(uri, start, end)`` through the client Beam's filesystem for ``uri`` holds.

    Why not ``FileSystems.open``: Beam's S3 reader asks for open-ended ranges (``bytes=start-``)
    and hangs up once it has read enough, so the store sends (and bills) up to the rest of the
    file for every member; its GCS reader fetches 16 MiB per read.  A zip member needs exactly
    its bytes: bounded ranges, with the client Beam built from the pipeline's options (on every
    worker), reached through the filesystem's options attribute (Beam has no public accessor).
    """
    from apache_beam.io.filesystems import FileSystems

    filesystem = FileSystems.get_filesystem(uri)
    bucket, key = uri.split("://", 1)[1].split("/", 1)
    if filesystem.scheme() == "s3":
        from apache_beam.io.aws import s3io

        client = s3io.S3IO(options=filesystem._options).client.client

        def s3_range(_uri: str, start: int, end: int) -> bytes:
            return client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}")["Body"].read()
        return s3_range
    from apache_beam.io.gcp import gcsio

    blob = gcsio.GcsIO(pipeline_options=filesystem._pipeline_options).client.bucket(bucket).blob(key)
    return lambda _uri, start, end: blob.download_as_bytes(start=start, end=end - 1)


def _transient(action: Any) -> Any:
    """Run a store read; anything but a zip's own fault is worth another try (the clients retried already)."""
    def run() -> Any:
        try:
            return action()
        except (MemberReadError, zipfile.BadZipFile, zlib.error):
            raise
        except Exception as exc:  # noqa: BLE001 - Beam, boto3 and google errors share no base class
            raise RemoteFailure(one_line(exc), transient=True) from exc
    return run


class ObjectZipSource(ZipSource):
    """A zip object read by ranged GETs through Beam's ``FileSystems`` (see the module doc)."""

    def __init__(self, uri: str, options: SourceOptions) -> None:
        super().__init__(uri, options)
        self._lock = threading.Lock()
        self._archive: zipfile.ZipFile | None = None
        try:
            archive = retrying(_transient(self._open_archive), options, self._drop_archive,
                               permanent=(zipfile.BadZipFile,))
        except (Exhausted, RemoteFailure) as exc:
            raise SourceError(f"cannot open {uri}: {exc}") from exc
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
            raise open_failure(uri, exc) from exc
        self._index(archive.infolist())

    def _open_archive(self) -> zipfile.ZipFile:
        if self._archive is None:
            from apache_beam.io.filesystems import FileSystems

            length = FileSystems.match([self.uri])[0].metadata_list[0].size_in_bytes
            self._archive = zipfile.ZipFile(io.BufferedReader(
                storage.RangedFile(self.uri, length, _bounded_get_range(self.uri)), ZIP_BUFFER))
        return self._archive

    def read(self, name: str) -> bytes:
        info = self._checked_info(name)
        with self._lock:
            try:
                return retrying(_transient(lambda: self._read_capped(self._open_archive(), info)),
                                self.options, self._drop_archive)
            except MemberReadError:
                raise
            except (Exhausted, RemoteFailure) as exc:
                raise MemberReadError(f"{name}: {exc}") from exc
            except CORRUPT_MEMBER as exc:
                raise MemberReadError(f"{name}: corrupt member ({one_line(exc)})") from exc

    def close(self) -> None:
        with self._lock:
            self._drop_archive()


class ObjectFolderSource(VideoSource):
    """Video objects under a prefix (``<class>/*.avi``, ``<split>/<class>/*.avi`` or flat); names are
    the keys relative to the prefix, listed and read through Beam's ``FileSystems``."""

    def __init__(self, uri: str, options: SourceOptions) -> None:
        super().__init__(uri, options)
        self._sizes: dict[str, int] | None = None

    def _listing(self) -> dict[str, int]:
        if self._sizes is None:
            from apache_beam.io.filesystems import FileSystems

            try:
                found = FileSystems.match([self.uri + "**"])[0].metadata_list
            except Exception as exc:  # noqa: BLE001 - BeamIOError wraps the store's error
                raise SourceError(f"cannot list {self.uri}: {one_line(exc)}") from None
            self._sizes = {meta.path[len(self.uri):]: meta.size_in_bytes for meta in found
                           if meta.path.startswith(self.uri)}
        return self._sizes

    def list_members(self) -> list[Member]:
        members = [Member(name, size) for name, size in sorted(self._listing().items()) if is_video_name(name)]
        if not members:
            raise self._no_videos()
        return members

    def read(self, name: str) -> bytes:
        if not is_video_name(name) or name.startswith("/") or ".." in name.split("/"):
            raise MemberReadError(f"{name}: not a video member name of this prefix")
        cap = self.options.max_member_bytes
        listed = self._listing().get(name)
        if listed is not None and listed > cap:
            raise self._too_big(name, f"size {listed} bytes")

        def fetch() -> bytes:
            from apache_beam.io.filesystem import CompressionTypes
            from apache_beam.io.filesystems import FileSystems

            with FileSystems.open(self.uri + name, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
                return fh.read(cap + 1)
        try:
            data = retrying(_transient(fetch), self.options, lambda: None)
        except (Exhausted, RemoteFailure) as exc:
            raise MemberReadError(f"{name}: {exc}") from exc
        if len(data) > cap:
            raise self._too_big(name, f"actual size over {cap} bytes")
        return data


def _overlap(a: str, b: str) -> bool:
    a, b = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


def check_output_location(source: str, data_dir: str) -> None:
    """Before any work: an output in object storage must be reachable (bucket, credentials, endpoint),
    and a source and output in object storage must not overlap (``--overwrite`` would delete the
    source, or the output would be listed as part of the source).  Local paths are left to the launcher."""
    if not storage.is_remote(data_dir):
        return
    if storage.is_remote(source) and _overlap(source, data_dir):
        raise SourceError(f"source {source} and output {data_dir} overlap; choose an output outside the source")
    try:
        storage.check_bucket(data_dir)
    except storage.StorageError as exc:
        raise SourceError(f"output {exc}") from None
