"""Kubernetes manifests of the compression job, rendered as plain dicts.

``render_jobs(options, tasks)`` returns one ``batch/v1`` Job per (task, strategy), ready for
``yaml.safe_dump_all`` or the Kubernetes Python client. Everything here is a pure
function of its arguments: no I/O, no clock, no environment, no paddle. The launcher
(``scripts/launch``) parses flags into ``JobOptions`` and writes or applies the result;
``k8s/job.template.yaml`` is the same Job written out by hand for templating users, and a
test keeps the two identical.

What every Job gets:

* with ``device="gpu"`` (the default), pinned to one T4: required node affinity on
  ``nvidia.com/gpu.product``, one ``nvidia.com/gpu``, a toleration of the ``nvidia.com/gpu``
  NoSchedule taint, ``Job.device=gpu``; with ``device="cpu"`` none of those (any node with the
  CPU and memory asked), ``Job.device=cpu``, and CPU and memory requests sized from a measured
  run (``CPU_NODE_CPU``, ``CPU_NODE_MEMORY``: ``cpu_resources_from_footprint``); the same rest;
* the exit-code contract of ``job.errors``: a ``podFailurePolicy`` fails the Job at once on
  ``NON_RETRYABLE`` exit codes (bad input, accuracy gate), ignores disruptions (preemption,
  eviction, node drain: they do not count against ``backoffLimit``) and retries the rest;
* the restricted Pod Security profile: non-root UID/GID ``RUN_AS_ID`` (the image's user),
  no privilege escalation, no capabilities, RuntimeDefault seccomp, read-only root
  filesystem with emptyDirs for ``/work`` (scratch), ``/cache``, ``/tmp`` and a memory
  ``/dev/shm``; no service-account token;
* S3 credentials only by reference (``envFrom`` a Secret), never a value;
* with ``data_root``, its data as ``Global.dataset=local`` files ``<data root>/<task>/{train,dev,test}.json``
  (no hub download: air-gapped clusters);
* a deterministic name from (run id, task, strategy), so applying a run twice creates
  nothing new.

Every name and value is checked with full-string patterns (``re.fullmatch``: a ``$`` would
accept a final newline) and refused when it holds any control character (``job.terminal``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from job.config import CLUE_TASKS, STRATEGIES
from job.errors import NON_RETRYABLE, InputError
from job.terminal import escape, has_control

__all__ = [
    "CONTAINER_NAME",
    "CPU_NODE_CPU",
    "CPU_NODE_MEMORY",
    "CPU_NODE_SHM",
    "DEFAULT_STRATEGY",
    "DEFAULT_TASKS",
    "DEVICES",
    "LAUNCH_TASKS",
    "RUN_AS_ID",
    "JobOptions",
    "config_path",
    "cpu_resources_from_footprint",
    "data_args",
    "derive_run_id",
    "is_digest",
    "job_name",
    "label_value",
    "pod_failure_policy",
    "render_job",
    "render_jobs",
    "strategies_for",
    "strategy_for",
]

# Tasks the launcher knows a config for; the order is the reference example's.
LAUNCH_TASKS: tuple[str, ...] = (*CLUE_TASKS, "uie")
DEFAULT_TASKS: tuple[str, ...] = LAUNCH_TASKS
# The reference example compresses CLUE classifiers with pruning + distillation + PTQ;
# UIE uses quantization-aware training with distillation.
DEFAULT_STRATEGY: dict[str, str] = {**dict.fromkeys(CLUE_TASKS, "prune_ptq"), "uie": "qat_dis"}

CONTAINER_NAME = "job"
# UID and GID of the image's user (docker/Dockerfile: USER 10001:10001); a test checks both agree.
RUN_AS_ID = 10001
APP_NAME = "act-job"
LABEL_PREFIX = "act-job/"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
CACHE_DIR = "/cache"
WORK_DIR = "/work"
TMP_SIZE = "2Gi"

DEVICES = ("gpu", "cpu")
# Requests and limits of a GPU Job (a T4 node's share) and of a CPU Job. The CPU Job's come
# from the committed footprint record FOOTPRINT_RECORD (lab/job_footprint.py: the demo job,
# teacher uie-pico, one strategy, on CPU) by cpu_resources_from_footprint; a test holds them
# equal. UIE-base and ERNIE runs need more: --cpu and --memory.
GPU_NODE_CPU, GPU_NODE_MEMORY, GPU_NODE_SHM = "8", "48Gi", "8Gi"
FOOTPRINT_RECORD = "records/job-footprint-2026-12-06-amd-epyc.json"
CPU_NODE_CPU, CPU_NODE_MEMORY = "2", "3328Mi"
# Not measured: the CPU job's data loaders run in the job's process; the memory limit bounds /dev/shm anyway.
CPU_NODE_SHM = "1Gi"
_MEMORY_HEADROOM = 1.5
_MEMORY_STEP_MI = 256

# Patterns of whole values: always used with fullmatch (``$`` would also match before a final "\n").
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
# A subset of what the job accepts (Job.run_id) that is also a valid label value as is.
_RUN_ID = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
_QUANTITY = re.compile(r"([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][0-9]+)?")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}\Z")
_IMAGE = re.compile(
    r"[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?(@sha256:[0-9a-f]{64})?"
)
_OVERRIDE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+=.*", re.DOTALL)
# The files of one task under --data-root, and the config keys they are given as.
DATA_FILES: dict[str, str] = {"train_data": "train.json", "dev_data": "dev.json", "test_data": "test.json"}
# Keys the launcher sets itself; use the flags instead.
_RESERVED = {
    "Job.strategy": "--strategies",
    "Job.strategies": "--strategies (one Job per strategy)",
    "Job.output": "--output",
    "Job.run_id": "--run-id",
    "Job.device": "--device",
}


@dataclass(frozen=True)
class JobOptions:
    """Everything a Job depends on besides its task. Validated on construction.

    Errors are ``InputError`` (exit code 2) naming the launcher flag concerned.
    """

    image: str
    output: str
    run_id: str
    strategies: tuple[str, ...] = ()  # one Job per task and strategy; empty: DEFAULT_STRATEGY per task
    overrides: tuple[str, ...] = ()  # extra Section.key=value for every Job
    model_root: str | None = None  # Global.model_dir=<model_root>/<task>
    data_root: str | None = None  # Global.dataset=local, <data_root>/<task>/{train,dev,test}.json
    namespace: str = "act-jobs"
    device: str = "gpu"  # gpu: one T4 per Job; cpu: CPU nodes, the CPU image
    gpu_products: tuple[str, ...] = ("Tesla-T4",)  # gpu only
    runtime_class: str | None = None
    queue: str | None = None  # Kueue LocalQueue; the Job is created suspended for Kueue to admit
    secret_name: str = "act-job-s3"
    image_pull_secret: str | None = None
    backoff_limit: int = 3
    active_deadline_seconds: int = 6 * 3600
    ttl_seconds_after_finished: int = 7 * 24 * 3600
    cpu: str | None = None  # None: the device's default (GPU_NODE_CPU, CPU_NODE_CPU)
    memory: str | None = None  # None: the device's default (GPU_NODE_MEMORY, CPU_NODE_MEMORY)
    shm_size: str | None = None  # None: the device's default (GPU_NODE_SHM, CPU_NODE_SHM)
    scratch_size: str = "50Gi"
    cache_size: str = "20Gi"

    def __post_init__(self) -> None:
        # Normalise sequences so that lists given by a caller still hash and compare.
        object.__setattr__(self, "overrides", tuple(self.overrides))
        object.__setattr__(self, "gpu_products", tuple(self.gpu_products))
        given = self.strategies
        object.__setattr__(self, "strategies", (given,) if isinstance(given, str) else tuple(given))
        _check(self.device in DEVICES, "--device", self.device, f"choose from {', '.join(DEVICES)}")
        gpu = self.device == "gpu"
        for field, default in (
            ("cpu", GPU_NODE_CPU if gpu else CPU_NODE_CPU),
            ("memory", GPU_NODE_MEMORY if gpu else CPU_NODE_MEMORY),
            ("shm_size", GPU_NODE_SHM if gpu else CPU_NODE_SHM),
        ):
            if getattr(self, field) is None:
                object.__setattr__(self, field, default)
        # Before any pattern: a control character is refused in every value, whatever its flag.
        for flag, value in self._texts():
            _check(
                isinstance(value, str) and not has_control(value),
                flag,
                value,
                "holds a control character (newline, escape, bidirectional override, ...)",
            )
        _check(
            bool(_IMAGE.fullmatch(self.image)),
            "--image",
            self.image,
            "expected REPOSITORY:TAG or REPOSITORY@sha256:DIGEST (lower-case repository)",
        )
        last = self.image.split("@")[0].rsplit("/", 1)[-1]
        _check(
            ":" in last or is_digest(self.image),
            "--image",
            self.image,
            "pin a tag or a digest; an untagged image means :latest",
        )
        _check(
            not self.image.split("@")[0].endswith(":latest"),
            "--image",
            self.image,
            "':latest' is not reproducible; pin a version tag or a digest",
        )
        bucket = self.output[len("s3://") :].split("/", 1)[0] if self.output.startswith("s3://") else ""
        _check(
            bool(bucket) and not any(c.isspace() for c in self.output),
            "--output",
            self.output,
            "expected s3://bucket/prefix (pods keep nothing locally)",
        )
        _check(
            bool(_RUN_ID.fullmatch(self.run_id)),
            "--run-id",
            self.run_id,
            "1-63 letters, digits, '.', '_' or '-', starting and ending with a letter or digit",
        )
        for strategy in self.strategies:
            _check(strategy in STRATEGIES, "--strategies", strategy, f"choose from {', '.join(STRATEGIES)}")
            _check(self.strategies.count(strategy) == 1, "--strategies", strategy, "listed twice")
        data_keys = {f"Global.{key}" for key in ("dataset", *DATA_FILES)}
        for item in self.overrides:
            _check(
                bool(_OVERRIDE.fullmatch(item)), "--set", item, "expected Section.key=value, e.g. TrainConfig.epochs=1"
            )
            key = item.partition("=")[0]
            _check(key not in _RESERVED, "--set", item, f"{key} is set by the launcher; use {_RESERVED.get(key)}")
            _check(
                not (self.model_root and key == "Global.model_dir"),
                "--set",
                item,
                "Global.model_dir is set per task by --model-root; give one or the other",
            )
            _check(
                not (self.data_root and key in data_keys),
                "--set",
                item,
                f"{key} is set per task by --data-root; give one or the other",
            )
        for flag, root in (("--model-root", self.model_root), ("--data-root", self.data_root)):
            if root is not None:
                _check(
                    bool(root.rstrip("/")) and not any(c.isspace() for c in root),
                    flag,
                    root,
                    "expected a URI such as s3://bucket/prefix",
                )
        _check(
            bool(_DNS_LABEL.fullmatch(self.namespace)) and len(self.namespace) <= 63,
            "--namespace",
            self.namespace,
            "expected an RFC 1123 label",
        )
        _check(bool(self.gpu_products), "--gpu-product", "", "give at least one GPU product")
        for product in self.gpu_products:
            _check(
                bool(_LABEL_VALUE.fullmatch(product)) and 0 < len(product) <= 63,
                "--gpu-product",
                product,
                "expected a label value such as Tesla-T4",
            )
        for flag, value in (
            ("--runtime-class", self.runtime_class),
            ("--secret", self.secret_name),
            ("--image-pull-secret", self.image_pull_secret),
        ):
            if value is not None:
                _check(
                    bool(_DNS_SUBDOMAIN.fullmatch(value)) and len(value) <= 253,
                    flag,
                    value,
                    "expected an RFC 1123 name",
                )
        if self.queue is not None:
            _check(
                bool(_DNS_SUBDOMAIN.fullmatch(self.queue)) and len(self.queue) <= 63,
                "--queue",
                self.queue,
                "expected the name of a Kueue LocalQueue",
            )
        _check(self.backoff_limit >= 0, "--backoff-limit", self.backoff_limit, "must be >= 0")
        _check(self.active_deadline_seconds > 0, "--deadline", self.active_deadline_seconds, "must be > 0 seconds")
        _check(self.ttl_seconds_after_finished >= 0, "--ttl", self.ttl_seconds_after_finished, "must be >= 0 seconds")
        for flag, value in (
            ("--cpu", self.cpu),
            ("--memory", self.memory),
            ("--shm-size", self.shm_size),
            ("--scratch-size", self.scratch_size),
            ("--cache-size", self.cache_size),
        ):
            _check(
                _is_positive_quantity(value),
                flag,
                value,
                "expected a positive Kubernetes quantity such as 8, 500m, 48Gi",
            )

    def _texts(self) -> list[tuple[str, object]]:
        """(flag, value) of every text option, tuples item by item."""
        single = {
            "--image": self.image,
            "--output": self.output,
            "--run-id": self.run_id,
            "--model-root": self.model_root,
            "--data-root": self.data_root,
            "--namespace": self.namespace,
            "--device": self.device,
            "--runtime-class": self.runtime_class,
            "--queue": self.queue,
            "--secret": self.secret_name,
            "--image-pull-secret": self.image_pull_secret,
            "--cpu": self.cpu,
            "--memory": self.memory,
            "--shm-size": self.shm_size,
            "--scratch-size": self.scratch_size,
            "--cache-size": self.cache_size,
        }
        items = [(flag, value) for flag, value in single.items() if value is not None]
        items += [("--strategies", value) for value in self.strategies]
        items += [("--set", value) for value in self.overrides]
        items += [("--gpu-product", value) for value in self.gpu_products]
        return items


def cpu_resources_from_footprint(record: dict) -> tuple[str, str]:
    """(cpu, memory) of a CPU Job from a footprint record of ``lab/job_footprint.py``.

    cpu (request and limit) = the compute threads the measured run was given (``threads``);
    memory (request and limit) = its peak resident memory (``peak_rss_bytes``) x 1.5, rounded
    up to a multiple of 256 Mi. Measured on the demo teacher: bigger models need more.
    """
    threads, peak = record["threads"], record["peak_rss_bytes"]
    if not (isinstance(threads, int) and threads >= 1 and isinstance(peak, int) and peak > 0):
        raise ValueError(f"not a footprint record: threads {threads!r}, peak_rss_bytes {peak!r}")
    step = _MEMORY_STEP_MI * 2**20
    steps = -(-int(peak * _MEMORY_HEADROOM) // step)  # ceiling
    return str(threads), f"{steps * _MEMORY_STEP_MI}Mi"


def _is_positive_quantity(value: str) -> bool:
    match = _QUANTITY.fullmatch(value)
    return bool(match) and any(c in "123456789" for c in match.group(1))


def _check(condition: bool, flag: str, value: object, message: str) -> None:
    if not condition:
        shown = f" {escape(repr(value), 120)}" if value != "" else ""
        raise InputError(f"{flag}{shown}: {message}")


def is_digest(image: str) -> bool:
    """True when the image reference pins a content digest (``...@sha256:<64 hex>``)."""
    return bool(_DIGEST.search(image))


def config_path(task: str) -> str:
    """The task's config file inside the image."""
    if task == "uie":
        return "/app/configs/uie_base.yaml"
    if task in CLUE_TASKS:
        return f"/app/configs/clue/{task}.yaml"
    raise InputError(f"--tasks {escape(repr(task), 120)}: unknown task; choose from {', '.join(LAUNCH_TASKS)}")


