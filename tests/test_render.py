"""Rendered Kubernetes Jobs (job/kube/render.py) and the static manifests under k8s/.

Every manifest is validated offline against the official schemas with kubernetes-validate in
strict mode (unknown fields are errors), for Kubernetes 1.29 and for the newest version the
installed package knows; deliberately broken fixtures must fail. checkov runs once per
session over all rendered Jobs.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import importlib.resources
import json
import re
import string
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from job.config import CLUE_TASKS, STRATEGIES
from job.errors import NON_RETRYABLE, ExitCode, InputError
from job.kube import render

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "k8s"
TOOLS_BIN = ROOT / ".venv-tools" / "bin"

IMAGE = "registry.example.com/ml/act-job:0.1.0"
CPU_IMAGE = "registry.example.com/ml/act-job:0.1.0-cpu"
DIGEST_IMAGE = "registry.example.com/ml/act-job@sha256:" + "0123456789abcdef" * 4

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


def _newest_schema_version() -> str:
    """The newest Kubernetes minor version with strict schemas in the installed package."""
    root = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    found = [m.group(1) for p in root.iterdir() if (m := re.fullmatch(r"v(\d+\.\d+)\.\d+-local-strict", p.name))]
    assert found, f"no strict schemas found in {root}"
    return max(found, key=lambda v: tuple(int(x) for x in v.split(".")))


VERSIONS = ("1.29", _newest_schema_version())


def _options(**changes) -> render.JobOptions:
    base = {"image": IMAGE, "output": "s3://ml-results/act", "run_id": "exp1"}
    return render.JobOptions(**{**base, **changes})


def _variant() -> render.JobOptions:
    return _options(
        image=DIGEST_IMAGE,
        run_id="Exp_2026.11",
        queue="t4",
        runtime_class="nvidia",
        gpu_products=("Tesla-T4", "Tesla-T4-SHARED"),
        image_pull_secret="registry-cred",
        model_root="s3://ml-models/finetuned/",
        overrides=("TrainConfig.epochs=3", "Job.gate_tolerance=0.5"),
        strategies=("ptq",),
    )


DEFAULT_JOBS = render.render_jobs(_options())
VARIANT_JOBS = render.render_jobs(_variant(), ["afqmc", "uie"])
FANOUT = ("qat_dis", "ptq_hpo", "prune_ptq")
# The issue's check: the 7 CLUE tasks x 3 strategies, with models and data from object storage.
FANOUT_JOBS = render.render_jobs(
    _options(strategies=FANOUT, model_root="s3://ml-models/ernie", data_root="s3://ml-data/clue/"), CLUE_TASKS
)
# The same fan-out on CPU nodes (--device cpu), and the default Jobs on CPU with every other option.
CPU_FANOUT_JOBS = render.render_jobs(
    _options(
        image=CPU_IMAGE,
        device="cpu",
        run_id="exp1-cpu",
        strategies=FANOUT,
        model_root="s3://ml-models/ernie",
        data_root="s3://ml-data/clue/",
    ),
    CLUE_TASKS,
)
CPU_VARIANT_JOBS = render.render_jobs(
    _options(
        image=DIGEST_IMAGE,
        device="cpu",
        run_id="Exp_2026.11-cpu",
        queue="cpu",
        runtime_class="kata",
        image_pull_secret="registry-cred",
        overrides=("TrainConfig.epochs=3",),
        cpu="8",
        memory="16Gi",
    ),
    ["afqmc", "uie"],
)
ALL_JOBS = [
    pytest.param(j, id=j["metadata"]["name"])
    for j in DEFAULT_JOBS + VARIANT_JOBS + FANOUT_JOBS + CPU_FANOUT_JOBS + CPU_VARIANT_JOBS
]


def _pod(job: dict) -> dict:
    return job["spec"]["template"]["spec"]


def _container(job: dict) -> dict:
    (container,) = _pod(job)["containers"]
    return container


# --------------------------------------------------------------------------------------
# Schema validation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("job", ALL_JOBS)
def test_rendered_jobs_validate_strictly(job, version):
    kubernetes_validate.validate(job, version, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("bad-*.yaml")), ids=lambda p: p.name)
def test_broken_manifests_fail_validation(fixture, version):
    doc = yaml.safe_load(fixture.read_text())
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, version, strict=True)


def test_broken_fixtures_differ_from_a_good_job_in_one_place():
    """Each fixture is a rendered Job with one defect, so it fails for that defect only."""
    good = render.render_job(_options(), "afqmc")
    no_op = yaml.safe_load((FIXTURES / "bad-job-no-operator.yaml").read_text())
    no_op["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["operator"] = "In"
    assert no_op == good
    unknown = yaml.safe_load((FIXTURES / "bad-job-unknown-field.yaml").read_text())
    assert unknown["spec"]["template"]["spec"]["containers"][0].pop("imagePullPolicyy") == "IfNotPresent"
    assert unknown == good


@pytest.mark.parametrize("version", VERSIONS)
def test_validation_catches_bad_values_built_in_code(version):
    job = copy.deepcopy(DEFAULT_JOBS[0])
    job["spec"]["backoffLimit"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, version, strict=True)
    job = copy.deepcopy(DEFAULT_JOBS[0])
    job["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, version, strict=True)


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", ["namespace.yaml", "s3-secret.example.yaml"])
def test_static_manifests_validate(name, version):
    docs = _docs(K8S / name)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_example_secret_holds_placeholders_only():
    (secret,) = _docs(K8S / "s3-secret.example.yaml")
    data = secret["stringData"]
    assert (
        {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        <= set(data)
        <= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3", "AWS_REGION"}
    )
    assert data["AWS_ACCESS_KEY_ID"].startswith("REPLACE-") and data["AWS_SECRET_ACCESS_KEY"].startswith("REPLACE-")
    assert secret["metadata"]["name"] == render.JobOptions.secret_name
    assert secret["metadata"]["namespace"] == render.JobOptions.namespace


@pytest.mark.parametrize("version", VERSIONS)
def test_kueue_localqueue_example(version):
    """kubernetes-validate has no CRD schemas: check the shape, and the metadata as ObjectMeta."""
    (queue,) = _docs(K8S / "kueue-localqueue.example.yaml")
    assert queue["apiVersion"] == "kueue.x-k8s.io/v1beta1" and queue["kind"] == "LocalQueue"
    assert set(queue) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(queue["spec"]) == {"clusterQueue"} and _DNS_LABEL.match(queue["spec"]["clusterQueue"])
    assert queue["metadata"]["namespace"] == render.JobOptions.namespace
    # Same ObjectMeta schema as any object: borrow a ConfigMap to validate it strictly.
    kubernetes_validate.validate(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": queue["metadata"]}, version, strict=True
    )
    # The launcher's --queue value in the help example matches this queue's name.
    job = render.render_job(_options(queue=queue["metadata"]["name"]), "afqmc")
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "t4"


def test_network_policy_selects_the_job_pods():
    policy = next(d for d in _docs(K8S / "namespace.yaml") if d["kind"] == "NetworkPolicy")
    selector = policy["spec"]["podSelector"]["matchLabels"]
    for job in DEFAULT_JOBS + VARIANT_JOBS:
        labels = job["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"] and not policy["spec"].get("ingress")


def test_namespace_enforces_restricted_pod_security():
    namespace = next(d for d in _docs(K8S / "namespace.yaml") if d["kind"] == "Namespace")
    assert namespace["metadata"]["name"] == render.JobOptions.namespace
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


# --------------------------------------------------------------------------------------
# The template in k8s/ is the same Job
# --------------------------------------------------------------------------------------

# The template of each device: GPU Jobs (the default) and CPU Jobs (--device cpu).
_TEMPLATES = {"gpu": K8S / "job.template.yaml", "cpu": K8S / "job-cpu.template.yaml"}


def _template_header_variables(device: str = "gpu") -> dict[str, str]:
    header = []
    for line in _TEMPLATES[device].read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    assert header, f"{_TEMPLATES[device].name} must open with a comment header"
    return {m.group(1): m.group(2) for line in header if (m := re.match(r"^#   ([A-Z][A-Z0-9_]*)\s{2,}(\S.*)$", line))}


def _template_body(device: str = "gpu") -> str:
    lines = _TEMPLATES[device].read_text().splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


@pytest.mark.parametrize("device", list(_TEMPLATES))
def test_template_header_lists_every_variable_with_its_meaning(device):
    listed = _template_header_variables(device)
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", _template_body(device)))
    assert used == set(listed), f"used but not listed: {used - set(listed)}; listed but unused: {set(listed) - used}"
    assert all(len(meaning) > 10 for meaning in listed.values())
    assert "$" not in _template_body(device).replace("${", "")


def _substitute(values: dict[str, str], device: str = "gpu") -> dict:
    return yaml.safe_load(string.Template(_TEMPLATES[device].read_text()).substitute(values))


@pytest.mark.parametrize("device", list(_TEMPLATES))
@pytest.mark.parametrize("task", ["afqmc", "uie"])
def test_template_renders_the_same_job_as_the_launcher(task, device):
    options = _options(device=device, image=IMAGE if device == "gpu" else CPU_IMAGE)
    strategy = render.strategy_for(task)
    values = {
        "JOB_NAME": render.job_name(options.run_id, task, strategy),
        "NAMESPACE": options.namespace,
        "IMAGE": options.image,
        "TASK": task,
        "CONFIG": render.config_path(task),
        "STRATEGY": strategy,
        "RUN_ID": options.run_id,
        "OUTPUT": options.output,
        "S3_SECRET": options.secret_name,
        **({"GPU_PRODUCT": options.gpu_products[0]} if device == "gpu" else {}),
        "CPU": options.cpu,
        "MEMORY": options.memory,
        "SHM_SIZE": options.shm_size,
        "SCRATCH_SIZE": options.scratch_size,
        "CACHE_SIZE": options.cache_size,
        "BACKOFF_LIMIT": str(options.backoff_limit),
        "ACTIVE_DEADLINE_SECONDS": str(options.active_deadline_seconds),
        "TTL_SECONDS_AFTER_FINISHED": str(options.ttl_seconds_after_finished),
    }
    assert set(values) == set(_template_header_variables(device))
    from_template = _substitute(values, device)
    assert from_template == render.render_job(options, task)
    for version in VERSIONS:
        kubernetes_validate.validate(from_template, version, strict=True)


# --------------------------------------------------------------------------------------
# Exit-code contract
# --------------------------------------------------------------------------------------


def _docstring_table() -> dict[int, str]:
    import job.errors

    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*([A-Z_]+)\s*\|", job.errors.__doc__ or "", flags=re.M)
    return {int(code): name for code, name in rows}


def test_pod_failure_policy_follows_non_retryable_exit_codes():
    for job in DEFAULT_JOBS + VARIANT_JOBS:
        rules = job["spec"]["podFailurePolicy"]["rules"]
        fail = [r for r in rules if r["action"] == "FailJob"]
        assert len(fail) == 1
        on = fail[0]["onExitCodes"]
        assert on["operator"] == "In" and on["containerName"] == _container(job)["name"] == render.CONTAINER_NAME
        assert set(on["values"]) == {int(c) for c in NON_RETRYABLE}
        assert {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]} in rules
        assert job["spec"]["podReplacementPolicy"] == "Failed"
        assert _pod(job)["restartPolicy"] == "Never"


def test_every_exit_code_is_in_the_errors_docstring_table():
    table = _docstring_table()
    assert table == {int(code): code.name for code in ExitCode}


def test_job_help_epilog_documents_every_exit_code(light_python):
    """`python -m job --help` (run without paddle) lists the same codes as ExitCode."""
    out = subprocess.run(
        [str(light_python), "-m", "job", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    section = out.stdout.split("exit codes:", 1)[1]
    codes = {int(c) for c in re.findall(r"(?:^|,)\s*(\d+) [a-z]", section, flags=re.M)}
    assert codes == {int(c) for c in ExitCode}


# --------------------------------------------------------------------------------------
# Names, labels, args, pod settings
# --------------------------------------------------------------------------------------


def test_default_tasks_and_strategies():
    assert render.DEFAULT_TASKS == (*CLUE_TASKS, "uie")
    assert [j["metadata"]["labels"]["act-job/task"] for j in DEFAULT_JOBS] == list(render.DEFAULT_TASKS)
    for job in DEFAULT_JOBS:
        task = job["metadata"]["labels"]["act-job/task"]
        expected = "qat_dis" if task == "uie" else "prune_ptq"
        assert job["metadata"]["labels"]["act-job/strategy"] == expected
        assert f"Job.strategy={expected}" in _container(job)["args"]
    assert set(render.DEFAULT_STRATEGY.values()) <= set(STRATEGIES)


def test_names_are_deterministic_unique_and_rfc1123():
    again = render.render_jobs(_options())
    assert [j["metadata"]["name"] for j in again] == [j["metadata"]["name"] for j in DEFAULT_JOBS]
    names = [j["metadata"]["name"] for j in DEFAULT_JOBS + VARIANT_JOBS]
    assert len(set(names)) == len(names)
    for name in names:
        assert _DNS_LABEL.match(name) and len(name) <= 63, name
    assert DEFAULT_JOBS[0]["metadata"]["name"] == "act-afqmc-prune-ptq-exp1"


@pytest.mark.parametrize("run_id", ["x" * 63, "Exp_1", "exp-1", "a.b.c", "RUN" + "9" * 60])
def test_job_names_stay_valid_for_any_run_id(run_id):
    name = render.job_name(run_id, "cluewsc2020", "prune_ptq")
    assert _DNS_LABEL.match(name) and len(name) <= 63
    assert name == render.job_name(run_id, "cluewsc2020", "prune_ptq")


def test_run_ids_that_slug_alike_get_different_names():
    assert render.job_name("Exp_1", "afqmc", "ptq") != render.job_name("exp-1", "afqmc", "ptq")
    assert render.job_name("x" * 63, "afqmc", "ptq") != render.job_name("x" * 62 + "y", "afqmc", "ptq")


def test_labels_are_valid():
    for job in DEFAULT_JOBS + VARIANT_JOBS:
        for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
            for key, value in labels.items():
                assert _LABEL_NAME.match(key) and len(key.split("/")[-1]) <= 63, key
                assert _LABEL_VALUE.match(value) and len(value) <= 63, (key, value)
        assert job["metadata"]["labels"]["app.kubernetes.io/name"] == "act-job"
        assert job["metadata"]["annotations"]["act-job/run-id"] == job["metadata"]["labels"]["act-job/run-id"]


@pytest.mark.parametrize("text,expected", [("exp1", "exp1"), ("-a b_", "a-b"), ("x" * 70, "x" * 63), ("é", "")])
def test_label_value_sanitizes(text, expected):
    assert render.label_value(text) == expected


def test_args_carry_config_strategy_output_run_id_and_overrides():
    for job in DEFAULT_JOBS:
        task = job["metadata"]["labels"]["act-job/task"]
        args = _container(job)["args"]
        path = "/app/configs/uie_base.yaml" if task == "uie" else f"/app/configs/clue/{task}.yaml"
        assert args[:3] == ["run", "--config", path]
        assert "Job.output=s3://ml-results/act" in args and "Job.run_id=exp1" in args
        assert "Job.device=gpu" in args, "the gate must measure on the GPU the Job holds"
        assert not any(a.startswith("Global.model_dir=") for a in args)
    for job in VARIANT_JOBS:
        task = job["metadata"]["labels"]["act-job/task"]
        args = _container(job)["args"]
        assert args[3:] == [
            "Job.strategy=ptq",
            "Job.output=s3://ml-results/act",
            "Job.run_id=Exp_2026.11",
            "Job.device=gpu",
            f"Global.model_dir=s3://ml-models/finetuned/{task}",
            "TrainConfig.epochs=3",
            "Job.gate_tolerance=0.5",
        ]


def test_pinned_to_one_t4():
    for job in DEFAULT_JOBS:
        pod = _pod(job)
        terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms == [
            {"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In", "values": ["Tesla-T4"]}]}
        ]
        assert _container(job)["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        assert "runtimeClassName" not in pod
    variant = VARIANT_JOBS[0]
    values = _pod(variant)["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ][0]["matchExpressions"][0]["values"]
    assert values == ["Tesla-T4", "Tesla-T4-SHARED"]
    assert _pod(variant)["runtimeClassName"] == "nvidia"
    assert _pod(variant)["imagePullSecrets"] == [{"name": "registry-cred"}]


def test_queue_label_and_suspend_only_with_a_queue():
    for job in DEFAULT_JOBS:
        assert "kueue.x-k8s.io/queue-name" not in job["metadata"]["labels"] and "suspend" not in job["spec"]
    for job in VARIANT_JOBS:
        assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "t4" and job["spec"]["suspend"] is True
        # Kueue reads the queue from the Job; the pods must not carry it.
        assert "kueue.x-k8s.io/queue-name" not in job["spec"]["template"]["metadata"]["labels"]


def test_restricted_security_and_writable_volumes():
    for job in DEFAULT_JOBS + VARIANT_JOBS:
        pod, container = _pod(job), _container(job)
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": render.RUN_AS_ID,
            "runAsGroup": render.RUN_AS_ID,
            "fsGroup": render.RUN_AS_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        sc = container["securityContext"]
        assert (
            sc["allowPrivilegeEscalation"] is False
            and sc["readOnlyRootFilesystem"] is True
            and sc["runAsNonRoot"] is True
        )
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert sc["runAsUser"] == sc["runAsGroup"] == render.RUN_AS_ID
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert set(mounts) == {"/work", "/cache", "/tmp", "/dev/shm"}
        volumes = {v["name"]: v["emptyDir"] for v in pod["volumes"]}
        assert set(volumes) == set(mounts.values()) and all("sizeLimit" in v for v in volumes.values())
        assert volumes[mounts["/dev/shm"]] == {"medium": "Memory", "sizeLimit": "8Gi"}
        assert container["imagePullPolicy"] == "IfNotPresent"


def test_resources_and_job_limits_follow_options():
    job = render.render_job(
        _options(
            cpu="4",
            memory="30Gi",
            shm_size="2Gi",
            backoff_limit=1,
            active_deadline_seconds=600,
            ttl_seconds_after_finished=0,
        ),
        "tnews",
    )
    resources = _container(job)["resources"]
    assert resources["requests"] == {"cpu": "4", "memory": "30Gi", "nvidia.com/gpu": "1"}
    assert resources["limits"] == {"cpu": "4", "memory": "30Gi", "nvidia.com/gpu": "1"}
    assert (
        job["spec"]["backoffLimit"] == 1
        and job["spec"]["activeDeadlineSeconds"] == 600
        and job["spec"]["ttlSecondsAfterFinished"] == 0
    )
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}} in _pod(job)["volumes"]
    defaults = _container(DEFAULT_JOBS[0])["resources"]["limits"]
    assert defaults == {"cpu": "8", "memory": "48Gi", "nvidia.com/gpu": "1"}
    assert (
        DEFAULT_JOBS[0]["spec"]["activeDeadlineSeconds"] == 6 * 3600
        and DEFAULT_JOBS[0]["spec"]["ttlSecondsAfterFinished"] == 7 * 86400
    )


def test_credentials_only_by_secret_reference():
    for job in DEFAULT_JOBS + VARIANT_JOBS:
        container = _container(job)
        assert container["envFrom"] == [{"secretRef": {"name": "act-job-s3"}}]
        env = {e["name"]: e for e in container["env"]}
        assert env["ACT_JOB_CACHE"] == {"name": "ACT_JOB_CACHE", "value": "/cache"}
        assert not any(name.startswith("AWS_") for name in env)
    text = json.dumps(DEFAULT_JOBS + VARIANT_JOBS)
    assert "secretKeyRef" not in text and "AWS_SECRET" not in text.replace("AWS_* variables", "")


def test_digest_images_are_not_skipped_for_the_digest_check():
    tag_skips = " ".join(DEFAULT_JOBS[0]["metadata"]["annotations"].values())
    digest_skips = " ".join(VARIANT_JOBS[0]["metadata"]["annotations"].values())
    assert "CKV_K8S_43=" in tag_skips and "CKV_K8S_43=" not in digest_skips
    assert render.is_digest(DIGEST_IMAGE) and not render.is_digest(IMAGE)


def test_derived_run_id_is_deterministic_and_input_sensitive():
    a = render.derive_run_id(IMAGE, (), ("TrainConfig.epochs=1",), None)
    assert a == render.derive_run_id(IMAGE, (), ["TrainConfig.epochs=1"], None)
    assert a.startswith("run-") and render.JobOptions(image=IMAGE, output="s3://b/p", run_id=a)
    others = {
        render.derive_run_id(DIGEST_IMAGE, (), ("TrainConfig.epochs=1",), None),
        render.derive_run_id(IMAGE, ("ptq",), ("TrainConfig.epochs=1",), None),
        render.derive_run_id(IMAGE, (), ("TrainConfig.epochs=2",), None),
        render.derive_run_id(IMAGE, (), ("TrainConfig.epochs=1",), "s3://m"),
    }
    assert a not in others and len(others) == 4


@pytest.mark.parametrize(
    "changes,flag",
    [
        ({"image": "act-job"}, "--image"),
        ({"image": "registry.example.com/act-job:latest"}, "--image"),
        ({"image": "Registry/Act:1"}, "--image"),
        ({"output": "/local/path"}, "--output"),
        ({"output": "s3://"}, "--output"),
        ({"run_id": "-x"}, "--run-id"),
        ({"run_id": "a/b"}, "--run-id"),
        ({"run_id": "x" * 64}, "--run-id"),
        ({"strategies": ("magic",)}, "--strategies"),
        ({"overrides": ("epochs=1",)}, "--set"),
        ({"overrides": ("Job.output=s3://x/y",)}, "--set"),
        ({"overrides": ("Global.model_dir=s3://x",), "model_root": "s3://m"}, "--set"),
        ({"namespace": "Act_Jobs"}, "--namespace"),
        ({"gpu_products": ()}, "--gpu-product"),
        ({"gpu_products": ("Tesla T4",)}, "--gpu-product"),
        ({"queue": "Bad Queue"}, "--queue"),
        ({"memory": "48GB"}, "--memory"),
        ({"cpu": "0"}, "--cpu"),
        ({"shm_size": "-1Gi"}, "--shm-size"),
        ({"backoff_limit": -1}, "--backoff-limit"),
        ({"active_deadline_seconds": 0}, "--deadline"),
    ],
)
def test_bad_options_are_input_errors_naming_the_flag(changes, flag):
    with pytest.raises(InputError) as info:
        _options(**changes)
    assert str(info.value).startswith(flag) and info.value.exit_code == ExitCode.INPUT


@pytest.mark.parametrize("tasks", [[], ["afqmc", "afqmc"], ["sentiment"], ["AFQMC"]])
def test_bad_task_lists_are_input_errors(tasks):
    with pytest.raises(InputError):
        render.render_jobs(_options(), tasks)


def test_render_is_pure():
    """job/kube/render.py imports only the standard library, job.errors, job.config and job.terminal."""
    tree = ast.parse((ROOT / "job" / "kube" / "render.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name.split(".")[0] in sys.stdlib_module_names, alias.name
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, "absolute imports only"
            assert node.module.split(".")[0] in sys.stdlib_module_names or node.module in (
                "__future__",
                "job.errors",
                "job.config",
                "job.terminal",
            ), node.module
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in ("open", "print", "input"), node.func.id
    assert set(render.__all__) <= set(dir(render))


# --------------------------------------------------------------------------------------
# checkov (once per session, over every rendered Job)
# --------------------------------------------------------------------------------------

# Checks skipped in the manifests, each with its reason in a checkov.io/skipN annotation.
EXPECTED_SKIPS = {"CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_43", "CKV2_K8S_6"}


def _checkov_reports(output: str) -> list[dict]:
    data = json.loads(output)
    return data if isinstance(data, list) else [data]


@pytest.fixture(scope="module")
def checkov_k8s(tmp_path_factory):
    checkov = TOOLS_BIN / "checkov"
    if not checkov.exists():
        pytest.fail(
            f"{checkov} is missing: run bash scripts/setup.sh (it creates .venv-tools from requirements/tools.txt)"
        )
    folder = tmp_path_factory.mktemp("rendered")
    for job in DEFAULT_JOBS + VARIANT_JOBS + CPU_VARIANT_JOBS:
        (folder / f"{job['metadata']['name']}.yaml").write_text(yaml.safe_dump(job, sort_keys=False))
    result = subprocess.run(
        [str(checkov), "-d", str(folder), "--framework", "kubernetes", "--compact", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.stdout.strip(), result.stderr[-2000:]
    return _checkov_reports(result.stdout)


def test_checkov_finds_no_failed_checks_in_rendered_jobs(checkov_k8s):
    failed = [
        (c["check_id"], c["check_name"], c["resource"])
        for r in checkov_k8s
        for c in r.get("results", {}).get("failed_checks", [])
    ]
    assert not failed
    assert sum(r.get("summary", {}).get("resource_count", 0) for r in checkov_k8s) >= len(DEFAULT_JOBS + VARIANT_JOBS)


def test_checkov_skips_are_in_the_manifests_with_reasons(checkov_k8s):
    skipped = [c for r in checkov_k8s for c in r.get("results", {}).get("skipped_checks", [])]
    assert skipped, "expected the documented skips to be reported"
    assert {c["check_id"] for c in skipped} <= EXPECTED_SKIPS
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment", "")) > 20, check["check_id"]
    for job in DEFAULT_JOBS + VARIANT_JOBS + CPU_VARIANT_JOBS:
        for key, value in job["metadata"]["annotations"].items():
            if key.startswith("checkov.io/skip"):
                check, _, reason = value.partition("=")
                assert check in EXPECTED_SKIPS and len(reason) > 20


def test_rendered_config_paths_exist_in_the_repo():
    """/app/configs/... in the Job args is configs/... of this repo (the image copies configs/ to /app)."""
    paths = {render.config_path(task) for task in render.LAUNCH_TASKS}
    assert all(p.startswith("/app/configs/") for p in paths)
    missing = sorted(p for p in paths if not (ROOT / p.removeprefix("/app/")).is_file())
    if missing:
        pytest.skip(f"task configs not written yet: {', '.join(missing)}")


# --------------------------------------------------------------------------------------
# Fan-out over strategies, data from object storage
# --------------------------------------------------------------------------------------


def test_fanout_renders_one_job_per_task_and_strategy():
    assert len(FANOUT_JOBS) == len(CLUE_TASKS) * len(FANOUT) == 21
    labels = [j["metadata"]["labels"] for j in FANOUT_JOBS]
    pairs = [(label["act-job/task"], label["act-job/strategy"]) for label in labels]
    assert pairs == [(task, strategy) for task in CLUE_TASKS for strategy in FANOUT]
    names = [j["metadata"]["name"] for j in FANOUT_JOBS]
    assert len(set(names)) == 21 and names[:3] == [f"act-afqmc-{s.replace('_', '-')}-exp1" for s in FANOUT]
    for job, (task, strategy) in zip(FANOUT_JOBS, pairs, strict=True):
        args = _container(job)["args"]
        assert f"Job.strategy={strategy}" in args and args.count("Job.run_id=exp1") == 1
        assert job["metadata"]["labels"]["act-job/run-id"] == "exp1"
        # The same failure policy and pod for every strategy: only the strategy differs.
        assert job["spec"] == json.loads(
            json.dumps(FANOUT_JOBS[pairs.index((task, FANOUT[0]))]["spec"])
            .replace(f"Job.strategy={FANOUT[0]}", f"Job.strategy={strategy}")
            .replace(f'"act-job/strategy": "{FANOUT[0]}"', f'"act-job/strategy": "{strategy}"')
        )


def test_default_stays_one_strategy_per_task():
    assert len(DEFAULT_JOBS) == len(render.DEFAULT_TASKS)
    assert render.strategies_for("uie") == ("qat_dis",) and render.strategies_for("afqmc") == ("prune_ptq",)
    assert render.strategies_for("uie", ("ptq", "qat_dis")) == ("ptq", "qat_dis")


# Run ids that slug alike ("Exp_2026.12", "exp-2026-12") or differ past the 63rd character of a name.
RUN_IDS = ["exp1", "x" * 63, "x" * 62 + "y", "Exp_2026.12", "exp-2026-12", "RUN" + "9" * 60, "a", "run-3f2a9c01de"]


def test_job_names_unique_across_runs_tasks_and_strategies():
    names = {render.job_name(r, t, s) for r in RUN_IDS for t in render.LAUNCH_TASKS for s in STRATEGIES}
    assert len(names) == len(RUN_IDS) * len(render.LAUNCH_TASKS) * len(STRATEGIES)


@pytest.mark.parametrize("run_id", RUN_IDS)
def test_job_names_unique_and_valid_for_every_task_and_strategy(run_id):
    names = [render.job_name(run_id, task, strategy) for task in render.LAUNCH_TASKS for strategy in STRATEGIES]
    assert len(set(names)) == len(render.LAUNCH_TASKS) * len(STRATEGIES)
    for name in names:
        assert _DNS_LABEL.fullmatch(name) and len(name) <= 63, name
    jobs = render.render_jobs(_options(run_id=run_id, strategies=tuple(STRATEGIES)), render.LAUNCH_TASKS)
    assert [j["metadata"]["name"] for j in jobs] == names


def test_strategies_listed_twice_or_unknown_are_input_errors():
    for strategies, expected in [(("ptq", "ptq"), "listed twice"), (("ptq", "magic"), "choose from")]:
        with pytest.raises(InputError, match=expected) as info:
            _options(strategies=strategies)
        assert str(info.value).startswith("--strategies")
    assert _options(strategies="ptq").strategies == ("ptq",)  # a lone string is one strategy, not 'p', 't', 'q'


def test_data_root_gives_each_task_its_files_as_local_data():
    for job in FANOUT_JOBS:
        task = job["metadata"]["labels"]["act-job/task"]
        args = _container(job)["args"]
        assert args[-4:] == [
            "Global.dataset=local",
            f"Global.train_data=s3://ml-data/clue/{task}/train.json",
            f"Global.dev_data=s3://ml-data/clue/{task}/dev.json",
            f"Global.test_data=s3://ml-data/clue/{task}/test.json",
        ]
        assert f"Global.model_dir=s3://ml-models/ernie/{task}" in args
    assert not any(a.startswith("Global.dataset") for job in DEFAULT_JOBS for a in _container(job)["args"])


@pytest.mark.parametrize(
    "changes",
    [
        {"data_root": ""},
        {"data_root": "/"},
        {"data_root": "s3://ml-data/my clue"},
        {"data_root": "s3://d", "overrides": ("Global.dataset=clue",)},
        {"data_root": "s3://d", "overrides": ("Global.train_data=s3://x/train.json",)},
        {"data_root": "s3://d", "overrides": ("Global.test_data=s3://x/t.json",)},
    ],
)
def test_bad_data_root_is_an_input_error(changes):
    with pytest.raises(InputError) as info:
        _options(**changes)
    assert str(info.value).startswith(("--data-root", "--set"))


def test_derived_run_id_covers_strategies_and_data_root_and_keeps_old_ids():
    def before(image, strategy, overrides, model_root):  # the formula before --strategies and --data-root
        blob = "\0".join([image, strategy or "default", *overrides, "\0", model_root or ""])
        return "run-" + hashlib.sha256(blob.encode()).hexdigest()[:10]

    assert render.derive_run_id(IMAGE, (), ["A.b=1"], None) == before(IMAGE, None, ["A.b=1"], None)
    assert render.derive_run_id(IMAGE, ("ptq",), [], "s3://m") == before(IMAGE, "ptq", [], "s3://m")
    ids = {
        render.derive_run_id(IMAGE, ("ptq",), [], None),
        render.derive_run_id(IMAGE, ("ptq", "qat_dis"), [], None),
        render.derive_run_id(IMAGE, ("qat_dis", "ptq"), [], None),
        render.derive_run_id(IMAGE, ("ptq",), [], None, "s3://data/clue"),
        render.derive_run_id(IMAGE, ("ptq",), [], None, "s3://data/other"),
    }
    assert len(ids) == 5


# --------------------------------------------------------------------------------------
# Control characters: refused in every name and value, trailing newline included
# --------------------------------------------------------------------------------------

CONTROLS = {"newline": "\n", "cr": "\r", "esc": "\x1b", "nul": "\x00", "rlo": "\u202e", "del": "\x7f", "nel": "\x85"}
# (option, a valid value, the flag the error names); the control is appended, the way a
# trailing newline slips through ``re.match`` with a ``$`` pattern.
TEXT_OPTIONS = [
    ("run_id", "exp1", "--run-id"),
    ("namespace", "act-jobs", "--namespace"),
    ("image", IMAGE, "--image"),
    ("output", "s3://ml-results/act", "--output"),
    ("model_root", "s3://ml-models/ernie", "--model-root"),
    ("data_root", "s3://ml-data/clue", "--data-root"),
    ("queue", "t4", "--queue"),
    ("runtime_class", "nvidia", "--runtime-class"),
    ("secret_name", "act-job-s3", "--secret"),
    ("image_pull_secret", "registry-cred", "--image-pull-secret"),
    ("cpu", "8", "--cpu"),
    ("memory", "48Gi", "--memory"),
    ("shm_size", "8Gi", "--shm-size"),
    ("scratch_size", "50Gi", "--scratch-size"),
    ("cache_size", "20Gi", "--cache-size"),
    ("strategies", ("ptq",), "--strategies"),
    ("overrides", ("TrainConfig.epochs=3",), "--set"),
    ("gpu_products", ("Tesla-T4",), "--gpu-product"),
]


def _with_control(value, control: str):
    if isinstance(value, tuple):
        return (value[0] + control,)
    return value + control


@pytest.mark.parametrize("control", list(CONTROLS.values()), ids=list(CONTROLS))
@pytest.mark.parametrize("field,good,flag", TEXT_OPTIONS, ids=[row[0] for row in TEXT_OPTIONS])
def test_control_characters_are_refused_in_every_option(field, good, flag, control):
    _options(**{field: good})  # the value itself is fine
    for bad in (_with_control(good, control), (control + good) if isinstance(good, str) else None):
        if bad is None:
            continue
        with pytest.raises(InputError) as info:
            _options(**{field: bad})
        message = str(info.value)
        assert message.startswith(flag), message
        assert "\n" not in message and not any(c in message for c in CONTROLS.values()), repr(message)


@pytest.mark.parametrize("control", list(CONTROLS.values()), ids=list(CONTROLS))
def test_control_characters_are_refused_in_task_names(control):
    for tasks in (["afqmc" + control], [control + "uie"]):
        with pytest.raises(InputError) as info:
            render.render_jobs(_options(), tasks)
        assert not any(c in str(info.value) for c in CONTROLS.values()), repr(str(info.value))


@pytest.mark.parametrize("name", ["render.py", "launch.py", "cluster.py"])
def test_name_patterns_match_whole_strings(name):
    """No ``re.match``/``pattern.match`` in the launcher: with a ``$`` it accepts a final newline."""
    tree = ast.parse((ROOT / "job" / "kube" / name).read_text())
    calls = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "match"
    ]
    assert calls == [], f"{name}: .match( at lines {calls}; use fullmatch"


# --------------------------------------------------------------------------------------
# CPU nodes (--device cpu)
# --------------------------------------------------------------------------------------


def _gpu_mentions(node, path: str = "") -> list[str]:
    """Every key or text under ``node`` that names a GPU (gpu, nvidia, T4), with its path."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if re.search(r"gpu|nvidia|\bt4\b", str(key), re.I):
                found.append(f"{path}/{key}")
            found += _gpu_mentions(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _gpu_mentions(value, f"{path}[{i}]")
    elif isinstance(node, str) and re.search(r"gpu|nvidia|tesla|\bt4\b", node, re.I):
        found.append(f"{path}={node}")
    return found


def test_the_gpu_walk_finds_every_gpu_key_of_a_gpu_job():
    found = _gpu_mentions(DEFAULT_JOBS[0])
    assert any("affinity" in f for f in found) and any("tolerations" in f for f in found)
    assert any(f.endswith("requests/nvidia.com/gpu") for f in found) and any("Job.device=gpu" in f for f in found)


@pytest.mark.parametrize("job", CPU_FANOUT_JOBS + CPU_VARIANT_JOBS, ids=lambda j: j["metadata"]["name"])
def test_cpu_jobs_have_no_gpu_key_anywhere(job):
    assert _gpu_mentions(job) == []
    pod = _pod(job)
    assert "affinity" not in pod and "tolerations" not in pod
    assert "Job.device=cpu" in _container(job)["args"]


@pytest.mark.parametrize("task", ["afqmc", "uie"])
def test_cpu_jobs_differ_from_gpu_jobs_only_in_the_device_keys(task):
    """Exit-code policy, security, Secret, names, strategies, data: the same as the GPU Job."""
    same = {"image": CPU_IMAGE, "data_root": "s3://ml-data/clue", "strategies": FANOUT, "queue": "q"}
    for strategy in FANOUT:
        gpu = render.render_job(_options(**same), task, strategy)
        cpu = render.render_job(_options(device="cpu", **same), task, strategy)
        pod = _pod(gpu)
        del pod["affinity"], pod["tolerations"]
        container = _container(gpu)
        container["args"] = [a if a != "Job.device=gpu" else "Job.device=cpu" for a in container["args"]]
        cpu_default = {"cpu": render.CPU_NODE_CPU, "memory": render.CPU_NODE_MEMORY}
        container["resources"] = {"requests": cpu_default, "limits": dict(cpu_default)}
        next(v for v in pod["volumes"] if v["name"] == "dshm")["emptyDir"]["sizeLimit"] = render.CPU_NODE_SHM
        assert cpu == gpu


def test_cpu_resources_are_the_rule_on_the_committed_footprint_record():
    record = json.loads((ROOT / render.FOOTPRINT_RECORD).read_text())
    assert record["exit_code"] == 0, "the footprint comes from a run that succeeded"
    assert render.cpu_resources_from_footprint(record) == (render.CPU_NODE_CPU, render.CPU_NODE_MEMORY)
    resources = _container(CPU_FANOUT_JOBS[0])["resources"]
    measured = {"cpu": render.CPU_NODE_CPU, "memory": render.CPU_NODE_MEMORY}
    assert resources["requests"] == resources["limits"] == measured
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": render.CPU_NODE_SHM}} in _pod(
        CPU_FANOUT_JOBS[0]
    )["volumes"]


