"""Where an output's files live, for the readers: a local folder, ``s3://bucket/prefix`` or ``gs://bucket/prefix``.

The writer goes through Beam's ``FileSystems`` (:mod:`vidshard.pipelines.shardio`), whose options reach every
Beam worker.  The readers cannot: Beam must stay out of :mod:`vidshard.format` and the TF-free
readers (importing it costs about 0.9 s and hundreds of MiB in every PyTorch ``DataLoader`` worker,
and the GPU machine has no Beam at all).  So this module reads objects with the stores' own
clients, boto3 (S3, the client Beam's S3 filesystem uses) and google-cloud-storage (GCS, the one
Beam's gcsio uses), imported only when an ``s3://`` or ``gs://`` path is read.

Reads stream: :func:`open_read` returns a seekable file whose every fill is one ranged GET of
:data:`READ_CHUNK` bytes, so a shard is never copied to local disk and memory stays bounded.
The few writes a tool makes beside an output (``export-tfds``: :func:`copy`, :func:`write_bytes`,
:func:`delete`) go through the same clients; :func:`copy` is done by the store itself.

Configuration takes Beam's option names (``s3_endpoint_url``, ``s3_access_key_id``,
``s3_secret_access_key``, ``s3_session_token``, ``s3_region_name``, ``s3_verify``,
``s3_disable_ssl``): the CLI passes the same ``--s3_*`` options to :func:`configure` that
``vidshard shard`` passes to Beam.  Unset options fall back to boto3's own chain (``AWS_*``
environment variables, ``~/.aws``); GCS uses Google's default credentials, and
``STORAGE_EMULATOR_HOST`` when set.  Every failure is a :class:`StorageError`, one line naming the URI.
"""
from __future__ import annotations

import io
import os
import threading
import time
import urllib.parse
from typing import Any, BinaryIO, Callable

from vidshard.errors import ShardFormatError

#: URI schemes read here; anything else with a scheme is refused by :func:`check_scheme`.
SCHEMES = ("s3", "gs")
#: Bytes fetched by one ranged GET when a file is read in order (and the reader's buffer size).
READ_CHUNK = 4 << 20
#: Beam's S3 option names that :func:`configure` takes.
S3_OPTIONS = ("s3_endpoint_url", "s3_access_key_id", "s3_secret_access_key", "s3_session_token",
              "s3_region_name", "s3_verify", "s3_disable_ssl")
#: Attempts of one request (botocore's "standard" retries: throttling, 5xx, dropped connections), and
#: of the one-off checks made before any work, which must answer soon when nobody listens.
ATTEMPTS = 10
CHECK_ATTEMPTS = 3
#: Attempts at one ranged read cut short mid-body (botocore retries failed requests itself).
_BODY_ATTEMPTS = 4

_options: dict[str, Any] = {}
_clients: dict[tuple[str, int, int], Any] = {}
_lock = threading.Lock()


class StorageError(ShardFormatError):
    """An object store refused or failed a read: one line naming the URI and the reason."""


def scheme_of(path: str | os.PathLike) -> str:
    """``s3``, ``gs``, or ``""`` for a local path."""
    text = os.fspath(path)
    scheme = urllib.parse.urlsplit(text).scheme.lower()
    return scheme if len(scheme) > 1 else ""  # one letter is a Windows drive


