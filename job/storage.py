"""Storage of the job: local folders and S3-compatible buckets behind one small interface.

``Storage`` is built once from ``StorageConfig`` plus the standard AWS environment and
hands each URI to the backend of its scheme (``_BACKENDS``): a local path (or
``file://``) goes to ``_LocalBackend``, ``s3://bucket/key`` to ``_S3Backend``. Both
offer ``exists``, ``list``, ``put_file``, ``get_file``, ``put_bytes``, ``get_bytes``,
``delete`` and ``sha256``.

On top of it, the results layout ``<output>/<run-id>/<task>/<strategy>/``:

* ``publish`` uploads a task folder, then ``manifest.json`` (SHA-256 and size of every
  file), then the ``_SUCCESS`` marker last, and only for a complete task;
* ``completion_state`` tells whether a task is absent, complete, complete under another
  config (``config_changed``) or incomplete, so reruns skip finished work;
* ``pull`` downloads a complete task and verifies every byte against the manifest;
* ``fetch`` brings an input (model folder, data file) into a verified local cache;
* ``list_runs`` lists the tasks under an output root (the pull script's ``list``).

Every failure of the storage itself is a ``StorageError`` (exit code 4) with one line
naming the URI; a malformed URI or an unsafe path is an ``InputError`` (exit code 2).
Credentials are never logged, printed, written, or shown by ``repr``.

Light dependencies only (stdlib, boto3, tqdm): the pull script imports this module on a
laptop without paddle. boto3 is imported inside the methods that need it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError, JobError, StorageError
from .logs import BOTO_LOGGERS

if TYPE_CHECKING:
    from .config import StorageConfig

__all__ = [
    "MANIFEST",
    "MARKER",
    "FileDigest",
    "NotFoundError",
    "PublishResult",
    "PullResult",
    "Storage",
    "TaskStatus",
    "completion_state",
    "fetch",
    "list_runs",
    "publish",
    "pull",
    "task_prefix",
]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MARKER = "_SUCCESS"
_STAMP = ".complete"  # written into a fetch cache folder after a verified download
_SCHEMA = 1
_MB = 1024 * 1024
_CHUNK = 1024 * 1024
_STATUSES = ("complete", "gated", "failed")

Progress = Callable[[int], Any]  # called with the number of bytes just transferred


class NotFoundError(StorageError):
    """The object or file does not exist."""


@dataclass(frozen=True)
class FileDigest:
    """SHA-256 (hex) and size in bytes of a file as it was transferred."""

    sha256: str
    size: int


@dataclass(frozen=True)
class _Object:
    """One stored object: its size and, on S3, its ETag (changes when it is overwritten)."""

    size: int
    etag: str = ""


# --------------------------------------------------------------------------------------
# URIs
# --------------------------------------------------------------------------------------

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,63}$")


def _scheme(uri: str) -> str:
    match = _SCHEME_RE.match(uri)
    return match.group(1).lower() if match else ""


def _as_uri(uri: Any) -> str:
    if isinstance(uri, os.PathLike):
        return os.fspath(uri)
    if not isinstance(uri, str) or not uri:
        raise InputError(f"expected a local path or s3://bucket/prefix, got {uri!r}")
    return uri


def _join(prefix: str, *parts: str) -> str:
    base = prefix.rstrip("/")
    if not base and not _scheme(prefix):
        base = "" if prefix.startswith("/") else "."
    return "/".join([base, *parts])


def _split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key/`` -> (``bucket``, ``some/key``); InputError when malformed."""
    rest = uri[len("s3://") :] if uri[:5].lower() == "s3://" else uri
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise InputError(f"{uri}: no bucket name; expected s3://bucket/prefix")
    if not _BUCKET_RE.match(bucket) or ".." in bucket or _IPV4_RE.match(bucket):
        raise InputError(
            f"{uri}: {bucket!r} is not a valid bucket name (3-63 characters: lowercase letters, digits, '.' and '-')"
        )
    return bucket, key.strip("/")


