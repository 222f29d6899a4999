"""A stand-in for the Kubernetes API server, for the launcher's and kubectl's tests.

``FakeKubeAPI`` is a small threaded HTTP server on 127.0.0.1 that answers the part of the
Kubernetes API the launcher uses (create, get and list Jobs, list Pods) and moves each
created Job from running to succeeded or failed as it is polled. ``write_kubeconfig``
points a client at it.

For the real ``kubectl apply`` it also answers what kubectl asks before and while applying
(seen with ``kubectl -v=8``, v1.32): the legacy discovery documents (``/api``, ``/apis``,
``/api/v1``, ``/apis/batch/v1``), the OpenAPI v3 index and the ``batch/v1`` document (kubectl
reads the Job PATCH operation there to learn that the server takes ``fieldValidation``, so it
leaves validation to the server), and PATCH of a Job (client-side apply sends a strategic
merge patch when the applied Job changed; server-side apply an apply patch).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

__all__ = ["FakeKubeAPI", "write_kubeconfig"]

_JOB_GVK = {"group": "batch", "version": "v1", "kind": "Job"}
_JOB_PATH = re.compile(r"/apis/batch/v1/namespaces/([^/]+)/jobs/([^/]+)")

# Discovery: just the resources the launcher's Jobs and its pod listing touch.
_DISCOVERY = {
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/apis": {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": "batch",
                "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"},
            }
        ],
    },
    "/api/v1": {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["get", "list"]},
        ],
    },
    "/apis/batch/v1": {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "batch/v1",
        "resources": [
            {
                "name": "jobs",
                "singularName": "job",
                "namespaced": True,
                "kind": "Job",
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                "categories": ["all"],
            },
        ],
    },
    "/openapi/v3": {"paths": {"apis/batch/v1": {"serverRelativeURL": "/openapi/v3/apis/batch/v1?hash=standin"}}},
    "/openapi/v3/apis/batch/v1": {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes API stand-in", "version": "v1.32.0"},
        "paths": {
            "/apis/batch/v1/namespaces/{namespace}/jobs/{name}": {
                "patch": {
                    "operationId": "patchBatchV1NamespacedJob",
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": _JOB_GVK,
                    "parameters": [
                        {"name": name, "in": "query", "schema": {"type": "string"}}
                        for name in ("dryRun", "fieldManager", "fieldValidation", "force")
                    ],
                    "responses": {"200": {"description": "OK"}},
                }
            }
        },
    },
}


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386 JSON merge patch; strategic-merge directives (``$patch``, ``$setElementOrder/...``,
    ``$retainKeys``, ``$deleteFromPrimitiveList/...``) are dropped, and lists are replaced whole,
    which is all a stand-in needs."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class FakeKubeAPI(ThreadingHTTPServer):
    """Stands in for a cluster's API server: Jobs are stored and progress as they are polled.

    A Job is "running" for ``polls_to_finish`` list calls after creation, then succeeds, or
    fails (reason BackoffLimitExceeded, message ``fail_message``) when its task or its name is
    in ``fail_tasks``. ``refuse`` makes every request answer with that HTTP status and
    ``refuse_message``. The messages are whatever a test sets: a cluster's text is untrusted.
    """

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.jobs: dict[tuple[str, str], dict] = {}
        self.polls: dict[tuple[str, str], int] = {}
        self.requests: list[dict] = []
        self.fail_tasks: set[str] = set()
        self.polls_to_finish = 2
        self.refuse: int | None = None
        self.waiting_reason: dict[str, str] = {}
        self.fail_message = "Job has reached the specified backoff limit"
        self.refuse_message = 'jobs.batch is forbidden: User "fake" cannot create resource "jobs"'

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def creates(self) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST"]

    def changes(self) -> list[dict]:
        """Requests that created or changed something (POST, PATCH, PUT, DELETE)."""
        return [r for r in self.requests if r["method"] != "GET"]

    def progress(self, key: tuple[str, str]) -> dict:
        job = self.jobs[key]
        self.polls[key] = polls = self.polls.get(key, 0) + 1
        task = job["metadata"]["labels"].get("act-job/task")
        if polls <= self.polls_to_finish:
            job["status"] = {
                "active": 1,
                "ready": 0 if task in self.waiting_reason else 1,
                "startTime": "2026-11-26T08:00:00Z",
            }
        elif task in self.fail_tasks or key[1] in self.fail_tasks:
            job["status"] = {
                "failed": 4,
                "conditions": [
                    {
                        "type": "FailureTarget",
                        "status": "True",
                        "reason": "BackoffLimitExceeded",
                        "message": self.fail_message,
                    },
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "BackoffLimitExceeded",
                        "message": self.fail_message,
                    },
                ],
            }
        else:
            job["status"] = {
                "succeeded": 1,
                "completionTime": "2026-11-26T09:00:00Z",
                "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2026-11-26T09:00:00Z"}],
            }
        return job


def _status(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
        **({"details": details} if details else {}),
    }


def _matches(labels: dict, selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class _Handler(BaseHTTPRequestHandler):
    server: FakeKubeAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, body: bytes = b"") -> None:
        with self.server.lock:
            self.server.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "authorization": self.headers.get("Authorization"),
                    "body": body.decode(),
                }
            )

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._record(body)
        if self.server.refuse:
            return self._send(
                self.server.refuse,
                _status(self.server.refuse, "Forbidden", self.server.refuse_message),
            )
        match = re.fullmatch(r"/apis/batch/v1/namespaces/([^/]+)/jobs", urlsplit(self.path).path)
        if not match:
            return self._send(404, _status(404, "NotFound", "the server could not find the requested resource"))
        job = json.loads(body)
        namespace, name = match.group(1), job["metadata"]["name"]
        with self.server.lock:
            if (namespace, name) in self.server.jobs:
                return self._send(
                    409,
                    _status(
                        409,
                        "AlreadyExists",
                        f'jobs.batch "{name}" already exists',
                        {"name": name, "group": "batch", "kind": "jobs"},
                    ),
                )
            job["metadata"].update(
                {
                    "namespace": namespace,
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": "1",
                    "creationTimestamp": "2026-11-26T08:00:00Z",
                }
            )
            job["status"] = {}
            self.server.jobs[(namespace, name)] = job
        return self._send(201, job)

    def do_PATCH(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._record(body)
        if self.server.refuse:
            return self._send(self.server.refuse, _status(self.server.refuse, "Forbidden", "forbidden"))
        match = _JOB_PATH.fullmatch(urlsplit(self.path).path)
        if not match:
            return self._send(404, _status(404, "NotFound", "the server could not find the requested resource"))
        key = (match.group(1), match.group(2))
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if kind == "application/apply-patch+yaml":
            patch = yaml.safe_load(body)  # server-side apply: the whole applied object (YAML or JSON)
        elif kind in ("application/strategic-merge-patch+json", "application/merge-patch+json"):
            patch = json.loads(body)
        else:
            return self._send(
                415, _status(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {kind}")
            )
        with self.server.lock:
            job = self.server.jobs.get(key)
            if job is None and kind != "application/apply-patch+yaml":
                return self._send(404, _status(404, "NotFound", f'jobs.batch "{key[1]}" not found'))
            created = job is None
            merged = merge_patch(job or {"metadata": {"name": key[1], "namespace": key[0]}}, patch)
            version = int((job or {}).get("metadata", {}).get("resourceVersion", "0")) + 1
            merged["metadata"].update(
                {
                    "namespace": key[0],
                    "uid": (job or {}).get("metadata", {}).get("uid") or str(uuid.uuid4()),
                    "resourceVersion": str(version),
                    "creationTimestamp": "2026-11-26T08:00:00Z",
                }
            )
            merged.setdefault("status", {})
            self.server.jobs[key] = merged
        return self._send(201 if created else 200, merged)

    def do_GET(self):
        self._record()
        if self.server.refuse:
            return self._send(self.server.refuse, _status(self.server.refuse, "Forbidden", "forbidden"))
        url = urlsplit(self.path)
        selector = parse_qs(url.query).get("labelSelector", [""])[0]
        if url.path in _DISCOVERY:
            return self._send(200, _DISCOVERY[url.path])
        if match := re.fullmatch(r"/apis/batch/v1/namespaces/([^/]+)/jobs/([^/]+)", url.path):
            with self.server.lock:
                key = (match.group(1), match.group(2))
                if key not in self.server.jobs:
                    return self._send(404, _status(404, "NotFound", f'jobs.batch "{key[1]}" not found'))
                return self._send(200, self.server.progress(key))
        if match := re.fullmatch(r"/apis/batch/v1/namespaces/([^/]+)/jobs", url.path):
            with self.server.lock:
                items = [
                    self.server.progress(key)
                    for key, job in self.server.jobs.items()
                    if key[0] == match.group(1) and _matches(job["metadata"]["labels"], selector)
                ]
            return self._send(
                200, {"kind": "JobList", "apiVersion": "batch/v1", "metadata": {"resourceVersion": "1"}, "items": items}
            )
        if match := re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods", url.path):
            pods = []
            with self.server.lock:
                for (namespace, name), job in self.server.jobs.items():
                    task = job["metadata"]["labels"].get("act-job/task")
                    if namespace != match.group(1) or not job.get("status", {}).get("active"):
                        continue
                    labels = {**job["spec"]["template"]["metadata"]["labels"], "batch.kubernetes.io/job-name": name}
                    if not _matches(labels, selector):
                        continue
                    state = (
                        {"waiting": {"reason": "ImagePullBackOff", "message": self.server.waiting_reason[task]}}
                        if task in self.server.waiting_reason
                        else {"running": {"startedAt": "2026-11-26T08:01:00Z"}}
                    )
                    pods.append(
                        {
                            "metadata": {"name": f"{name}-abcde", "namespace": namespace, "labels": labels},
                            "status": {
                                "phase": "Pending" if "waiting" in state else "Running",
                                "containerStatuses": [
                                    {
                                        "name": "job",
                                        "image": job["spec"]["template"]["spec"]["containers"][0]["image"],
                                        "imageID": "",
                                        "ready": "running" in state,
                                        "restartCount": 0,
                                        "state": state,
                                    },
                                ],
                            },
                        }
                    )
            return self._send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": pods})
        return self._send(404, _status(404, "NotFound", "the server could not find the requested resource"))


@contextlib.contextmanager
def running_standin():
    """A ``FakeKubeAPI`` serving on 127.0.0.1 for the duration of the block."""
    server = FakeKubeAPI()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def write_kubeconfig(tmp_path: Path, server_url: str) -> Path:
    """A kubeconfig in ``tmp_path`` whose one context talks to ``server_url`` with a fake token."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": server_url}}],
                "users": [{"name": "fake", "user": {"token": "fake-token-for-tests"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                "current-context": "fake",
            }
        )
    )
    return path