@pytest.mark.parametrize(
    "threads,peak_mi,expected",
    [
        (2, 1024, ("2", "1536Mi")),  # x 1.5 is a whole multiple of 256 Mi: no rounding up
        (2, 1025, ("2", "1792Mi")),  # a little over: the next multiple
        (4, 100, ("4", "256Mi")),
    ],
)
def test_footprint_rule_rounds_peak_times_one_and_a_half_up_to_256_mi(threads, peak_mi, expected):
    assert render.cpu_resources_from_footprint({"threads": threads, "peak_rss_bytes": peak_mi * 2**20}) == expected


@pytest.mark.parametrize("record", [{"threads": 0, "peak_rss_bytes": 1}, {"threads": 2, "peak_rss_bytes": 0}])
def test_footprint_rule_refuses_a_record_without_figures(record):
    with pytest.raises(ValueError):
        render.cpu_resources_from_footprint(record)


def test_cpu_flags_override_the_measured_defaults():
    job = render.render_job(_options(device="cpu", cpu="8", memory="16Gi", shm_size="2Gi"), "uie")
    assert _container(job)["resources"]["limits"] == {"cpu": "8", "memory": "16Gi"}
    assert _options(device="gpu").memory == "48Gi" and _options(device="gpu").cpu == "8"


@pytest.mark.parametrize(
    "changes,flag",
    [
        ({"device": "tpu"}, "--device"),
        ({"device": "CPU"}, "--device"),
        ({"device": "cpu\n"}, "--device"),
        ({"device": "cpu", "cpu": "two"}, "--cpu"),
        ({"device": "cpu", "cpu": "0"}, "--cpu"),
        ({"device": "cpu", "memory": "4GB"}, "--memory"),
        ({"device": "cpu", "memory": "-1Gi"}, "--memory"),
        ({"device": "cpu", "overrides": ("Job.device=gpu",)}, "--set"),
    ],
)
def test_bad_cpu_options_are_input_errors_naming_the_flag(changes, flag):
    with pytest.raises(InputError) as info:
        _options(**changes)
    assert str(info.value).startswith(flag) and info.value.exit_code == ExitCode.INPUT
    assert "\n" not in str(info.value)


def test_derived_run_id_covers_the_device_and_keeps_gpu_ids():
    gpu = render.derive_run_id(IMAGE, (), (), None)
    assert render.derive_run_id(IMAGE, (), (), None, None, "gpu") == gpu
    assert render.derive_run_id(IMAGE, (), (), None, None, "cpu") != gpu
