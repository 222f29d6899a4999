"""S3-compatible object storage through the storage's one lazily built boto3 client.

Uploads ask the store to keep a SHA-256 checksum of each object (``ChecksumAlgorithm``)
and compare the checksum it reports with the SHA-256 of the bytes sent: the whole file's
for a single PUT, the composite of the parts' for a multipart upload (S3's
``sha256(part digests)-N``). A store that keeps no checksum (some S3-compatible stores; or
``Storage.checksum_when_required``, for stores that reject boto3's checksums) gets a size
check only; the manifest's SHA-256 still verifies every download.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from job.errors import InputError, JobError, StorageError
from job.storage import scrub
from job.storage.base import (
    CHUNK,
    Backend,
    FileDigest,
    LocalFile,
    NotFoundError,
    ObjectInfo,
    Progress,
    describe,
    hash_file,
)
from job.storage.locations import escape, split_s3
from job.storage.settings import StoreSettings
from job.storage.untrusted import TooLargeError

__all__ = ["S3Backend"]

log = logging.getLogger(__name__)


def _error_code(exc: object) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    return str(error.get("Code", ""))


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _sha256_checksums(path: Path, part_size: int) -> tuple[str, str]:
    """(whole-file SHA-256, composite of the parts' SHA-256s) as S3 reports them (base64)."""
    whole = hashlib.sha256()
    parts = []
    with open(path, "rb") as fh:
        while part := fh.read(part_size):
            whole.update(part)
            parts.append(hashlib.sha256(part).digest())
    return _b64(whole.digest()), _b64(hashlib.sha256(b"".join(parts)).digest())


class _HashingReader:
    """An open file for the transfer manager that hashes each byte once, as it is read.

    The transfer may read a range again (checksums, retries); only bytes past what was
    already hashed, and contiguous with it, are added. ``digest`` says whether the whole
    file went through in order; when not, the caller hashes the file again.
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


class S3Backend(Backend):
    """S3-compatible object storage, through one boto3 client built on first use from the
    settings (thread-safe: transfers run in threads)."""

    def __init__(self, settings: StoreSettings):
        super().__init__(settings)
        self._client: Any = None
        self._transfer: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        settings = self.settings
        options: dict[str, Any] = {
            "retries": {"mode": settings.retry_mode, "total_max_attempts": settings.max_attempts},
            "connect_timeout": 10,
            "read_timeout": 60,
            "max_pool_connections": 16,
        }
        if settings.checksum_when_required:
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        creds = settings.credentials
        try:
            session = boto3.session.Session(
                aws_access_key_id=creds.key_id,
                aws_secret_access_key=creds.secret,
                aws_session_token=creds.token,
                region_name=settings.region,
            )
            client = session.client("s3", endpoint_url=settings.endpoint_url, config=Config(**options))
        except BotoCoreError as exc:
            raise StorageError(scrub.clean(f"cannot set up the S3 client: {describe(exc)}")) from exc
        scrub.install(excepthook=False)
        return client

    def transfer_config(self) -> Any:
        """The transfer settings, built once (like the client)."""
        with self._lock:
            if self._transfer is None:
                from boto3.s3.transfer import TransferConfig

                self._transfer = TransferConfig(
                    multipart_threshold=self.settings.multipart_threshold,
                    multipart_chunksize=self.settings.multipart_chunksize,
                    max_concurrency=4,
                    use_threads=True,
                    preferred_transfer_client="classic",
                )
        # s3transfer's loggers exist from here on; cheap, and it also catches any logger
        # created during an earlier transfer.
        scrub.install(excepthook=False)
        return self._transfer

    @classmethod
    def check_uri(cls, uri: str) -> None:
        split_s3(uri)

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
                raise NotFoundError(f"{action} {escape(uri)}: not found") from exc
            if isinstance(exc, (BotoCoreError, ClientError, Boto3Error, OSError)):
                raise StorageError(scrub.clean(f"{action} {escape(uri)}: {describe(exc)}")) from exc
            raise

    @staticmethod
    def _object(uri: str) -> tuple[str, str]:
        bucket, key = split_s3(uri)
        if not key:
            raise InputError(f"{escape(uri)}: names a bucket, not an object; expected s3://bucket/key")
        return bucket, key

    @property
    def _checksums(self) -> bool:
        return not self.settings.checksum_when_required

    def exists(self, uri: str) -> bool:
        return self.stat(uri) is not None

    def _head(self, uri: str, checksums: bool = False) -> dict | None:
        bucket, key = self._object(uri)
        extra = {"ChecksumMode": "ENABLED"} if checksums and self._checksums else {}
        try:
            with self._errors("stat", uri):
                return self.client().head_object(Bucket=bucket, Key=key, **extra)
        except NotFoundError:
            return None

    def stat(self, uri: str) -> ObjectInfo | None:
        head = self._head(uri)
        return None if head is None else ObjectInfo(int(head["ContentLength"]), head.get("ETag", "").strip('"'))

    def listing(self, uri: str) -> dict[str, ObjectInfo]:
        bucket, key = split_s3(uri)
        prefix = f"{key}/" if key else ""
        out: dict[str, ObjectInfo] = {}
        with self._errors("list", uri, not_found=False):
            pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    rel = item["Key"][len(prefix) :]
                    if rel and not rel.endswith("/"):  # "folder" placeholders hold nothing
                        out[rel] = ObjectInfo(int(item["Size"]), item.get("ETag", "").strip('"'))
        return out

    def put_file(self, local_path: Path, uri: str, progress: Progress | None) -> FileDigest:
        bucket, key = self._object(uri)
        client, transfer = self.client(), self.transfer_config()
        extra = {"ChecksumAlgorithm": "SHA256"} if self._checksums else {}
        try:
            fh = open(local_path, "rb")
        except FileNotFoundError:
            raise InputError(f"{local_path}: no such file to upload") from None
        except OSError as exc:
            raise StorageError(f"upload {local_path}: {exc.strerror or exc}") from exc
        with fh, self._errors("upload to", uri, not_found=False):
            size = os.fstat(fh.fileno()).st_size
            reader = _HashingReader(fh)
            client.upload_fileobj(reader, bucket, key, ExtraArgs=extra, Config=transfer, Callback=progress)
            sha = reader.digest(size)
        # Hashed on the way when the transfer read the file in order; else read it again.
        digest = FileDigest(sha, size) if sha is not None else hash_file(Path(local_path))
        self._verify_upload(uri, Path(local_path), digest)
        return digest

    def _verify_upload(self, uri: str, local_path: Path, digest: FileDigest) -> None:
        """The stored object is what was sent: same size, and same SHA-256 where the store keeps one."""
        head = self._head(uri, checksums=True)
        if head is None or int(head["ContentLength"]) != digest.size:
            stored = "nothing" if head is None else f"{head['ContentLength']} bytes"
            raise StorageError(f"upload to {escape(uri)}: the store holds {stored}, {digest.size} bytes were sent")
        stored = (head.get("ChecksumSHA256") or "").split("-")[0]
        if not stored:
            log.debug("%s: the store keeps no SHA-256 checksum; checked by size", uri)
            return
        whole = _b64(bytes.fromhex(digest.sha256))
        if stored == whole:
            return
        from s3transfer.utils import ChunksizeAdjuster

        part = ChunksizeAdjuster().adjust_chunksize(self.settings.multipart_chunksize, digest.size)
        if stored != _sha256_checksums(local_path, part)[1]:
            raise StorageError(f"upload to {escape(uri)}: the store's SHA-256 checksum differs from the bytes sent")

    def get_file(self, uri: str, local_path: Path, progress: Progress | None) -> FileDigest:
        bucket, key = self._object(uri)
        client, transfer = self.client(), self.transfer_config()
        with LocalFile(local_path) as out, self._errors("download", uri):
            client.download_fileobj(bucket, key, out, Config=transfer, Callback=progress)
        # Parts arrive out of order: the file is hashed once it is complete.
        return hash_file(Path(local_path))

    def store_checksum(self, uri: str) -> tuple[str, str] | None:
        head = self._head(uri, checksums=True)
        if head is None:
            raise NotFoundError(f"stat {escape(uri)}: not found")
        composite = head.get("ChecksumType") == "COMPOSITE"
        sha = head.get("ChecksumSHA256") or ""
        if sha and not composite and "-" not in sha:
            return "sha256", sha
        crc = head.get("ChecksumCRC32") or ""
        if crc and not composite and "-" not in crc:
            return "crc32", crc
        etag = head.get("ETag", "").strip('"')
        if len(etag) == 32 and all(c in "0123456789abcdef" for c in etag):
            return "md5", etag  # a single PUT without SSE-KMS: the ETag is the content's MD5
        return None

    def put_bytes(self, data: bytes, uri: str) -> None:
        bucket, key = self._object(uri)
        extra = {"ChecksumAlgorithm": "SHA256"} if self._checksums else {}
        with self._errors("write", uri, not_found=False):
            self.client().put_object(Bucket=bucket, Key=key, Body=data, **extra)

    def get_bytes(self, uri: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes. Above ``max_bytes`` (the size the store answers with) the body
        is not read: TooLargeError. A body cut on the way (connection reset, fewer bytes than
        announced) is read again, as often as a file download is (``num_download_attempts``)."""
        from s3transfer.utils import S3_RETRYABLE_DOWNLOAD_ERRORS

        bucket, key = self._object(uri)
        attempts = max(1, self.transfer_config().num_download_attempts)
        for attempt in range(1, attempts + 1):
            with self._errors("read", uri):
                response = self.client().get_object(Bucket=bucket, Key=key)
                body = response["Body"]
                size = int(response.get("ContentLength") or 0)
                if max_bytes is not None and size > max_bytes:
                    body.close()
                    raise TooLargeError(f"{escape(uri)}: {size} bytes, more than the {max_bytes} read at most")
                try:
                    return body.read()
                except S3_RETRYABLE_DOWNLOAD_ERRORS:
                    body.close()
                    if attempt == attempts:
                        raise
                    log.info("read %s: cut on the way (attempt %d of %d); reading it again", uri, attempt, attempts)
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def delete(self, uri: str) -> None:
        bucket, key = self._object(uri)
        with self._errors("delete", uri, not_found=False):
            self.client().delete_object(Bucket=bucket, Key=key)

    def sha256(self, uri: str) -> str:
        bucket, key = self._object(uri)
        sha = hashlib.sha256()
        with self._errors("read", uri):
            body = self.client().get_object(Bucket=bucket, Key=key)["Body"]
            for chunk in body.iter_chunks(CHUNK):
                sha.update(chunk)
        return sha.hexdigest()

    def abort_uploads(self, uri: str) -> int:
        """Abort unfinished multipart uploads under a prefix (they cost storage until aborted)."""
        bucket, key = split_s3(uri)
        prefix = f"{key}/" if key else ""
        client = self.client()
        aborted = 0
        with self._errors("abort uploads under", uri, not_found=False):
            for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
                for upload in page.get("Uploads", []):
                    if upload["Key"].startswith(prefix):
                        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                        aborted += 1
        return aborted
