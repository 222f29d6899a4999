"""``Storage``: settings, credentials and the boto3 client, read once; each URI handed to
the backend of its scheme."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from job.errors import InputError, StorageError
from job.storage import scrub
from job.storage.base import Backend, FileDigest, ObjectInfo, Progress, describe
from job.storage.local import LocalBackend
from job.storage.locations import as_uri
from job.storage.registry import backend_class

if TYPE_CHECKING:
    from job.config import StorageConfig

__all__ = ["Storage"]

_MB = 1024 * 1024


class _Credentials:
    """Keys from the environment; never shown by repr."""

    __slots__ = ("key_id", "secret", "token")

    def __init__(self, key_id: str | None, secret: str | None, token: str | None):
        self.key_id, self.secret, self.token = key_id, secret, token

    def __repr__(self) -> str:
        return "_Credentials(***)"

    def values(self) -> list[str]:
        return [v for v in (self.key_id, self.secret, self.token) if v]


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
        from job.config import StorageConfig

        env = os.environ if environ is None else environ
        cfg = config if config is not None else StorageConfig()
        try:
            cfg.check()
        except ValueError as exc:
            raise InputError(f"Storage.{getattr(exc, 'key', '?')}: {exc}") from None

        endpoint = cfg.endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or ""
        source = "Storage.endpoint_url" if cfg.endpoint_url else "AWS_ENDPOINT_URL"
        if endpoint and not re.match(r"^https?://[^/\s]+", endpoint):
            raise InputError(f"{source}: expected http(s)://host[:port], got {scrub.scrub_url(endpoint)!r}")
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
        scrub.add_secrets(self.__credentials.values())

        self.__client: Any = None
        self.__transfer: Any = None
        self.__lock = threading.Lock()
        self.__backends: dict[type, Backend] = {}

    def __repr__(self) -> str:
        endpoint = scrub.scrub_url(self.endpoint_url) if self.endpoint_url else "aws"
        return f"Storage(endpoint={endpoint!r}, region={self.region!r}, retry_mode={self.retry_mode!r}, max_attempts={self.max_attempts})"

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

    def get_bytes(self, uri: str) -> bytes:
        """The content of one object; ``NotFoundError`` when it does not exist."""
        uri = as_uri(uri)
        return self.backend(uri).get_bytes(uri)

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
            backend = self.__backends[cls] = cls(self)
        return backend

    def is_local(self, uri: str) -> bool:
        return isinstance(self.backend(uri), LocalBackend)

    def abort_uploads(self, prefix: str) -> int:
        return self.backend(prefix).abort_uploads(prefix)

    def clean(self, message: str) -> str:
        """One line, without credentials or URL passwords."""
        return scrub.scrub(" ".join(message.split()))

    def client(self) -> Any:
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
            raise StorageError(self.clean(f"cannot set up the S3 client: {describe(exc)}")) from exc
        scrub.install(excepthook=False)
        return client

    def transfer_config(self) -> Any:
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
        scrub.install(excepthook=False)
        return self.__transfer
