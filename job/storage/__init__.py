"""Storage of the job: local folders and S3-compatible buckets behind one small interface.

Modules, by what they hold:

* ``locations``: URIs (scheme, bucket, joining) and the checks on every name or path that
  comes from a key or a manifest (one safe component; never outside a root);
* ``base``: the ``Backend`` interface and the types its methods return;
  ``local`` and ``s3``: one backend per scheme; ``registry``: scheme -> backend class;
* ``client``: ``Storage``, settings and credentials read once, each URI handed to its backend;
* ``scrub``: credentials and URL passwords kept out of messages, logs and tracebacks;
* ``manifest``: ``manifest.json``/``_SUCCESS`` and the state of a task folder;
* ``publish``: upload a task folder, verified, manifest and marker last;
* ``download``: the one verified download, used by ``pull`` and ``fetch``;
* ``results``: the layout ``<output>/<run-id>/<task>/<strategy>/``, listing and pulling;
* ``inputs``: ``fetch`` of inputs into a verified cache, and their identity for the
  completion fingerprint.

Every failure of the storage itself is a ``StorageError`` (exit code 4) with one line
naming the URI; a malformed URI, an unsafe name or path, or a problem of the local
destination is an ``InputError`` (exit code 2). Credentials are never logged, printed,
written, or shown by ``repr``.

Light dependencies only (stdlib, boto3, tqdm): the pull script imports this package on a
laptop without paddle. boto3 is imported inside the methods that need it.
"""

from __future__ import annotations

from job.storage.base import Backend, FileDigest, NotFoundError, ObjectInfo, hash_file
from job.storage.client import Storage
from job.storage.download import download_verified
from job.storage.inputs import fetch, input_identity, run_fingerprint
from job.storage.layout import PullResult, TaskStatus, list_runs, pull_task, task_prefix
from job.storage.locations import escape
from job.storage.manifest import MANIFEST, MARKER, completion_state
from job.storage.publish import PublishResult, format_size, publish
from job.storage.registry import check_location

__all__ = [
    "MANIFEST",
    "MARKER",
    "Backend",
    "FileDigest",
    "NotFoundError",
    "ObjectInfo",
    "PublishResult",
    "PullResult",
    "Storage",
    "TaskStatus",
    "check_location",
    "completion_state",
    "download_verified",
    "escape",
    "fetch",
    "format_size",
    "hash_file",
    "input_identity",
    "list_runs",
    "publish",
    "pull_task",
    "run_fingerprint",
    "task_prefix",
]
