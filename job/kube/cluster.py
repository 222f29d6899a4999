"""The cluster side of ``scripts/launch``: create the rendered Jobs through the Kubernetes API
(with the user's kubeconfig) and watch them to the end. The kubernetes client is imported
only here, inside ``Cluster``: rendering and checking need none of it.

Every text the cluster sends that reaches the terminal (API error bodies and reasons, Job
condition reasons and messages, pod waiting messages) goes through ``job.terminal.escape``
on one line and bounded: a message may carry escape sequences or newlines."""

from __future__ import annotations

import dataclasses
import time
import typing
from enum import IntEnum

import yaml

from job import tables
from job.errors import ExitCode, InputError
from job.kube import render
from job.terminal import escape

__all__ = ["Cluster", "ClusterError", "Exit", "Row", "apply_jobs", "format_table", "watch"]

_REQUEST_TIMEOUT = (10, 60)  # seconds: connect, read


class Exit(IntEnum):
    """The launcher's exit codes (``ExitCode`` values where the meaning is the same)."""

    OK = ExitCode.OK
    JOB_FAILED = 1
    INPUT = ExitCode.INPUT
    CLUSTER = 4


class ClusterError(Exception):
    """The cluster API is unreachable or refused a request."""


class Cluster:
    def __init__(self, kubeconfig: str | None, context: str | None):
        try:
            from kubernetes import client, config
            from kubernetes.config.config_exception import ConfigException
        except ImportError:
            raise InputError("the kubernetes Python client is missing: pip install -r requirements/light.txt") from None
        from urllib3.util.retry import Retry

        configuration = client.Configuration()
        try:
            config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=configuration, persist_config=False
            )
        except ConfigException as exc:
            raise InputError(f"kubeconfig {kubeconfig or '($KUBECONFIG or ~/.kube/config)'}: {exc}") from None
        except (OSError, ValueError, TypeError, yaml.YAMLError) as exc:
            raise InputError(f"kubeconfig {kubeconfig or '(default)'}: unreadable ({exc.__class__.__name__})") from None
        # Retry connecting only: a retried POST could create a Job twice.
        configuration.retries = Retry(total=2, connect=2, read=0, status=0, redirect=0, backoff_factor=0.5)
        self.host = configuration.host
        api = client.ApiClient(configuration)
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)

    def error(self, exc: Exception, what: str) -> Exception:
        """A one-line InputError or ClusterError for a failed request."""
        from kubernetes.client.exceptions import ApiException

        if isinstance(exc, ApiException):
            message = _status_message(exc)
            if exc.status in (400, 422):
                return InputError(f"{what}: the API server rejected it as invalid ({exc.status}): {message}")
            if exc.status == 404:
                return ClusterError(
                    f"{what}: not found ({message}); is the namespace created? kubectl apply -f k8s/namespace.yaml"
                )
            return ClusterError(
                f"{what}: the API server at {_short(str(self.host))} refused "
                f"({_short(str(exc.status), 10)} {_short(str(exc.reason), 60)}): {message}"
            )
        reason = getattr(exc, "reason", None) or exc
        return ClusterError(f"{what}: cluster API unreachable at {_short(str(self.host))}: {_short(str(reason))}")

    def call(self, what: str, fn: typing.Callable, *a, tolerate: tuple[int, ...] = (), **kw):
        """``fn(*a, **kw)`` with the request timeout; a failure as ``self.error``, except an
        HTTP status in ``tolerate``, which returns None."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn(*a, _request_timeout=_REQUEST_TIMEOUT, **kw)
        except ApiException as exc:
            if exc.status in tolerate:
                return None
            raise self.error(exc, what) from None
        except (HTTPError, OSError) as exc:
            raise self.error(exc, what) from None


def _status_message(exc) -> str:
    import json

    try:
        body = json.loads(exc.body or "{}")
        return _short(str(body.get("message") or exc.reason))
    except (ValueError, AttributeError, TypeError, RecursionError):
        return _short(str(exc.reason))


def _short(text: str, limit: int = 200) -> str:
    """Untrusted ``text`` on one line (runs of white space as one space), escaped, at most ``limit``."""
    return escape(" ".join(str(text).split()), limit)


def apply_jobs(cluster: Cluster, jobs: list[dict], namespace: str) -> tuple[int, int]:
    """Create each Job; an existing one (409) is reported and left as is."""
    created = existed = 0
    for job in jobs:
        name = job["metadata"]["name"]
        task = job["metadata"]["labels"]["act-job/task"]
        what = f"create Job {namespace}/{name}"
        try:
            # Strict: the API server rejects unknown or duplicate fields instead of dropping them.
            result = cluster.call(
                what, cluster.batch.create_namespaced_job, namespace, job, field_validation="Strict", tolerate=(409,)
            )
        except ValueError as exc:  # the client's own model validation (pydantic), before any request
            first = (str(exc).splitlines() or [""])[0]
            raise InputError(f"{what}: the Kubernetes client rejected it: {_short(first)}") from None
        if result is None:
            existed += 1
            print(f"exists, left as is   {name}  ({task})", flush=True)
        else:
            created += 1
            print(f"created              {name}  ({task})", flush=True)
    print(f"launch: {created} created, {existed} already existed, in namespace {namespace}", flush=True)
    return created, existed


@dataclasses.dataclass
class Row:
    task: str
    name: str
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    state: str = "missing"
    reason: str = ""
    strategy: str = ""

    @property
    def done(self) -> bool:
        return self.state in ("succeeded", "failed", "missing")


def _row(task: str, strategy: str, name: str, job) -> Row:
    """The row of one Job; a pending or running one gets its pod's reason later (``watch``)."""
    row = Row(task, name, strategy=strategy)
    if job is None:
        row.reason = "not found (never created, or deleted after its TTL)"
        return row
    status = job.status
    if status is not None:
        row.active, row.succeeded, row.failed = status.active or 0, status.succeeded or 0, status.failed or 0
    conditions = {c.type: c for c in (status.conditions or [])} if status else {}

    def true(kind: str):
        cond = conditions.get(kind)
        return cond if cond is not None and cond.status == "True" else None

    if (cond := true("Complete")) is not None:
        row.state = "succeeded"
    elif (cond := true("Failed")) is not None:
        row.state = "failed"
        row.reason = _short(f"{cond.reason or ''}: {cond.message or ''}".strip(": "), 120)
    elif (cond := true("Suspended")) is not None or (job.spec is not None and job.spec.suspend):
        row.state = "suspended"
        row.reason = "waiting for admission (Kueue)" if cond is None else _short(cond.reason or "", 120)
    else:
        row.state = "running" if row.active else "pending"
    return row