def _safe_relpath(rel: str, where: str) -> str:
    """A relative path that stays inside its folder, or InputError.

    Refused: absolute paths, drive letters, ``..`` and ``.`` components, empty
    components; a backslash counts as a separator (a key written on Windows).
    """
    if not isinstance(rel, str) or not rel:
        raise InputError(f"{where}: refusing an empty path")
    parts = rel.replace("\\", "/").split("/")
    if (
        rel.startswith(("/", "\\"))
        or re.match(r"^[A-Za-z]:", rel)
        or "\x00" in rel
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise InputError(f"{where}: refusing unsafe path {rel!r} (absolute, '..' or empty component)")
    return "/".join(parts)


def _scrub_url(text: str) -> str:
    """Hide ``user:password@`` in URLs."""
    return re.sub(r"(\w+://)[^/@\s]+@", r"\1***@", text)


# --------------------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------------------


def _hash_file(path: Path) -> FileDigest:
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return FileDigest(sha.hexdigest(), size)


class _HashingReader:
    """An open file for the transfer manager that hashes each byte once, as it is read.

    The transfer may read a range again (checksums, retries); only bytes past what was
    already hashed, and contiguous with it, are added. ``digest`` says whether the
    whole file went through in order; when not, the caller hashes the file again.
    """

    def __init__(self, fh: Any):
        self._fh = fh
        self._sha = hashlib.sha256()
        self._hashed = 0

    def read(self, size: int = -1) -> bytes:
        position = self._fh.tell()
        data = self._fh.read(size)
        end = position + len(data)
        if position <= self._hashed < end:
            self._sha.update(memoryview(data)[self._hashed - position :])
            self._hashed = end
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        """The transfer manager closes its readers; the file itself is closed by its owner."""

    def digest(self, size: int) -> str | None:
        return self._sha.hexdigest() if self._hashed == size else None


# --------------------------------------------------------------------------------------
# Credentials never reach a log
# --------------------------------------------------------------------------------------


class _ScrubFilter(logging.Filter):
    """Removes known secrets from records of boto's loggers.

    botocore's DEBUG logs show request headers, including ``X-Amz-Security-Token``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            try:
                message = record.getMessage()
            except Exception:  # a broken log call elsewhere: leave it to logging
                return True
            if any(secret in message for secret in self.secrets):
                for secret in self.secrets:
                    message = message.replace(secret, "***")
                record.msg, record.args = message, ()
        return True


_SCRUB = _ScrubFilter()


def _install_scrubber(secrets: list[str]) -> None:
    _SCRUB.secrets.update(s for s in secrets if s)
    names = [n for n in list(logging.Logger.manager.loggerDict) if n.split(".")[0] in BOTO_LOGGERS]
    for name in names:
        logger = logging.getLogger(name)
        if _SCRUB not in logger.filters:
            logger.addFilter(_SCRUB)


# --------------------------------------------------------------------------------------
# Backends: one class per URI scheme
# --------------------------------------------------------------------------------------


class _LocalBackend:
    """Local folders (plain paths and ``file://``). Writes go through a temp file and a rename."""

    def __init__(self, storage: Storage):
        """Takes the storage like every backend; a local folder needs nothing from it."""

    @staticmethod
    def path(uri: str) -> Path:
        if _scheme(uri) == "file":
            rest = uri[len("file://") :]
            if rest.startswith("localhost/"):
                rest = rest[len("localhost") :]
            if not rest.startswith("/"):
                raise InputError(f"{uri}: a file:// URI needs an absolute path (file:///path)")
            return Path(rest)
        return Path(uri)

    @contextlib.contextmanager
    def _errors(self, action: str, uri: str) -> Iterator[None]:
        try:
            yield
        except JobError:
            raise
        except FileNotFoundError as exc:
            raise NotFoundError(f"{action} {uri}: not found") from exc
        except OSError as exc:
            raise StorageError(f"{action} {uri}: {exc.strerror or exc}") from exc

    def exists(self, uri: str) -> bool:
        return self.path(uri).is_file()

    def listing(self, uri: str) -> dict[str, _Object]:
        root = self.path(uri)
        out: dict[str, _Object] = {}
        if not root.is_dir():
            return out
        with self._errors("list", uri):
            for folder, dirs, files in os.walk(root):
                dirs.sort()
                for name in files:
                    path = Path(folder, name)
                    rel = path.relative_to(root).as_posix()
                    with contextlib.suppress(FileNotFoundError):  # removed while listing
                        out[rel] = _Object(path.stat().st_size)
        return out

    def stat(self, uri: str) -> _Object | None:
        path = self.path(uri)
        return _Object(path.stat().st_size) if path.is_file() else None

    def _write(self, uri: str, write: Callable[[Any], None], mode_from: Path | None = None) -> None:
        dst = self.path(uri)
        with self._errors("write", uri):
            dst.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    write(out)
                if mode_from is not None:
                    shutil.copymode(mode_from, tmp)
                else:
                    os.chmod(tmp, 0o644)
                os.replace(tmp, dst)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise

    def put_file(self, local_path: Path, uri: str, progress: Progress | None) -> FileDigest:
        if not Path(local_path).is_file():
            raise InputError(f"{local_path}: no such file to upload")
        dst = self.path(uri)
        with contextlib.suppress(OSError):
            if os.path.samefile(local_path, dst):  # publishing a folder in place
                digest = _hash_file(local_path)
                if progress:
                    progress(digest.size)
                return digest
        sha = hashlib.sha256()
        size = 0

        def copy(out: Any) -> None:
            nonlocal size
            with open(local_path, "rb") as src:
                while chunk := src.read(_CHUNK):
                    sha.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                    if progress:
                        progress(len(chunk))

        self._write(uri, copy, mode_from=Path(local_path))
        return FileDigest(sha.hexdigest(), size)

    def get_file(self, uri: str, local_path: Path, progress: Progress | None) -> FileDigest:
        src = self.path(uri)
        if not src.is_file():
            raise NotFoundError(f"read {uri}: not found")
        with self._errors("read", uri):
            return self.put_file(src, str(local_path), progress)  # the destination is a local path too

    def put_bytes(self, data: bytes, uri: str) -> None:
        self._write(uri, lambda out: out.write(data))

    def get_bytes(self, uri: str) -> bytes:
        with self._errors("read", uri):
            return self.path(uri).read_bytes()

    def delete(self, uri: str) -> None:
        with self._errors("delete", uri), contextlib.suppress(FileNotFoundError):
            self.path(uri).unlink()

    def abort_uploads(self, uri: str) -> int:
        return 0

    def sha256(self, uri: str) -> str:
        with self._errors("read", uri):
            return _hash_file(self.path(uri)).sha256


class _S3Backend:
    """S3-compatible object storage through one lazily built boto3 client."""

    def __init__(self, storage: Storage):
        self._storage = storage

    @contextlib.contextmanager
    def _errors(self, action: str, uri: str, not_found: bool = True) -> Iterator[None]:
        """Turn boto's exceptions into one-line StorageErrors naming the URI."""
        try:
            yield
        except JobError:
            raise
        except Exception as exc:
            from boto3.exceptions import Boto3Error
            from botocore.exceptions import BotoCoreError, ClientError

            if not_found and isinstance(exc, ClientError) and _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                raise NotFoundError(f"{action} {uri}: not found") from exc
            if isinstance(exc, (BotoCoreError, ClientError, Boto3Error, OSError)):
                raise StorageError(self._storage._clean(f"{action} {uri}: {_describe(exc)}")) from exc
            raise

    def exists(self, uri: str) -> bool:
        return self.stat(uri) is not None

    def stat(self, uri: str) -> _Object | None:
        bucket, key = self._object(uri)
        try:
            with self._errors("stat", uri):
                head = self._storage._client().head_object(Bucket=bucket, Key=key)
        except NotFoundError:
            return None
        return _Object(int(head["ContentLength"]), head.get("ETag", "").strip('"'))

    def listing(self, uri: str) -> dict[str, _Object]:
        bucket, key = _split_s3(uri)
        prefix = f"{key}/" if key else ""
        out: dict[str, _Object] = {}
        with self._errors("list", uri, not_found=False):
            pages = self._storage._client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    rel = item["Key"][len(prefix) :]
                    if rel and not rel.endswith("/"):  # "folder" placeholders hold nothing
                        out[rel] = _Object(int(item["Size"]), item.get("ETag", "").strip('"'))
        return out

    def put_file(self, local_path: Path, uri: str, progress: Progress | None) -> FileDigest:
        bucket, key = self._object(uri)
        client, transfer = self._storage._client(), self._storage._transfer_config()
        try:
            fh = open(local_path, "rb")
        except FileNotFoundError:
            raise InputError(f"{local_path}: no such file to upload") from None
        except OSError as exc:
            raise StorageError(f"upload {local_path}: {exc.strerror or exc}") from exc
        with fh, self._errors("upload to", uri, not_found=False):
            size = os.fstat(fh.fileno()).st_size
            reader = _HashingReader(fh)
            client.upload_fileobj(reader, bucket, key, Config=transfer, Callback=progress)
            sha = reader.digest(size)
        if sha is None:  # the transfer did not read the file in order: hash it again
            return _hash_file(Path(local_path))
        return FileDigest(sha, size)

    def get_file(self, uri: str, local_path: Path, progress: Progress | None) -> None:
        """Download; no digest (the caller hashes the file)."""
        bucket, key = self._object(uri)
        Path(local_path).parent.mkdir(parents=True, exist_ok=True)
        with self._errors("download", uri):
            self._storage._client().download_file(
                bucket, key, str(local_path), Config=self._storage._transfer_config(), Callback=progress
            )

    def put_bytes(self, data: bytes, uri: str) -> None:
        bucket, key = self._object(uri)
        with self._errors("write", uri, not_found=False):
            self._storage._client().put_object(Bucket=bucket, Key=key, Body=data)

    def get_bytes(self, uri: str) -> bytes:
        bucket, key = self._object(uri)
        with self._errors("read", uri):
            return self._storage._client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def delete(self, uri: str) -> None:
        bucket, key = self._object(uri)
        with self._errors("delete", uri, not_found=False):
            self._storage._client().delete_object(Bucket=bucket, Key=key)

    def sha256(self, uri: str) -> str:
        bucket, key = self._object(uri)
        sha = hashlib.sha256()
        with self._errors("read", uri):
            body = self._storage._client().get_object(Bucket=bucket, Key=key)["Body"]
            for chunk in body.iter_chunks(_CHUNK):
                sha.update(chunk)
        return sha.hexdigest()

    def abort_uploads(self, uri: str) -> int:
        """Abort unfinished multipart uploads under a prefix (they cost storage until aborted)."""
        bucket, key = _split_s3(uri)
        prefix = f"{key}/" if key else ""
        client = self._storage._client()
        aborted = 0
        with self._errors("abort uploads under", uri, not_found=False):
            for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
                for upload in page.get("Uploads", []):
                    if upload["Key"].startswith(prefix):
                        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                        aborted += 1
        return aborted

    @staticmethod
    def _object(uri: str) -> tuple[str, str]:
        bucket, key = _split_s3(uri)
        if not key:
            raise InputError(f"{uri}: names a bucket, not an object; expected s3://bucket/key")
        return bucket, key


def _error_code(exc: Any) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    return str(error.get("Code", ""))


def _describe(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and response.get("Error"):
        error = response["Error"]
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        text = f"{error.get('Code', 'error')}{f' (HTTP {status})' if status else ''}: {error.get('Message', '')}".rstrip(": ")
    else:
        text = str(exc) or type(exc).__name__
        if isinstance(exc, OSError) and exc.strerror:
            text = exc.strerror
    return " ".join(text.split())[:400]


class _Credentials:
    """Keys from the environment; never shown by repr."""

    __slots__ = ("key_id", "secret", "token")

    def __init__(self, key_id: str | None, secret: str | None, token: str | None):
        self.key_id, self.secret, self.token = key_id, secret, token

    def __repr__(self) -> str:
        return "_Credentials(***)"

    def values(self) -> list[str]:
        return [v for v in (self.key_id, self.secret, self.token) if v]


_BACKENDS: dict[str, type[_LocalBackend] | type[_S3Backend]] = {
    "": _LocalBackend,
    "file": _LocalBackend,
    "s3": _S3Backend,
}


def _backend_class(uri: str) -> type[_LocalBackend] | type[_S3Backend]:
    """The backend of the URI's scheme; InputError for another scheme or a malformed s3:// URI."""
    scheme = _scheme(uri)
    cls = _BACKENDS.get(scheme)
    if cls is None:
        raise InputError(f"{uri}: unsupported scheme {scheme!r}; use a local path or s3://bucket/prefix")
    if cls is _S3Backend:
        _split_s3(uri)
    return cls


# --------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------


class Storage:
    """Local folders and S3-compatible storage behind one interface.

    Settings come from ``StorageConfig`` (keys that are set win) and else from the
    standard environment: ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``,
    ``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_RETRY_MODE`` (default ``standard``, which
    retries SlowDown, 503 and other 5xx answers), ``AWS_MAX_ATTEMPTS`` (default 5),
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN`` (when unset,
    boto3's own chain: profiles, web identity, instance roles). The environment is read
    once, here; the boto3 client is built on first use.
    """

    def __init__(self, config: StorageConfig | None = None, *, environ: Mapping[str, str] | None = None):
        from .config import StorageConfig

        env = os.environ if environ is None else environ
        cfg = config if config is not None else StorageConfig()
        try:
            cfg.check()
        except ValueError as exc:
            raise InputError(f"Storage.{getattr(exc, 'key', '?')}: {exc}") from None

        endpoint = cfg.endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or ""
        source = "Storage.endpoint_url" if cfg.endpoint_url else "AWS_ENDPOINT_URL"
        if endpoint and not re.match(r"^https?://[^/\s]+", endpoint):
            raise InputError(f"{source}: expected http(s)://host[:port], got {_scrub_url(endpoint)!r}")
        self.endpoint_url: str | None = endpoint or None
        self.region: str = cfg.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"

        self.retry_mode: str = cfg.retry_mode or env.get("AWS_RETRY_MODE") or "standard"
        if self.retry_mode not in ("standard", "adaptive", "legacy"):
            raise InputError(f"AWS_RETRY_MODE: must be standard, adaptive or legacy, got {self.retry_mode!r}")
        attempts: Any = cfg.max_attempts or env.get("AWS_MAX_ATTEMPTS") or 5
        try:
            self.max_attempts: int = int(attempts)
        except ValueError:
            raise InputError(f"AWS_MAX_ATTEMPTS: expected a whole number, got {attempts!r}") from None
        if self.max_attempts < 1:
            raise InputError(f"AWS_MAX_ATTEMPTS: must be >= 1, got {self.max_attempts}")

        self.checksum_when_required: bool = cfg.checksum_when_required
        self.multipart_threshold: int = cfg.multipart_threshold_mb * _MB
        self.multipart_chunksize: int = cfg.multipart_chunksize_mb * _MB

        key_id = env.get("AWS_ACCESS_KEY_ID") or None
        secret = env.get("AWS_SECRET_ACCESS_KEY") or None
        if bool(key_id) != bool(secret):
            missing = "AWS_SECRET_ACCESS_KEY" if key_id else "AWS_ACCESS_KEY_ID"
            raise InputError(f"{missing} is not set but its pair is; set both or neither")
        self.__credentials = _Credentials(key_id, secret, env.get("AWS_SESSION_TOKEN") or None)

        self.__client: Any = None
        self.__transfer: Any = None
        self.__lock = threading.Lock()
        self.__backends: dict[type, Any] = {}

    def __repr__(self) -> str:
        endpoint = _scrub_url(self.endpoint_url) if self.endpoint_url else "aws"
        return f"Storage(endpoint={endpoint!r}, region={self.region!r}, retry_mode={self.retry_mode!r}, max_attempts={self.max_attempts})"

    # -- the interface ---------------------------------------------------------------

    def exists(self, uri: str) -> bool:
        """Whether the file or object exists (404 is False; any other failure raises)."""
        uri = _as_uri(uri)
        return self._backend(uri).exists(uri)

    def list(self, prefix: str) -> list[str]:
        """Keys under a folder or prefix, relative to it, recursive, sorted."""
        return sorted(self._listing(prefix))

    def put_file(self, local_path: str | os.PathLike[str], uri: str, progress: Progress | None = None) -> FileDigest:
        """Upload (or copy) a file; returns the SHA-256 and size of the bytes read."""
        uri = _as_uri(uri)
        return self._backend(uri).put_file(Path(local_path), uri, progress)

    def get_file(self, uri: str, local_path: str | os.PathLike[str], progress: Progress | None = None) -> FileDigest | None:
        """Download (or copy) one object to a local file.

        Returns the SHA-256 and size of the bytes copied when the backend computed them
        on the way (local folders), else None (S3: hash the file if you need them).
        """
        uri = _as_uri(uri)
        return self._backend(uri).get_file(uri, Path(local_path), progress)

    def put_bytes(self, data: bytes, uri: str) -> None:
        uri = _as_uri(uri)
        self._backend(uri).put_bytes(bytes(data), uri)

    def get_bytes(self, uri: str) -> bytes:
        """The content of one object; ``NotFoundError`` when it does not exist."""
        uri = _as_uri(uri)
        return self._backend(uri).get_bytes(uri)

    def delete(self, uri: str) -> None:
        """Delete one object; deleting what does not exist is not an error."""
        uri = _as_uri(uri)
        self._backend(uri).delete(uri)

    def sha256(self, uri: str) -> str:
        """SHA-256 (hex) of one object, read in full."""
        uri = _as_uri(uri)
        return self._backend(uri).sha256(uri)

    # -- internals shared with the functions below -------------------------------------

    def _backend(self, uri: str) -> Any:
        cls = _backend_class(uri)
        backend = self.__backends.get(cls)
        if backend is None:
            backend = self.__backends[cls] = cls(self)
        return backend

    def _is_local(self, uri: str) -> bool:
        return isinstance(self._backend(uri), _LocalBackend)

    def _listing(self, prefix: str) -> dict[str, _Object]:
        prefix = _as_uri(prefix)
        return self._backend(prefix).listing(prefix)

    def _stat(self, uri: str) -> _Object | None:
        uri = _as_uri(uri)
        return self._backend(uri).stat(uri)

    def _abort_uploads(self, prefix: str) -> int:
        return self._backend(prefix).abort_uploads(prefix)

    def _secrets(self) -> list[str]:
        return self.__credentials.values()

    def _clean(self, message: str) -> str:
        """One line, without credentials or URL passwords."""
        message = _scrub_url(" ".join(message.split()))
        for secret in self._secrets():
            message = message.replace(secret, "***")
        return message

    def _client(self) -> Any:
        with self.__lock:
            if self.__client is None:
                self.__client = self._make_client()
            return self.__client

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        options: dict[str, Any] = {
            "retries": {"mode": self.retry_mode, "total_max_attempts": self.max_attempts},
            "connect_timeout": 10,
            "read_timeout": 60,
            "max_pool_connections": 16,
        }
        if self.checksum_when_required:
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        creds = self.__credentials
        try:
            session = boto3.session.Session(
                aws_access_key_id=creds.key_id,
                aws_secret_access_key=creds.secret,
                aws_session_token=creds.token,
                region_name=self.region,
            )
            client = session.client("s3", endpoint_url=self.endpoint_url, config=Config(**options))
        except BotoCoreError as exc:
            raise StorageError(self._clean(f"cannot set up the S3 client: {_describe(exc)}")) from exc
        _install_scrubber(self._secrets())
        return client

    def _transfer_config(self) -> Any:
        """The transfer settings, built once (like the client)."""
        with self.__lock:
            if self.__transfer is None:
                from boto3.s3.transfer import TransferConfig

                self.__transfer = TransferConfig(
                    multipart_threshold=self.multipart_threshold,
                    multipart_chunksize=self.multipart_chunksize,
                    max_concurrency=4,
                    use_threads=True,
                    preferred_transfer_client="classic",
                )
        # s3transfer's loggers exist from here on; cheap, and it also catches any logger
        # created during an earlier transfer.
        _install_scrubber(self._secrets())
        return self.__transfer


# --------------------------------------------------------------------------------------
# The results layout
# --------------------------------------------------------------------------------------


def task_prefix(output: str, run_id: str, task: str, strategy: str) -> str:
    """``<output>/<run_id>/<task>/<strategy>`` for a local folder or an s3:// output."""
    output = _as_uri(output)
    for name, value in (("run_id", run_id), ("task", task), ("strategy", strategy)):
        _check_name(name, value)
    _backend_class(output)
    return _join(output, run_id, task, strategy)


def _check_name(name: str, value: Any) -> None:
    if not isinstance(value, str) or not _NAME_RE.match(value) or value in (".", ".."):
        raise InputError(f"{name}: {value!r} may hold only letters, digits, '.', '_' and '-' (1-63 characters)")


def _parse_manifest(data: bytes, where: str) -> dict[str, Any]:
    """A manifest with safe paths, or InputError saying what is wrong."""
    try:
        manifest = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != _SCHEMA or not isinstance(manifest.get("files"), dict):
        raise InputError(f"{where}: not a manifest of schema {_SCHEMA} with a 'files' mapping")
    for rel, entry in manifest["files"].items():
        _safe_relpath(rel, where)
        if rel in (MANIFEST, MARKER):
            raise InputError(f"{where}: lists the reserved name {rel!r}")
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("sha256"), str)
            or not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
            or not isinstance(entry.get("size"), int)
            or entry["size"] < 0
        ):
            raise InputError(f"{where}: entry {rel!r} needs a sha256 (64 hex digits) and a size")
    return manifest


def _verify(storage: Storage, prefix: str, objects: dict[str, _Object], deep: bool) -> tuple[str, dict[str, Any] | None]:
    """State of one task folder from its listing (fingerprint not compared)."""
    if not objects:
        return "absent", None
    if MARKER not in objects or MANIFEST not in objects:
        return "incomplete", None
    try:
        manifest = _parse_manifest(storage.get_bytes(_join(prefix, MANIFEST)), _join(prefix, MANIFEST))
    except NotFoundError:
        return "incomplete", None
    except InputError as exc:
        log.warning("%s", exc)
        return "incomplete", None
    if manifest.get("status") != "complete":
        return "incomplete", manifest
    local = storage._is_local(prefix)
    for rel, entry in manifest["files"].items():
        obj = objects.get(rel)
        if obj is None or obj.size != entry["size"]:
            log.info("%s: %s is %s", prefix, rel, "missing" if obj is None else "of another size than its manifest says")
            return "incomplete", manifest
        if entry.get("etag") and obj.etag and entry["etag"] != obj.etag:
            log.info("%s: %s was overwritten after publishing", prefix, rel)
            return "incomplete", manifest
        if deep and local and storage.sha256(_join(prefix, rel)) != entry["sha256"]:
            log.info("%s: %s does not match its SHA-256 in the manifest", prefix, rel)
            return "incomplete", manifest
    return "complete", manifest


def completion_state(storage: Storage, prefix: str, fingerprint: str) -> str:
    """``absent``, ``complete``, ``config_changed`` or ``incomplete``.

    Complete means: ``_SUCCESS`` present and every file of ``manifest.json`` there with
    its size (on S3 also its ETag; locally its SHA-256), under the same config
    fingerprint. A complete task of another fingerprint is ``config_changed``.
    """
    state, manifest = _verify(storage, prefix, storage._listing(prefix), deep=True)
    if state == "complete" and manifest is not None and manifest.get("fingerprint") != fingerprint:
        return "config_changed"
    return state


@dataclass
class PublishResult:
    """What ``publish`` uploaded."""

    prefix: str
    files: int
    bytes: int
    seconds: float
    marker_written: bool

    def summary(self) -> str:
        marker = "marked complete" if self.marker_written else f"no {MARKER} marker"
        return f"published {self.files} files ({_size(self.bytes)}) to {self.prefix} in {self.seconds:.1f} s, {marker}"


def _size(n: int) -> str:
    return f"{n / _MB:.1f} MB" if n >= _MB / 10 else f"{n / 1024:.1f} KB"


def _local_files(local_dir: Path) -> list[tuple[str, Path]]:
    files = []
    for folder, dirs, names in os.walk(local_dir):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder, name)
            rel = path.relative_to(local_dir).as_posix()
            if rel in (MANIFEST, MARKER):
                continue
            files.append((_safe_relpath(rel, str(local_dir)), path))
    return files