def strategy_for(task: str, override: str | None = None) -> str:
    """The strategy a task runs: the override when given, else the task's default."""
    config_path(task)  # validates the task
    return override or DEFAULT_STRATEGY[task]


def strategies_for(task: str, strategies: tuple[str, ...] | list[str] = ()) -> tuple[str, ...]:
    """The strategies a task runs, one Job each: ``strategies`` when given, else the task's default."""
    config_path(task)  # validates the task
    return tuple(strategies) or (DEFAULT_STRATEGY[task],)


def data_args(data_root: str, task: str) -> list[str]:
    """The config keys giving ``task`` its files under ``data_root`` (``Global.dataset=local``)."""
    base = f"{data_root.rstrip('/')}/{task}"
    return ["Global.dataset=local", *(f"Global.{key}={base}/{name}" for key, name in DATA_FILES.items())]


def label_value(text: str) -> str:
    """``text`` as a valid label value: allowed characters only, <= 63, alphanumeric ends."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63]
    return cleaned.strip("._-")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def job_name(run_id: str, task: str, strategy: str) -> str:
    """Deterministic Job name: ``act-<task>-<strategy>-<run id>``, an RFC 1123 label.

    When the run id is not already lower-case ``[a-z0-9-]`` or the name would pass 63
    characters, the name is shortened and an 8-hex digest of the exact triple is appended,
    so distinct runs never share a name.
    """
    base = f"act-{_slug(task)}-{_slug(strategy)}-{_slug(run_id)}".strip("-")
    if _slug(run_id) == run_id and len(base) <= 63:
        return base
    digest = hashlib.sha256(f"{run_id}\0{task}\0{strategy}".encode()).hexdigest()[:8]
    return f"{base[:54].rstrip('-')}-{digest}"


def derive_run_id(
    image: str,
    strategies: tuple[str, ...] | list[str],
    overrides: tuple[str, ...] | list[str],
    model_root: str | None,
    data_root: str | None = None,
    device: str = "gpu",
) -> str:
    """A run id from the inputs that decide results: image, strategies, overrides, model and data roots, device.

    The same launch gives the same id (applying it again creates nothing new, and the job
    skips tasks already complete); any change of those inputs gives a new one. Tasks are
    left out on purpose: adding a task later joins the same run folder. A single strategy,
    no data root and the GPU give the ids that launches before ``--strategies``, ``--data-root``
    and ``--device`` got.
    """
    parts = [image, ",".join(strategies) or "default", *overrides, "\0", model_root or ""]
    if data_root:
        parts += ["\0data", data_root]
    if device != "gpu":
        parts += ["\0device", device]
    return "run-" + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:10]


def pod_failure_policy() -> dict:
    """The Job's ``podFailurePolicy``, built from ``job.errors.NON_RETRYABLE``.

    Rule 1: the job container exiting with a non-retryable code (bad input, accuracy
    gate) fails the whole Job at once. Rule 2: pods killed by a disruption (preemption,
    eviction, drain) are replaced without counting against ``backoffLimit``. Any other
    failure (internal error, storage trouble) is retried up to ``backoffLimit``.
    """
    return {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER_NAME,
                    "operator": "In",
                    "values": sorted(int(code) for code in NON_RETRYABLE),
                },
            },
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
        ]
    }


def _checkov_skips(options: JobOptions) -> dict[str, str]:
    """Checks of checkov that do not fit a batch Job (GPU or CPU), each with its reason."""
    reasons = [
        "CKV_K8S_15=IfNotPresent on purpose: the image is several GB and is pinned by version tag or digest",
        "CKV_K8S_35=boto3 reads the standard AWS_* variables; the Secret is referenced with envFrom, never inlined",
        (
            "CKV2_K8S_6=the NetworkPolicy act-job in k8s/namespace.yaml selects these pods (no ingress); "
            "apply it once per namespace"
        ),
    ]
    if not is_digest(options.image):
        reasons.append("CKV_K8S_43=image given by tag; pass --image REPOSITORY@sha256:DIGEST to pin the content")
    return {f"checkov.io/skip{i}": reason for i, reason in enumerate(reasons, start=1)}


def _args(options: JobOptions, task: str, strategy: str) -> list[str]:
    args = [
        "run",
        "--config",
        config_path(task),
        f"Job.strategy={strategy}",
        f"Job.output={options.output}",
        f"Job.run_id={options.run_id}",
        # gpu: each Job holds a T4, the gate and the benchmark serve through TensorRT there;
        # cpu: oneDNN, and the CPU image's OpenVINO runtimes
        f"Job.device={options.device}",
    ]
    if options.model_root:
        args.append(f"Global.model_dir={options.model_root.rstrip('/')}/{task}")
    if options.data_root:
        args += data_args(options.data_root, task)
    return args + list(options.overrides)


def render_job(options: JobOptions, task: str, strategy: str | None = None) -> dict:
    """One ``batch/v1`` Job compressing ``task`` with ``strategy`` on one T4 GPU, or on CPU
    (``options.device``).

    ``strategy`` None: the first of ``strategies_for(task, options.strategies)``.
    """
    allowed = strategies_for(task, options.strategies)
    strategy = strategy or allowed[0]
    if strategy not in allowed:
        raise InputError(f"--strategies: {escape(repr(strategy), 60)} is not among {', '.join(allowed)}")
    name = job_name(options.run_id, task, strategy)
    labels = {
        "app.kubernetes.io/name": APP_NAME,
        "app.kubernetes.io/component": "compression",
        f"{LABEL_PREFIX}run-id": label_value(options.run_id),
        f"{LABEL_PREFIX}task": label_value(task),
        f"{LABEL_PREFIX}strategy": label_value(strategy),
    }
    job_labels = dict(labels)
    if options.queue:
        job_labels[QUEUE_LABEL] = options.queue
    annotations = {f"{LABEL_PREFIX}run-id": options.run_id, **_checkov_skips(options)}

    user = {"runAsNonRoot": True, "runAsUser": RUN_AS_ID, "runAsGroup": RUN_AS_ID}
    gpu = options.device == "gpu"
    gpu_request = {"nvidia.com/gpu": "1"} if gpu else {}
    container = {
        "name": CONTAINER_NAME,
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "args": _args(options, task, strategy),
        "workingDir": WORK_DIR,
        "env": [
            {"name": "ACT_JOB_CACHE", "value": CACHE_DIR},
            {"name": "TMPDIR", "value": WORK_DIR},
        ],
        "envFrom": [{"secretRef": {"name": options.secret_name}}],
        "resources": {
            "requests": {"cpu": options.cpu, "memory": options.memory, **gpu_request},
            "limits": {"cpu": options.cpu, "memory": options.memory, **gpu_request},
        },
        "securityContext": {
            **user,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "work", "mountPath": WORK_DIR},
            {"name": "cache", "mountPath": CACHE_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec: dict = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {**user, "fsGroup": RUN_AS_ID, "seccompProfile": {"type": "RuntimeDefault"}},
    }
    if gpu:
        pod_spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "nvidia.com/gpu.product",
                                    "operator": "In",
                                    "values": list(options.gpu_products),
                                }
                            ]
                        }
                    ]
                }
            }
        }
        pod_spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    pod_spec["containers"] = [container]
    pod_spec["volumes"] = [
        {"name": "work", "emptyDir": {"sizeLimit": options.scratch_size}},
        {"name": "cache", "emptyDir": {"sizeLimit": options.cache_size}},
        {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": options.shm_size}},
    ]
    if options.runtime_class:
        pod_spec["runtimeClassName"] = options.runtime_class
    if options.image_pull_secret:
        pod_spec["imagePullSecrets"] = [{"name": options.image_pull_secret}]

    spec: dict = {
        "backoffLimit": options.backoff_limit,
        "activeDeadlineSeconds": options.active_deadline_seconds,
        "ttlSecondsAfterFinished": options.ttl_seconds_after_finished,
        "podReplacementPolicy": "Failed",
        "podFailurePolicy": pod_failure_policy(),
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if options.queue:
        # Kueue admits the Job by unsuspending it once its LocalQueue has quota.
        spec["suspend"] = True
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": options.namespace, "labels": job_labels, "annotations": annotations},
        "spec": spec,
    }


def render_jobs(options: JobOptions, tasks: tuple[str, ...] | list[str] = DEFAULT_TASKS) -> list[dict]:
    """One Job per (task, strategy), tasks in the order given, each task's strategies in
    order; duplicate tasks are an input error, and so are two Jobs with one name."""
    if not tasks:
        raise InputError("--tasks: give at least one task")
    seen: set[str] = set()
    for task in tasks:
        if task in seen:
            raise InputError(f"--tasks {escape(repr(task), 120)}: listed twice")
        seen.add(task)
    jobs = [
        render_job(options, task, strategy) for task in tasks for strategy in strategies_for(task, options.strategies)
    ]
    names = [job["metadata"]["name"] for job in jobs]
    if len(set(names)) != len(names):  # job_name's digest makes this unreachable; a Job must never replace another
        raise InputError(f"--run-id {options.run_id!r}: two Jobs of this run would share a name")
    return jobs
