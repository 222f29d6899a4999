"""Local folders (plain paths and ``file://``) as a store.

Writes go through a temp file and a rename. Symlinks are never followed out of the folder
being listed: such an entry is listed as ``refused`` (so a task holding one is not
complete, and a pull or fetch refuses it before reading a byte), and a folder symlink is
not descended into.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from job.errors import InputError, JobError, StorageError
from job.storage.base import CHUNK, Backend, FileDigest, LocalFile, NotFoundError, ObjectInfo, Progress, hash_file
from job.storage.locations import escape, scheme
from job.storage.untrusted import TooLargeError

__all__ = ["LocalBackend"]


class LocalBackend(Backend):
    """Local folders (plain paths and ``file://``)."""

    @classmethod
    def check_uri(cls, uri: str) -> None:
        cls.path(uri)

    @staticmethod
    def path(uri: str) -> Path:
        if scheme(uri) == "file":
            rest = uri[len("file://") :]
            if rest.startswith("localhost/"):
                rest = rest[len("localhost") :]
            if not rest.startswith("/"):
                raise InputError(f"{escape(uri)}: a file:// URI needs an absolute path (file:///path)")
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

    def listing(self, uri: str) -> dict[str, ObjectInfo]:
        root = self.path(uri)
        out: dict[str, ObjectInfo] = {}
        if not root.is_dir():
            return out
        real_root = root.resolve()
        with self._errors("list", uri):
            for folder, dirs, files in os.walk(root):  # never descends into folder symlinks
                dirs.sort()
                for name in files:
                    path = Path(folder, name)
                    rel = path.relative_to(root).as_posix()
                    with contextlib.suppress(FileNotFoundError):  # removed while listing
                        if path.is_symlink() and not path.resolve().is_relative_to(real_root):
                            out[rel] = ObjectInfo(0, refused=f"{rel} is a symlink leading out of {root}")
                            continue
                        out[rel] = ObjectInfo(path.stat().st_size)
        return out

    def stat(self, uri: str) -> ObjectInfo | None:
        path = self.path(uri)
        return ObjectInfo(path.stat().st_size) if path.is_file() else None

    def _write(self, uri: str, write: Callable[[Any], None], mode_from: Path | None = None) -> None:
        dst = self.path(uri)
        with self._errors("write", uri):
            dst.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{dst.name[:200]}.", suffix=".tmp", dir=dst.parent)
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
        """Copy, hashing the bytes as they are copied (a local copy is verified by that hash)."""
        if not Path(local_path).is_file():
            raise InputError(f"{local_path}: no such file to upload")
        dst = self.path(uri)
        with contextlib.suppress(OSError):
            if os.path.samefile(local_path, dst):  # publishing a folder in place
                digest = hash_file(local_path)
                if progress:
                    progress(digest.size)
                return digest
        sha = hashlib.sha256()
        size = 0

        def copy(out: Any) -> None:
            nonlocal size
            with open(local_path, "rb") as src:
                while chunk := src.read(CHUNK):
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
        sha = hashlib.sha256()
        size = 0
        with self._errors("read", uri):
            fh = open(src, "rb")
        with fh, LocalFile(local_path) as out:
            while True:
                with self._errors("read", uri):
                    chunk = fh.read(CHUNK)
                if not chunk:
                    break
                sha.update(chunk)
                out.write(chunk)
                size += len(chunk)
                if progress:
                    progress(len(chunk))
        return FileDigest(sha.hexdigest(), size)

    def put_bytes(self, data: bytes, uri: str) -> None:
        self._write(uri, lambda out: out.write(data))

    def get_bytes(self, uri: str, max_bytes: int | None = None) -> bytes:
        with self._errors("read", uri), open(self.path(uri), "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if max_bytes is not None and size > max_bytes:
                raise TooLargeError(f"{escape(uri)}: {size} bytes, more than the {max_bytes} read at most")
            return fh.read() if max_bytes is None else fh.read(max_bytes + 1)[: max_bytes + 1]

    def delete(self, uri: str) -> None:
        with self._errors("delete", uri), contextlib.suppress(FileNotFoundError):
            self.path(uri).unlink()

    def sha256(self, uri: str) -> str:
        with self._errors("read", uri):
            return hash_file(self.path(uri)).sha256