def _tail(prefix: str) -> str:
    return "/".join(prefix.rstrip("/").rsplit("/", 2)[-2:])


def _progress_bar(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, disable=None if enabled else True, leave=False)


def publish(
    storage: Storage,
    local_dir: str | os.PathLike[str],
    prefix: str,
    *,
    fingerprint: str,
    status: str,
    progress: bool = True,
) -> PublishResult:
    """Upload a task folder, then ``manifest.json``, then ``_SUCCESS`` (complete tasks only).

    An old ``_SUCCESS`` (and manifest) at the prefix is deleted first, and unfinished
    multipart uploads left there by a killed run are aborted. On any failure, unfinished
    multipart uploads are aborted (best effort) and a ``StorageError`` is raised.
    """
    if status not in _STATUSES:
        raise ValueError(f"status must be one of {_STATUSES}, got {status!r}")
    src = Path(local_dir)
    if not src.is_dir():
        raise InputError(f"{src}: no such folder to publish")
    prefix = _as_uri(prefix)
    if storage._is_local(prefix):
        dst = _LocalBackend.path(prefix).resolve()
        if dst != src.resolve() and dst.is_relative_to(src.resolve()):
            raise InputError(f"cannot publish {src} into {prefix}, a folder inside it")
    files = _local_files(src)
    total = sum(path.stat().st_size for _, path in files)
    start = time.monotonic()
    try:
        storage.delete(_join(prefix, MARKER))
        storage.delete(_join(prefix, MANIFEST))
        with contextlib.suppress(StorageError):
            stale = storage._abort_uploads(prefix)
            if stale:
                log.info("%s: aborted %d unfinished multipart uploads of an earlier run", prefix, stale)
        entries: dict[str, dict[str, Any]] = {}
        with _progress_bar(total, f"upload {_tail(prefix)}", progress) as bar:
            for rel, path in files:
                digest = storage.put_file(path, _join(prefix, rel), progress=bar.update)
                entries[rel] = {"sha256": digest.sha256, "size": digest.size}
        stored = storage._listing(prefix)
        for rel, entry in entries.items():
            obj = stored.get(rel)
            if obj is None or obj.size != entry["size"]:
                raise StorageError(f"upload to {_join(prefix, rel)}: stored size differs from the {entry['size']} bytes sent")
            if obj.etag:
                entry["etag"] = obj.etag
        manifest = {
            "schema": _SCHEMA,
            "fingerprint": fingerprint,
            "status": status,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 - Python 3.10 too
            "files": entries,
        }
        storage.put_bytes(json.dumps(manifest, indent=2, sort_keys=True).encode(), _join(prefix, MANIFEST))
        marker = status == "complete"
        if marker:
            storage.put_bytes(b"", _join(prefix, MARKER))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            storage._abort_uploads(prefix)
        if isinstance(exc, OSError):
            raise StorageError(storage._clean(f"publish to {prefix}: {_describe(exc)}")) from exc
        raise
    return PublishResult(prefix, len(entries), sum(e["size"] for e in entries.values()), round(time.monotonic() - start, 2), marker)