def _pod_reasons(cluster: Cluster, namespace: str, selector: str) -> dict[str, str]:
    """Job name -> why its pod is stuck (image pull, missing Secret, unschedulable), if known."""
    try:
        pods = cluster.call(
            f"list Pods in {namespace}", cluster.core.list_namespaced_pod, namespace, label_selector=selector
        )
    except (ClusterError, InputError):
        return {}  # e.g. no permission to list pods: the table just shows less
    reasons: dict[str, str] = {}
    for pod in pods.items:
        labels = pod.metadata.labels or {}
        job = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
        if not job or not pod.status:
            continue
        for cs in pod.status.container_statuses or []:
            waiting = cs.state.waiting if cs.state else None
            if waiting and waiting.reason not in (None, "ContainerCreating", "PodInitializing"):
                reasons[job] = _short(f"{waiting.reason}: {waiting.message or ''}".strip(": "), 120)
        for cond in pod.status.conditions or []:
            if cond.type == "PodScheduled" and cond.status == "False" and job not in reasons:
                reasons[job] = _short(f"{cond.reason or 'Unschedulable'}: {cond.message or ''}".strip(": "), 120)
    return reasons


def format_table(rows: list[Row]) -> str:
    header = ("TASK", "STRATEGY", "JOB", "ACTIVE", "SUCCEEDED", "FAILED", "STATE", "REASON")
    cells = [header] + [
        (r.task, r.strategy, r.name, str(r.active), str(r.succeeded), str(r.failed), r.state, r.reason) for r in rows
    ]
    return "\n".join(tables.text(cells))


def watch(cluster: Cluster, jobs: list[dict], namespace: str, run_id: str, interval: float) -> int:
    """Poll until every Job has finished; 0 if all succeeded, 1 otherwise. Returns only then:
    a cluster that stays unreachable raises ``ClusterError`` instead."""
    expected = [
        (j["metadata"]["labels"]["act-job/task"], j["metadata"]["labels"]["act-job/strategy"], j["metadata"]["name"])
        for j in jobs
    ]
    selector = f"app.kubernetes.io/name={render.APP_NAME},act-job/run-id={render.label_value(run_id)}"
    shown, polls, errors = None, 0, 0
    while True:
        try:
            listed = cluster.call(
                f"list Jobs in {namespace}", cluster.batch.list_namespaced_job, namespace, label_selector=selector
            )
            errors = 0
        except ClusterError:
            errors += 1
            if errors >= 3:
                raise
            time.sleep(interval)
            continue
        by_name = {item.metadata.name: item for item in listed.items}
        if polls == 0 and not any(name in by_name for _, _, name in expected):
            raise InputError(
                f"no Jobs of run {run_id} in namespace {namespace}; were they applied (--apply) with the same flags?"
            )
        rows = [_row(task, strategy, name, by_name.get(name)) for task, strategy, name in expected]
        waiting = [r for r in rows if r.state in ("pending", "running")]
        if waiting:  # why their pods are stuck, if known
            reasons = _pod_reasons(cluster, namespace, selector)
            for r in waiting:
                r.reason = reasons.get(r.name, "")
        table = format_table(rows)
        if table != shown or polls % 10 == 0:
            print(f"[{time.strftime('%H:%M:%S')}] run {run_id}, namespace {namespace}\n{table}\n", flush=True)
            shown = table
        if all(r.done for r in rows):
            break
        polls += 1
        time.sleep(interval)
    bad = [r for r in rows if r.state != "succeeded"]
    if bad:
        print(f"launch: {len(bad)} of {len(rows)} Job(s) did not succeed: {', '.join(r.name for r in bad)}", flush=True)
        return int(Exit.JOB_FAILED)
    print(f"launch: all {len(rows)} Job(s) succeeded", flush=True)
    return int(Exit.OK)
