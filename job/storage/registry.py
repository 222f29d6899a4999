"""Which backend serves a URI: one class per scheme."""

from __future__ import annotations

from job.errors import InputError
from job.storage.base import Backend
from job.storage.local import LocalBackend
from job.storage.locations import escape, scheme
from job.storage.s3 import S3Backend

__all__ = ["BACKENDS", "backend_class", "check_location"]

BACKENDS: dict[str, type[Backend]] = {
    "": LocalBackend,
    "file": LocalBackend,
    "s3": S3Backend,
}


def backend_class(uri: str) -> type[Backend]:
    """The backend of the URI's scheme; InputError for another scheme or a malformed URI."""
    found = scheme(uri)
    cls = BACKENDS.get(found)
    if cls is None:
        raise InputError(f"{escape(uri)}: unsupported scheme {found!r}; use a local path or s3://bucket/prefix")
    cls.check_uri(uri)
    return cls


def check_location(uri: str, *, remote: bool = False) -> str:
    """``uri`` when the job can read or write it, else InputError (exit 2) naming it.

    ``remote``: only object storage will do (a pod keeps nothing of its own file system).
    """
    from job.storage.locations import as_uri

    uri = as_uri(uri)
    cls = backend_class(uri)
    if remote and cls is LocalBackend:
        raise InputError(f"{escape(uri)}: a local path means nothing to a pod; expected s3://bucket/prefix")
    return uri