# --------------------------------------------------------------------------------------
# Reading results and inputs back
# --------------------------------------------------------------------------------------


@dataclass
class TaskStatus:
    """One task folder under an output root."""

    run_id: str
    task: str
    strategy: str
    state: str
    prefix: str


def list_runs(storage: Storage, output: str, *, run_id: str | None = None) -> list[TaskStatus]:
    """Every ``<run>/<task>/<strategy>`` folder under ``output`` with its state.

    The state is ``completion_state``'s without the fingerprint comparison, checked from
    sizes (and ETags on S3) only: ``pull`` verifies every SHA-256.
    """
    output = _as_uri(output)
    _backend_class(output)  # a malformed output fails here, before any joining
    if run_id is not None:
        _check_name("run_id", run_id)
    base = output if run_id is None else _join(output, run_id)
    groups: dict[tuple[str, str, str], dict[str, _Object]] = {}
    for rel, obj in storage._listing(base).items():
        parts = rel.split("/") if run_id is None else [run_id, *rel.split("/")]
        if len(parts) >= 4:
            groups.setdefault((parts[0], parts[1], parts[2]), {})["/".join(parts[3:])] = obj
    statuses = []
    for (run, task, strategy), objects in sorted(groups.items()):
        prefix = _join(output, run, task, strategy)
        state, _ = _verify(storage, prefix, objects, deep=False)
        statuses.append(TaskStatus(run, task, strategy, state, prefix))
    return statuses


