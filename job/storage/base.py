"""The interface every storage backend implements, and the types its methods return.

One backend class per URI scheme (``local.LocalBackend``, ``s3.S3Backend``), chosen by
``registry.backend_class``. Both return the same types from the same methods: ``listing``
and ``stat`` give ``ObjectInfo``, ``put_file`` and ``get_file`` give the ``FileDigest`` of
the bytes transferred.
"""

from __future__ import annotations

import abc
import base64
import contextlib
import hashlib
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from job.errors import InputError, StorageError

if TYPE_CHECKING:
    from job.storage.settings import StoreSettings

__all__ = [
    "CHUNK",
    "Backend",
    "FileDigest",
    "LocalFile",
    "NotFoundError",
    "ObjectInfo",
    "Progress",
    "content_matches",
    "describe",
    "hash_file",
]

CHUNK = 1024 * 1024

Progress = Callable[[int], Any]  # called with the number of bytes just transferred


class NotFoundError(StorageError):
    """The object or file does not exist."""


@dataclass(frozen=True)
class FileDigest:
    """SHA-256 (hex) and size in bytes of a file as it was transferred."""

    sha256: str
    size: int


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object as listed.

    ``etag`` changes when an S3 object is overwritten. ``refused`` says why the object must
    not be read (a local symlink leading out of the folder listed).
    """

    size: int
    etag: str = ""
    refused: str = ""


def hash_file(path: Path) -> FileDigest:
    """SHA-256 and size of a local file, read once."""
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return FileDigest(sha.hexdigest(), size)


def content_matches(kind: str, expected: str, path: Path) -> bool:
    """Whether a local file has the store's checksum (``store_checksum``'s kind and value)."""
    if kind == "sha256":
        return base64.b64encode(bytes.fromhex(hash_file(path).sha256)).decode() == expected
    if kind == "md5":
        md5 = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                md5.update(chunk)
        return md5.hexdigest() == expected
    if kind == "crc32":
        crc = 0
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                crc = zlib.crc32(chunk, crc)
        return base64.b64encode(crc.to_bytes(4, "big")).decode() == expected
    return False


def describe(exc: BaseException) -> str:
    """One short line for an exception of boto or the OS (never its traceback)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and response.get("Error"):
        error = response["Error"]
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        text = (
            f"{error.get('Code', 'error')}{f' (HTTP {status})' if status else ''}: {error.get('Message', '')}".rstrip(
                ": "
            )
        )
    else:
        text = str(exc) or type(exc).__name__
        if isinstance(exc, OSError) and exc.strerror:
            text = exc.strerror
    return " ".join(text.split())[:400]


class Backend(abc.ABC):
    """Storage of one URI scheme. ``uri`` arguments are already of this scheme."""

    def __init__(self, settings: StoreSettings):
        self.settings = settings

    @classmethod
    def check_uri(cls, uri: str) -> None:
        """Raise InputError when ``uri`` is malformed for this scheme (most schemes need no check)."""
        return None

    @abc.abstractmethod
    def exists(self, uri: str) -> bool: ...

    @abc.abstractmethod
    def stat(self, uri: str) -> ObjectInfo | None:
        """The object's info, or None when it does not exist."""

    @abc.abstractmethod
    def listing(self, uri: str) -> dict[str, ObjectInfo]:
        """Every object under a folder or prefix, by path relative to it."""

    @abc.abstractmethod
    def put_file(self, local_path: Path, uri: str, progress: Progress | None) -> FileDigest:
        """Upload and verify the stored content; the digest of the bytes read."""

    @abc.abstractmethod
    def get_file(self, uri: str, local_path: Path, progress: Progress | None) -> FileDigest:
        """Download into ``local_path`` (created); the digest of the bytes written."""

    @abc.abstractmethod
    def put_bytes(self, data: bytes, uri: str) -> None: ...

    @abc.abstractmethod
    def get_bytes(self, uri: str, max_bytes: int | None = None) -> bytes:
        """The object's content; ``untrusted.TooLargeError`` without reading it when the
        store reports more than ``max_bytes``."""

    @abc.abstractmethod
    def delete(self, uri: str) -> None: ...

    @abc.abstractmethod
    def sha256(self, uri: str) -> str:
        """SHA-256 (hex) of one object, read in full."""

    def store_checksum(self, uri: str) -> tuple[str, str] | None:
        """The store's own full-content checksum of an object, as (kind, value), if it keeps one."""
        return None

    def abort_uploads(self, uri: str) -> int:
        """Abort unfinished uploads under a prefix; how many."""
        return 0


class LocalFile:
    """A local file opened for writing a download. A failure of the local disk (no space,
    a name too long, a folder where the file goes) is the user's destination, not the store:
    it is raised as an InputError (exit 2) naming the file, also from inside boto3's threads."""

    def __init__(self, path: Path):
        self.path = Path(path)
        with self._local("create"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "wb")

    @contextlib.contextmanager
    def _local(self, action: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise InputError(f"{action} {self.path}: {exc.strerror or exc}") from exc

    def write(self, data: bytes) -> int:
        with self._local("write"):
            return self._fh.write(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        with self._local("write"):
            return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        with self._local("write"):
            self._fh.flush()

    def close(self) -> None:
        with self._local("write"):
            self._fh.close()

    def __enter__(self) -> LocalFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