def is_remote(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an object-store URI (``s3://`` or ``gs://``)."""
    return scheme_of(path) in SCHEMES


def check_scheme(path: str | os.PathLike) -> None:
    """Refuse a URI of a scheme the readers do not read (``http://``, ``hdfs://``, ...)."""
    scheme = scheme_of(path)
    if scheme and scheme not in SCHEMES:
        raise StorageError(f"{os.fspath(path)}: the readers read local folders, s3:// and gs:// only")


def join(base: str | os.PathLike, *names: str) -> str:
    """``base/name``: POSIX-joined for a URI, :func:`os.path.join` for a local path."""
    base = os.fspath(base)
    if is_remote(base):
        return "/".join([base.rstrip("/"), *names])
    return os.path.join(base, *names)


def configure(**options: Any) -> None:
    """Set the S3 options (Beam's names, :data:`S3_OPTIONS`) for every later read in this process.

    ``None`` values are dropped (boto3's own chain decides).  Worker processes that start fresh
    (not forked) read the ``AWS_*`` environment variables instead.
    """
    unknown = set(options) - set(S3_OPTIONS)
    if unknown:
        raise ValueError(f"unknown object-store options {sorted(unknown)}; known: {', '.join(S3_OPTIONS)}")
    with _lock:
        _options.clear()
        _options.update({name: value for name, value in options.items() if value is not None})
        _clients.clear()


def _split(uri: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(uri)
    return parts.netloc, parts.path.lstrip("/")


def _client(scheme: str, attempts: int = ATTEMPTS) -> Any:
    """One client per scheme, retry budget and process (a forked DataLoader worker makes its own)."""
    key = (scheme, attempts, os.getpid())
    with _lock:
        if key not in _clients:
            _clients[key] = _s3_client(attempts) if scheme == "s3" else _gcs_client()
        return _clients[key]


def _s3_client(attempts: int) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise StorageError("s3:// outputs need boto3: pip install 'vidshard[s3]'") from None
    verify = _options.get("s3_verify")
    return boto3.session.Session().client(
        "s3", endpoint_url=_options.get("s3_endpoint_url"), aws_access_key_id=_options.get("s3_access_key_id"),
        aws_secret_access_key=_options.get("s3_secret_access_key"),
        aws_session_token=_options.get("s3_session_token"), region_name=_options.get("s3_region_name"),
        use_ssl=not _options.get("s3_disable_ssl", False), verify=None if verify is None else verify,
        # "standard" retries throttling (503 SlowDown), 5xx and dropped connections with backoff.
        config=Config(retries={"mode": "standard", "max_attempts": attempts}, connect_timeout=10, read_timeout=60))


def _gcs_client() -> Any:
    try:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage
    except ImportError:
        raise StorageError("gs:// outputs need google-cloud-storage: pip install 'vidshard[gcs]'") from None
    if os.environ.get("STORAGE_EMULATOR_HOST"):  # a local emulator takes no credentials
        return storage.Client(project="vidshard", credentials=AnonymousCredentials())
    return storage.Client()


def _failure(uri: str, exc: BaseException) -> StorageError:
    """One line for a failed object-store call: which URI, and the store's reason."""
    code = ""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        code = response.get("Error", {}).get("Code", "")
    reason = " ".join(str(exc).split()) or type(exc).__name__
    if code == "NoSuchBucket" or "NoSuchBucket" in reason or "HeadBucket operation: Not Found" in reason:
        return StorageError(f"{uri}: bucket {_split(uri)[0]} does not exist")
    if code in ("NoSuchKey", "404", "NotFound") or type(exc).__name__ == "NotFound":
        return StorageError(f"{uri}: no such object")
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "Forbidden") \
            or type(exc).__name__ == "Forbidden":
        return StorageError(f"{uri}: access denied ({code or reason}): check the credentials")
    if type(exc).__name__ in ("EndpointConnectionError", "ConnectionError", "ConnectTimeoutError"):
        return StorageError(f"{uri}: cannot connect to the object store ({reason})")
    return StorageError(f"{uri}: {reason}")


def _call(uri: str, action: Any) -> Any:
    try:
        return action()
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 - boto3/google errors have no common base; all become one line
        raise _failure(uri, exc) from None


def size(uri: str, attempts: int = ATTEMPTS) -> int:
    """Size in bytes of one object (or local file); ``attempts`` per request (S3)."""
    if not is_remote(uri):
        return os.path.getsize(uri)
    bucket, key = _split(uri)
    if scheme_of(uri) == "s3":
        def s3_size() -> int:
            try:
                return _client("s3", attempts).head_object(Bucket=bucket, Key=key)["ContentLength"]
            except Exception as exc:  # noqa: BLE001 - a HEAD's 404 has no body: ask whether the bucket is there
                if _failure(uri, exc).args[0].endswith(": no such object"):
                    _client("s3", attempts).head_bucket(Bucket=bucket)
                raise
        return _call(uri, s3_size)

    def gcs_size() -> int:
        blob = _client("gs").bucket(bucket).get_blob(key)
        if blob is None:
            if _client("gs").lookup_bucket(bucket) is None:
                raise StorageError(f"{uri}: bucket {bucket} does not exist")
            raise StorageError(f"{uri}: no such object")
        return blob.size
    return _call(uri, gcs_size)


def exists(uri: str, attempts: int = ATTEMPTS) -> bool:
    """Whether one object (or local file) exists; a missing bucket or denied access is an error."""
    if not is_remote(uri):
        return os.path.isfile(uri)
    try:
        size(uri, attempts)
    except StorageError as exc:
        if str(exc).endswith(": no such object"):
            return False
        raise
    return True


def list_names(prefix_uri: str, attempts: int = ATTEMPTS) -> list[str]:
    """Names (relative to ``prefix_uri``) of every object under it; [] when there are none."""
    bucket, key = _split(prefix_uri)
    key = key.rstrip("/") + "/" if key else ""
    if scheme_of(prefix_uri) == "s3":
        def s3_list() -> list[str]:
            pages = _client("s3", attempts).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
            return [item["Key"][len(key):] for page in pages for item in page.get("Contents", [])]
        return _call(prefix_uri, s3_list)
    return _call(prefix_uri, lambda: [blob.name[len(key):] for blob in _client("gs").list_blobs(bucket, prefix=key)])


def check_bucket(uri: str) -> None:
    """Raise StorageError unless the bucket of ``uri`` exists and the credentials may use it."""
    bucket, _ = _split(uri)
    if scheme_of(uri) == "s3":
        _call(uri, lambda: _client("s3", CHECK_ATTEMPTS).head_bucket(Bucket=bucket))
    elif _call(uri, lambda: _client("gs").lookup_bucket(bucket)) is None:
        raise StorageError(f"{uri}: bucket {bucket} does not exist")


def copy(source: str, destination: str) -> None:
    """Copy one object to ``destination`` in the same store, done by the store: no byte of it passes
    through this machine (S3: CopyObject, or UploadPartCopy parts for a big object, as boto3's managed
    copy chooses; GCS: objects.rewrite, repeated until the store says it is done)."""
    if not is_remote(source) or scheme_of(source) != scheme_of(destination):
        raise ValueError(f"copy within one object store only, not {source} -> {destination}")
    (source_bucket, source_key), (bucket, key) = _split(source), _split(destination)
    if scheme_of(source) == "s3":
        _call(destination, lambda: _client("s3").copy({"Bucket": source_bucket, "Key": source_key}, bucket, key))
        return

    def gcs_rewrite() -> None:
        client = _client("gs")
        original, target = client.bucket(source_bucket).blob(source_key), client.bucket(bucket).blob(key)
        token, _, _ = target.rewrite(original)
        while token is not None:  # a big object, or one moved between locations, takes several calls
            token, _, _ = target.rewrite(original, token=token)
    _call(destination, gcs_rewrite)


def write_bytes(uri: str, data: bytes) -> None:
    """Write one small object in one request (it appears whole, or not at all)."""
    bucket, key = _split(uri)
    if scheme_of(uri) == "s3":
        _call(uri, lambda: _client("s3").put_object(Bucket=bucket, Key=key, Body=data))
    else:
        _call(uri, lambda: _client("gs").bucket(bucket).blob(key).upload_from_string(data))


def delete(uri: str) -> None:
    """Delete one object (S3 answers a missing one as deleted; so does this, on GCS too)."""
    bucket, key = _split(uri)
    if scheme_of(uri) == "s3":
        _call(uri, lambda: _client("s3").delete_object(Bucket=bucket, Key=key))
        return
    from google.api_core.exceptions import NotFound

    def gcs_delete() -> None:
        try:
            _client("gs").bucket(bucket).blob(key).delete()
        except NotFound:
            pass
    _call(uri, gcs_delete)


def _get_range(uri: str, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of one object: one ranged GET, retried if the body is cut short."""
    bucket, key = _split(uri)
    for attempt in range(_BODY_ATTEMPTS):
        try:
            if scheme_of(uri) == "s3":
                body = _client("s3").get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}")["Body"]
                data = body.read()
            else:
                data = _client("gs").bucket(bucket).blob(key).download_as_bytes(start=start, end=end - 1)
        except Exception as exc:  # noqa: BLE001 - see _call; a body cut short is retried below
            failure = _failure(uri, exc)
            if type(exc).__name__ not in ("IncompleteReadError", "ResponseStreamingError", "ProtocolError",
                                          "ChunkedEncodingError") or attempt == _BODY_ATTEMPTS - 1:
                raise failure from None
            time.sleep(0.2 * 2 ** attempt)
            continue
        if len(data) == end - start:
            return data
        if attempt == _BODY_ATTEMPTS - 1:
            raise StorageError(f"{uri}: short read: {len(data)} of {end - start} bytes at {start}")
    raise AssertionError("unreachable")


class RangedFile(io.RawIOBase):
    """A seekable, read-only view of one object of ``length`` bytes; every read is one call of
    ``get_range(uri, start, end)`` (a bounded ranged GET: ``Range: bytes=start-(end-1)``)."""

    def __init__(self, uri: str, length: int, get_range: Callable[[str, int, int], bytes]) -> None:
        super().__init__()
        self.name = uri
        self._size = length
        self._get_range = get_range
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        end = min(self._position + len(buffer), self._size)
        if end <= self._position:
            return 0
        data = self._get_range(self.name, self._position, end)
        buffer[:len(data)] = data
        self._position += len(data)
        return len(data)


def open_read(path: str | os.PathLike, chunk: int = READ_CHUNK) -> BinaryIO:
    """A binary, seekable file open for reading: local, or an object read by ranges of ``chunk`` bytes."""
    path = os.fspath(path)
    check_scheme(path)
    if not is_remote(path):
        return open(path, "rb")
    return io.BufferedReader(RangedFile(path, size(path), _get_range), buffer_size=chunk)


def read_text(path: str | os.PathLike) -> str:
    """The whole content of a small text file (``dataset_info.json``, ``errors.jsonl``)."""
    with open_read(path) as fh:
        return fh.read().decode("utf-8")