@dataclass
class PullResult:
    """What ``pull`` downloaded."""

    prefix: str
    dest: Path
    files: int
    bytes: int
    seconds: float

    def summary(self) -> str:
        return f"pulled {self.files} files ({_size(self.bytes)}) from {self.prefix} into {self.dest} in {self.seconds:.1f} s"


def _check_inside(dest: Path, rels: list[str], where: str) -> None:
    """Refuse paths that would land outside ``dest`` (also through existing symlinks)."""
    root = dest.resolve()
    for rel in rels:
        parent = (dest / rel).parent.resolve()
        if not parent.is_relative_to(root):
            raise InputError(f"{where}: refusing {rel!r}: it would be written outside {dest}")


def pull(storage: Storage, prefix: str, dest_dir: str | os.PathLike[str], *, progress: bool = True) -> PullResult:
    """Download a complete task into ``dest_dir``, verifying every file against the manifest.

    Files are downloaded into a temp folder inside ``dest_dir``, checked (SHA-256 and
    size), then moved into place, ``_SUCCESS`` last: a failed download or check leaves
    nothing of this pull in ``dest_dir``. Paths that would escape ``dest_dir`` are
    refused before anything is written.
    """
    prefix = _as_uri(prefix)
    start = time.monotonic()
    objects = storage._listing(prefix)
    manifest_uri = _join(prefix, MANIFEST)
    if not objects:
        raise InputError(f"{prefix}: nothing there")
    if MANIFEST not in objects:
        raise InputError(f"{prefix}: no {MANIFEST}; not a published task folder")
    if MARKER not in objects:
        raise InputError(f"{prefix}: not complete (no {MARKER} marker); the task failed, was gated or is still running")
    raw = storage.get_bytes(manifest_uri)
    manifest = _parse_manifest(raw, manifest_uri)
    files: dict[str, dict[str, Any]] = manifest["files"]
    for rel, entry in files.items():
        obj = objects.get(rel)
        if obj is None:
            raise StorageError(f"{_join(prefix, rel)}: listed in {MANIFEST} but missing")
        if obj.size != entry["size"]:
            raise StorageError(f"{_join(prefix, rel)}: {obj.size} bytes stored, {entry['size']} in {MANIFEST}")
    dest = Path(dest_dir)
    _check_inside(dest, [*files, MANIFEST, MARKER], manifest_uri)
    created = not dest.exists()
    try:
        dest.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".pull-", dir=dest))
    except OSError as exc:
        raise StorageError(f"{dest}: cannot create ({exc.strerror or exc})") from exc
    total = sum(entry["size"] for entry in files.values())
    try:
        with _progress_bar(total, f"download {_tail(prefix)}", progress) as bar:
            for rel, entry in sorted(files.items()):
                uri = _join(prefix, rel)
                local = tmp / rel
                digest = storage.get_file(uri, local, progress=bar.update) or _hash_file(local)
                if (digest.sha256, digest.size) != (entry["sha256"], entry["size"]):
                    local.unlink()
                    raise StorageError(
                        f"{uri}: content does not match {MANIFEST} (SHA-256 {digest.sha256[:12]}..., "
                        f"{digest.size} bytes; expected {entry['sha256'][:12]}..., {entry['size']} bytes)"
                    )
        (tmp / MANIFEST).write_bytes(raw)
        (tmp / MARKER).write_bytes(b"")
        with contextlib.suppress(FileNotFoundError):
            (dest / MARKER).unlink()
        for rel in [*sorted(files), MANIFEST, MARKER]:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / rel, target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                dest.rmdir()  # only when empty
        if isinstance(exc, OSError):
            raise StorageError(f"pull into {dest}: {_describe(exc)}") from exc
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    return PullResult(prefix, dest, len(files), total, round(time.monotonic() - start, 2))


