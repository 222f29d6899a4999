"""``Storage``: the settings, read once; each URI handed to the backend of its scheme."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from job.storage import scrub
from job.storage.base import Backend, FileDigest, ObjectInfo, Progress
from job.storage.local import LocalBackend
from job.storage.locations import as_uri
from job.storage.registry import backend_class
from job.storage.settings import StoreSettings

if TYPE_CHECKING:
    from job.config import StorageConfig

__all__ = ["Storage"]


class Storage:
    """Local folders and S3-compatible storage behind one interface.

    The settings (``job.storage.settings.StoreSettings``: the config, else the standard
    AWS environment) are read once, here; each backend gets them and builds what it needs
    (the S3 backend its boto3 client, on first use).
    """

    def __init__(self, config: StorageConfig | None = None, *, environ: Mapping[str, str] | None = None):
        self.settings = StoreSettings(config, environ=environ)
        self.__backends: dict[type, Backend] = {}

    # The settings users and tests read from the facade.
    endpoint_url = property(lambda self: self.settings.endpoint_url)
    region = property(lambda self: self.settings.region)
    retry_mode = property(lambda self: self.settings.retry_mode)
    max_attempts = property(lambda self: self.settings.max_attempts)

    def __repr__(self) -> str:
        return repr(self.settings).replace("StoreSettings(", "Storage(", 1)

    # -- the interface ---------------------------------------------------------------

    def exists(self, uri: str) -> bool:
        """Whether the file or object exists (404 is False; any other failure raises)."""
        uri = as_uri(uri)
        return self.backend(uri).exists(uri)

    def list(self, prefix: str) -> list[str]:
        """Keys under a folder or prefix, relative to it, recursive, sorted."""
        return sorted(self.listing(prefix))

    def put_file(self, local_path: str | os.PathLike[str], uri: str, progress: Progress | None = None) -> FileDigest:
        """Upload (or copy) a file, verified; returns the SHA-256 and size of the bytes read."""
        uri = as_uri(uri)
        return self.backend(uri).put_file(Path(local_path), uri, progress)

    def get_file(self, uri: str, local_path: str | os.PathLike[str], progress: Progress | None = None) -> FileDigest:
        """Download (or copy) one object to a local file; the SHA-256 and size of what was written."""
        uri = as_uri(uri)
        return self.backend(uri).get_file(uri, Path(local_path), progress)

    def put_bytes(self, data: bytes, uri: str) -> None:
        uri = as_uri(uri)
        self.backend(uri).put_bytes(bytes(data), uri)

    def get_bytes(self, uri: str, max_bytes: int | None = None) -> bytes:
        """The content of one object; ``NotFoundError`` when it does not exist, ``TooLargeError``
        (not read) when the store reports more than ``max_bytes``."""
        uri = as_uri(uri)
        return self.backend(uri).get_bytes(uri, max_bytes)

    def delete(self, uri: str) -> None:
        """Delete one object; deleting what does not exist is not an error."""
        uri = as_uri(uri)
        self.backend(uri).delete(uri)

    def sha256(self, uri: str) -> str:
        """SHA-256 (hex) of one object, read in full."""
        uri = as_uri(uri)
        return self.backend(uri).sha256(uri)

    def listing(self, prefix: str) -> dict[str, ObjectInfo]:
        """Every object under a folder or prefix with its size (and ETag on S3)."""
        prefix = as_uri(prefix)
        return self.backend(prefix).listing(prefix)

    def stat(self, uri: str) -> ObjectInfo | None:
        uri = as_uri(uri)
        return self.backend(uri).stat(uri)

    # -- for the functions of this package ---------------------------------------------

    def backend(self, uri: str) -> Backend:
        cls = backend_class(uri)
        backend = self.__backends.get(cls)
        if backend is None:
            backend = self.__backends[cls] = cls(self.settings)
        return backend

    def is_local(self, uri: str) -> bool:
        return isinstance(self.backend(uri), LocalBackend)

    def abort_uploads(self, prefix: str) -> int:
        return self.backend(prefix).abort_uploads(prefix)

    def clean(self, message: str) -> str:
        """One line, without credentials or URL passwords."""
        return scrub.clean(message)