def fetch(storage: Storage, uri: str, cache_dir: str | os.PathLike[str]) -> Path:
    """A local path for an input: a local path as is, an s3:// folder or object cached.

    S3 inputs go to ``cache_dir/<sha256(uri)[:16]>/``: downloaded into a temp folder,
    verified (against a ``manifest.json`` at the prefix when there is one, SHA-256 and
    size; else by size), stamped ``.complete``, then renamed into place. A cached copy
    is reused when its stamp matches the remote listing (keys, sizes, ETags), so a
    changed input is fetched again. Returns the folder, or the file for one object.
    """
    uri = _as_uri(uri)
    if storage._is_local(uri):
        path = _LocalBackend.path(uri)
        if not path.exists():
            raise InputError(f"{uri}: no such file or folder")
        return path
    bucket, key = _split_s3(uri)
    canonical = f"s3://{bucket}/{key}"
    target = Path(cache_dir) / hashlib.sha256(canonical.encode()).hexdigest()[:16]
    objects = storage._listing(uri)
    if objects:
        kind, name = "folder", ""
    else:
        obj = storage._stat(uri) if key else None
        if obj is None:
            raise InputError(f"{uri}: nothing there (no object, no objects under it)")
        kind, name = "file", key.rsplit("/", 1)[-1]
        objects = {name: obj}
    result = target if kind == "folder" else target / name
    signature = {"uri": canonical, "kind": kind, "objects": {rel: [o.size, o.etag] for rel, o in sorted(objects.items())}}
    with contextlib.suppress(OSError, ValueError):
        if json.loads((target / _STAMP).read_text(encoding="utf-8")) == signature:
            log.debug("%s: cached in %s", uri, target)
            return result
    for rel in objects:
        _safe_relpath(rel, uri)
        if rel == _STAMP:
            raise InputError(f"{uri}: holds {_STAMP}, a name the cache reserves")
    manifest = None
    if kind == "folder" and MANIFEST in objects:
        manifest = _parse_manifest(storage.get_bytes(_join(uri, MANIFEST)), _join(uri, MANIFEST))
        missing = [rel for rel in manifest["files"] if rel not in objects]
        if missing:
            raise StorageError(f"{_join(uri, missing[0])}: listed in {MANIFEST} but missing")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    except OSError as exc:
        raise StorageError(f"{target.parent}: cannot create the cache ({exc.strerror or exc})") from exc
    try:
        for rel, obj in sorted(objects.items()):
            remote = uri if kind == "file" else _join(uri, rel)
            local = tmp / rel
            digest = storage.get_file(remote, local) or _hash_file(local)
            expected = manifest["files"].get(rel) if manifest else None
            if expected is not None and (digest.sha256, digest.size) != (expected["sha256"], expected["size"]):
                raise StorageError(f"{remote}: content does not match {MANIFEST} (SHA-256 or size differs)")
            if digest.size != obj.size:
                raise StorageError(f"{remote}: downloaded {digest.size} bytes, {obj.size} listed")
        (tmp / _STAMP).write_text(json.dumps(signature, sort_keys=True), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise StorageError(f"fetch {uri} into {target}: {_describe(exc)}") from exc
        raise
    log.info("%s: fetched into %s", uri, target)
    return result
