"""The launcher (scripts/launch) as users run it: in .venv-light, without paddle.

Rendering is checked end to end in a subprocess. The apply and watch paths run against
``FakeKubeAPI``, a small threaded HTTP server on 127.0.0.1 that stands in for a cluster: it
answers the part of the Kubernetes API the launcher uses (create, get and list Jobs, list
Pods) and moves each created Job from running to succeeded or failed as it is polled
(tests/kube_standin.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from kube_standin import FakeKubeAPI, running_standin, write_kubeconfig

from job.errors import ExitCode, InputError
from job.kube import launch, render

ROOT = Path(__file__).resolve().parent.parent
LAUNCH = ROOT / "scripts" / "launch"
IMAGE = "registry.example.com/ml/act-job:0.1.0"
BASE_ARGS = ["--image", IMAGE, "--output", "s3://ml-results/act", "--run-id", "exp1"]
PLANTED = {
    "AWS_ACCESS_KEY_ID": "AKIAPLANTED" + uuid.uuid4().hex[:10].upper(),
    "AWS_SECRET_ACCESS_KEY": "planted-" + uuid.uuid4().hex,
    "AWS_SESSION_TOKEN": "planted-token-" + uuid.uuid4().hex,
}


def run_launch(
    python: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBECONFIG", "ACT_JOB_"))}
    full_env.update(env or {})
    return subprocess.run(
        [str(python), str(LAUNCH), *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def _assert_one_line_error(result: subprocess.CompletedProcess, code: int) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if not line.startswith("launch: run id")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------------------
# Environment and rendering
# --------------------------------------------------------------------------------------


def test_script_is_executable_with_a_python3_shebang():
    assert os.access(LAUNCH, os.X_OK)
    assert LAUNCH.read_text().splitlines()[0] == "#!/usr/bin/env python3"


def test_light_environment_has_no_paddle(light_python):
    result = subprocess.run([str(light_python), "-c", "import paddle"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr


def test_renders_default_jobs_to_stdout(light_python):
    result = run_launch(light_python, *BASE_ARGS)
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    expected = render.render_jobs(render.JobOptions(image=IMAGE, output="s3://ml-results/act", run_id="exp1"))
    assert docs == expected
    assert [d["metadata"]["labels"]["act-job/task"] for d in docs] == list(render.DEFAULT_TASKS)
    args = {
        d["metadata"]["labels"]["act-job/task"]: d["spec"]["template"]["spec"]["containers"][0]["args"] for d in docs
    }
    assert args["uie"][:4] == ["run", "--config", "/app/configs/uie_base.yaml", "Job.strategy=qat_dis"]
    assert args["csl"][:4] == ["run", "--config", "/app/configs/clue/csl.yaml", "Job.strategy=prune_ptq"]
    assert result.stdout.startswith("# 8 compression Job(s) of run exp1")


def test_flags_reach_the_jobs(light_python):
    result = run_launch(
        light_python,
        *BASE_ARGS,
        "--tasks",
        "afqmc,tnews",
        "uie",
        "--strategy",
        "ptq",
        "--set",
        "TrainConfig.epochs=3",
        "--set",
        "Global.batch_size=8",
        "--model-root",
        "s3://models/ft",
        "--gpu-product",
        "Tesla-T4",
        "--gpu-product",
        "Tesla-T4-SHARED",
        "--runtime-class",
        "nvidia",
        "--queue",
        "t4",
        "--namespace",
        "ml",
        "--cpu",
        "4",
        "--memory",
        "30Gi",
        "--shm-size",
        "4Gi",
        "--deadline",
        "2h",
        "--ttl",
        "1d",
        "--backoff-limit",
        "1",
        "--secret",
        "s3-creds",
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert [d["metadata"]["name"] for d in docs] == ["act-afqmc-ptq-exp1", "act-tnews-ptq-exp1", "act-uie-ptq-exp1"]
    job = docs[2]
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"][3:] == [
        "Job.strategy=ptq",
        "Job.output=s3://ml-results/act",
        "Job.run_id=exp1",
        "Job.device=gpu",
        "Global.model_dir=s3://models/ft/uie",
        "TrainConfig.epochs=3",
        "Global.batch_size=8",
    ]
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"
    ][0]["values"] == ["Tesla-T4", "Tesla-T4-SHARED"]
    assert pod["runtimeClassName"] == "nvidia" and job["metadata"]["namespace"] == "ml"
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "t4" and job["spec"]["suspend"] is True
    assert container["resources"]["limits"] == {"cpu": "4", "memory": "30Gi", "nvidia.com/gpu": "1"}
    assert (
        job["spec"]["activeDeadlineSeconds"] == 7200
        and job["spec"]["ttlSecondsAfterFinished"] == 86400
        and job["spec"]["backoffLimit"] == 1
    )
    assert container["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]


def test_out_file_and_out_dir(light_python, tmp_path):
    out = tmp_path / "jobs.yaml"
    result = run_launch(light_python, *BASE_ARGS, "--out", str(out))
    assert result.returncode == 0 and result.stdout == ""
    assert len([d for d in yaml.safe_load_all(out.read_text()) if d]) == 8
    folder = tmp_path / "jobs"
    result = run_launch(light_python, *BASE_ARGS, "--out-dir", str(folder), "--tasks", "afqmc", "uie")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["act-afqmc-prune-ptq-exp1.yaml", "act-uie-qat-dis-exp1.yaml"]
    (doc,) = [d for d in yaml.safe_load_all((folder / "act-uie-qat-dis-exp1.yaml").read_text()) if d]
    assert doc["metadata"]["name"] == "act-uie-qat-dis-exp1"


def test_image_from_environment_and_derived_run_id(light_python):
    args = ["--output", "s3://ml-results/act", "--tasks", "afqmc"]
    first = run_launch(light_python, *args, env={"ACT_JOB_IMAGE": IMAGE})
    second = run_launch(light_python, *args, env={"ACT_JOB_IMAGE": IMAGE})
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout  # deterministic: no clock, no randomness
    run_id = render.derive_run_id(IMAGE, (), [], None)
    assert f"launch: run id {run_id}" in first.stderr
    (doc,) = [d for d in yaml.safe_load_all(first.stdout) if d]
    assert doc["metadata"]["name"] == f"act-afqmc-prune-ptq-{run_id}"


@pytest.mark.parametrize(
    "args",
    [
        ["--output", "s3://b/p"],
        ["--image", IMAGE],
        ["--image", "act-job", "--output", "s3://b/p"],
        ["--image", IMAGE, "--output", "/data/out"],
        ["--image", IMAGE, "--output", "s3://b/p", "--tasks", "sentiment"],
        ["--image", IMAGE, "--output", "s3://b/p", "--strategy", "fast"],
        ["--image", IMAGE, "--output", "s3://b/p", "--set", "TrainConfig.epoch=3"],
        ["--image", IMAGE, "--output", "s3://b/p", "--set", "Nope.key=3"],
        ["--image", IMAGE, "--output", "s3://b/p", "--set", "Job.run_id=x"],
        ["--image", IMAGE, "--output", "s3://b/p", "--memory", "lots"],
        ["--image", IMAGE, "--output", "s3://b/p", "--deadline", "soon"],
        ["--image", IMAGE, "--output", "s3://b/p", "--run-id", "a/b"],
        ["--image", IMAGE, "--output", "s3://b/p", "--out", "x", "--out-dir", "y"],
        ["--image", IMAGE, "--output", "s3://b/p", "--bogus"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(light_python, args):
    _assert_one_line_error(run_launch(light_python, *args), int(ExitCode.INPUT))


def test_unwritable_output_is_one_line(light_python, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    _assert_one_line_error(run_launch(light_python, *BASE_ARGS, "--out-dir", str(blocker / "sub")), int(ExitCode.INPUT))


def test_help_documents_flags_exit_codes_and_an_example(light_python):
    result = run_launch(light_python, "--help")
    assert result.returncode == 0
    text = result.stdout
    for flag in (
        "--image",
        "--output",
        "--run-id",
        "--tasks",
        "--strategy",
        "--set",
        "--model-root",
        "--gpu-product",
        "--runtime-class",
        "--queue",
        "--secret",
        "--cpu",
        "--memory",
        "--shm-size",
        "--backoff-limit",
        "--deadline",
        "--ttl",
        "--out",
        "--out-dir",
        "--apply",
        "--watch",
        "--no-select",
        "--interval",
        "--kubeconfig",
        "--context",
        "--namespace",
    ):
        assert flag in text, flag
    section = text.split("exit codes:", 1)[1]
    assert {int(c) for c in re.findall(r"^\s+(\d) ", section, flags=re.M)} == {0, 1, 2, 4}
    assert "example:" in text and "scripts/launch --image" in text


def test_kubernetes_client_is_not_imported_for_rendering(light_python):
    code = (
        "import io, contextlib, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "import job.kube.launch as module\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = module.main({BASE_ARGS!r})\n"
        "print(code, sorted({m.split('.')[0] for m in sys.modules} & {'kubernetes', 'paddle', 'boto3'}))\n"
    )
    result = subprocess.run([str(light_python), "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "0 []", result.stderr


@pytest.fixture
def kube(tmp_path):
    with running_standin() as server:
        yield server


@pytest.fixture
def kubeconfig(kube, tmp_path) -> list[str]:
    """The flags pointing the launcher at ``kube``: --kubeconfig FILE."""
    return ["--kubeconfig", str(write_kubeconfig(tmp_path, kube.url))]


def run_apply_watch(
    python: Path, kubeconfig: list[str], *tasks: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Apply the Jobs of ``tasks`` and watch them until they finish (the selection step has its own tests)."""
    return run_launch(
        python,
        *BASE_ARGS,
        "--tasks",
        *tasks,
        "--apply",
        "--watch",
        "--no-select",
        "--interval",
        "0.05",
        *kubeconfig,
        env=env,
    )


def test_apply_twice_creates_nothing_new(light_python, kube, kubeconfig):
    args = [*BASE_ARGS, "--tasks", "afqmc", "uie", "--apply", *kubeconfig]
    first = run_launch(light_python, *args)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created") == 3 and "exists" not in first.stdout  # two lines + the summary
    assert sorted(name for _, name in kube.jobs) == ["act-afqmc-prune-ptq-exp1", "act-uie-qat-dis-exp1"]
    assert all(r["authorization"] == "Bearer fake-token-for-tests" for r in kube.requests)
    assert all("fieldValidation=Strict" in r["path"] for r in kube.creates())

    second = run_launch(light_python, *args)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("exists, left as is") == 2
    assert "0 created, 2 already existed" in second.stdout
    assert len(kube.jobs) == 2 and len(kube.creates()) == 4
    # What reached the API is exactly the rendered Jobs.
    bodies = [json.loads(r["body"]) for r in kube.creates()[:2]]
    options = render.JobOptions(image=IMAGE, output="s3://ml-results/act", run_id="exp1")
    assert bodies == render.render_jobs(options, ["afqmc", "uie"])


def test_apply_and_watch_all_succeed(light_python, kube, kubeconfig):
    kube.waiting_reason = {"afqmc": "Back-off pulling image registry.example.com/ml/act-job:0.1.0"}
    result = run_apply_watch(light_python, kubeconfig, "afqmc", "tnews", "uie")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "launch: all 3 Job(s) succeeded" in result.stdout
    assert re.search(
        r"^TASK\s+STRATEGY\s+JOB\s+ACTIVE\s+SUCCEEDED\s+FAILED\s+STATE\s+REASON", result.stdout, flags=re.M
    )
    assert re.search(
        r"^afqmc\s+prune_ptq\s+act-afqmc-prune-ptq-exp1\s+1\s+0\s+0\s+running\s+ImagePullBackOff: Back-off pulling",
        result.stdout,
        flags=re.M,
    )
    assert re.search(r"^uie\s+qat_dis\s+act-uie-qat-dis-exp1\s+0\s+1\s+0\s+succeeded", result.stdout, flags=re.M)
    selectors = {
        parse_qs(urlsplit(r["path"]).query).get("labelSelector", [""])[0] for r in kube.requests if r["method"] == "GET"
    }
    assert selectors == {"app.kubernetes.io/name=act-job,act-job/run-id=exp1"}


def test_watch_reports_a_failed_job_with_exit_1(light_python, kube, kubeconfig):
    kube.fail_tasks = {"tnews"}
    args = [*BASE_ARGS, "--tasks", "afqmc", "tnews", *kubeconfig]
    assert run_launch(light_python, *args, "--apply").returncode == 0
    result = run_launch(
        light_python, *args, "--watch", "--no-select", "--interval", "0.05"
    )  # re-attach without --apply
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(
        r"^tnews\s+prune_ptq\s+act-tnews-prune-ptq-exp1\s+0\s+0\s+4\s+failed\s+BackoffLimitExceeded",
        result.stdout,
        flags=re.M,
    )
    assert "1 of 2 Job(s) did not succeed: act-tnews-prune-ptq-exp1" in result.stdout


def test_watch_without_jobs_is_bad_input(light_python, kubeconfig):
    result = run_launch(light_python, *BASE_ARGS, "--watch", "--no-select", "--interval", "0.05", *kubeconfig)
    _assert_one_line_error(result, int(ExitCode.INPUT))


def test_refused_requests_exit_4(light_python, kube, kubeconfig):
    kube.refuse = 403
    result = run_launch(light_python, *BASE_ARGS, "--apply", *kubeconfig)
    _assert_one_line_error(result, 4)
    assert "refused (403" in result.stderr and "cannot create resource" in result.stderr


def test_unreachable_cluster_exits_4(light_python, tmp_path):
    server = FakeKubeAPI()  # bind a free port, then close it: nothing listens there
    url = server.url
    server.server_close()
    result = run_launch(
        light_python,
        *BASE_ARGS,
        "--tasks",
        "afqmc",
        "--apply",
        "--kubeconfig",
        str(write_kubeconfig(tmp_path, url)),
        timeout=120,
    )
    _assert_one_line_error(result, 4)
    assert "unreachable" in result.stderr


def test_bad_kubeconfig_is_bad_input(light_python, tmp_path):
    missing = tmp_path / "nope"
    _assert_one_line_error(
        run_launch(light_python, *BASE_ARGS, "--apply", "--kubeconfig", str(missing)), int(ExitCode.INPUT)
    )
    config = write_kubeconfig(tmp_path, "http://127.0.0.1:9")
    _assert_one_line_error(
        run_launch(light_python, *BASE_ARGS, "--apply", "--kubeconfig", str(config), "--context", "other"),
        int(ExitCode.INPUT),
    )


def test_no_secret_value_in_any_output(light_python, kube, kubeconfig, tmp_path):
    """Planted credentials in the launcher's environment never reach stdout, stderr, files or the API."""
    kube.fail_tasks = {"uie"}
    out_file, out_dir = tmp_path / "jobs.yaml", tmp_path / "jobs"
    runs = [
        run_launch(light_python, *BASE_ARGS, env=PLANTED),
        run_launch(light_python, *BASE_ARGS, "--out", str(out_file), env=PLANTED),
        run_launch(light_python, *BASE_ARGS, "--out-dir", str(out_dir), env=PLANTED),
        run_apply_watch(light_python, kubeconfig, "afqmc", "uie", env=PLANTED),
        run_launch(light_python, *BASE_ARGS, "--tasks", "afqmc", "uie", "--apply", *kubeconfig, env=PLANTED),
    ]
    assert [r.returncode for r in runs] == [0, 0, 0, 1, 0]
    texts = [r.stdout + r.stderr for r in runs]
    texts += [p.read_text() for p in [out_file, *out_dir.iterdir()]]
    texts += [json.dumps(r) for r in kube.requests]
    assert kube.creates() and all('"envFrom"' in r["body"] for r in kube.creates())
    for value in PLANTED.values():
        assert not any(value in text for text in texts)


def test_launch_module_loads_without_side_effects():
    """Importing the launcher and its cluster side (as tests and tools may) neither runs main
    nor needs kubernetes."""
    import job.kube.cluster as module
    import job.kube.launch  # noqa: F401

    assert module.Exit.JOB_FAILED == 1 and module.Exit.INPUT == ExitCode.INPUT and module.Exit.CLUSTER == 4
    rows = [
        module.Row("afqmc", "act-afqmc-ptq-x", 1, 0, 0, "running", ""),
        module.Row("uie", "act-uie-ptq-x", 0, 1, 0, "succeeded", ""),
    ]
    table = module.format_table(rows).splitlines()
    assert (
        table[0].split() == ["TASK", "STRATEGY", "JOB", "ACTIVE", "SUCCEEDED", "FAILED", "STATE", "REASON"]
        and len(table) == 3
    )


# --------------------------------------------------------------------------------------
# Fan-out over strategies, data root, control characters
# --------------------------------------------------------------------------------------

FANOUT = ["--strategies", "qat_dis,ptq_hpo,prune_ptq"]


def _jobs(result: subprocess.CompletedProcess) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_strategies_flag_renders_one_job_per_task_and_strategy(light_python):
    jobs = _jobs(run_launch(light_python, *BASE_ARGS, "--tasks", "afqmc", "uie", *FANOUT))
    names = [j["metadata"]["name"] for j in jobs]
    assert names == [
        f"act-{task}-{strategy}-exp1" for task in ("afqmc", "uie") for strategy in ("qat-dis", "ptq-hpo", "prune-ptq")
    ]
    assert [a for j in jobs for a in j["spec"]["template"]["spec"]["containers"][0]["args"] if "strategy" in a] == [
        f"Job.strategy={s}" for _ in range(2) for s in ("qat_dis", "ptq_hpo", "prune_ptq")
    ]
    # The space-separated form and the old single --strategy flag give the same Jobs.
    spaced = _jobs(
        run_launch(light_python, *BASE_ARGS, "--tasks", "afqmc", "uie", "--strategies", "qat_dis", "ptq_hpo,prune_ptq")
    )
    assert spaced == jobs
    single = _jobs(run_launch(light_python, *BASE_ARGS, "--tasks", "afqmc", "--strategy", "ptq"))
    assert [j["metadata"]["name"] for j in single] == ["act-afqmc-ptq-exp1"]


def test_derived_run_id_names_the_strategies_and_data_root(light_python):
    def derived(*extra: str) -> str:
        result = run_launch(
            light_python, "--image", IMAGE, "--output", "s3://ml-results/act", "--tasks", "afqmc", *extra
        )
        assert result.returncode == 0, result.stderr
        return _jobs(result)[0]["metadata"]["labels"]["act-job/run-id"]

    assert derived(*FANOUT) == render.derive_run_id(IMAGE, ("qat_dis", "ptq_hpo", "prune_ptq"), [], None)
    assert derived("--data-root", "s3://ml-data/clue") == render.derive_run_id(IMAGE, (), [], None, "s3://ml-data/clue")
    assert derived() == render.derive_run_id(IMAGE, (), [], None) != derived("--data-root", "s3://ml-data/clue")


def test_data_root_flag_gives_each_job_its_files(light_python):
    jobs = _jobs(run_launch(light_python, *BASE_ARGS, "--tasks", "tnews", "uie", "--data-root", "s3://ml-data/sets/"))
    for job in jobs:
        task = job["metadata"]["labels"]["act-job/task"]
        args = job["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[args.index("Global.dataset=local") :] == [
            "Global.dataset=local",
            f"Global.train_data=s3://ml-data/sets/{task}/train.json",
            f"Global.dev_data=s3://ml-data/sets/{task}/dev.json",
            f"Global.test_data=s3://ml-data/sets/{task}/test.json",
        ]


RAW_CONTROLS = {"newline": "\n", "cr": "\r", "esc": "\x1b[2J", "rlo": "\u202e"}
NAMED_FLAGS = {
    "--run-id": "exp1",
    "--namespace": "act-jobs",
    "--image": IMAGE,
    "--queue": "t4",
    "--output": "s3://ml-results/act",
    "--model-root": "s3://ml-models/ernie",
    "--data-root": "s3://ml-data/clue",
    "--tasks": "afqmc",
    "--strategies": "ptq",
    "--set": "TrainConfig.epochs=3",
    "--gpu-product": "Tesla-T4",
    "--secret": "act-job-s3",
    "--runtime-class": "nvidia",
}


def _has_raw_control(text: str) -> bool:
    return any(c in text for c in ("\x1b", "\r", "\u202e", "\x00")) or "\n" in text.rstrip("\n")


@pytest.mark.parametrize("control", list(RAW_CONTROLS.values()), ids=list(RAW_CONTROLS))
@pytest.mark.parametrize("flag", list(NAMED_FLAGS))
def test_control_character_in_any_name_is_one_escaped_line_and_exit_2(light_python, flag, control):
    base = {"--image": IMAGE, "--output": "s3://ml-results/act", "--run-id": "exp1", "--tasks": "afqmc"}
    given = {**base, flag: NAMED_FLAGS[flag] + control}
    args = [part for key, value in given.items() for part in (key, value)]
    result = run_launch(light_python, *args)
    _assert_one_line_error(result, int(ExitCode.INPUT))
    assert result.stdout == "" and not _has_raw_control(result.stderr), repr(result.stderr)
    assert flag in result.stderr or flag == "--tasks", result.stderr


# --------------------------------------------------------------------------------------
# --watch: cluster text escaped, the final step run once
# --------------------------------------------------------------------------------------

HOSTILE = "\x1b[2J\x1b]0;owned\x07\rline one\nline two\u202eevil\x1b[31m"


def test_watch_escapes_what_the_cluster_says(light_python, kube, kubeconfig):
    kube.waiting_reason = {"afqmc": "Back-off " + HOSTILE}
    kube.fail_message = "backoff " + HOSTILE
    kube.fail_tasks = {"afqmc"}
    result = run_apply_watch(light_python, kubeconfig, "afqmc", "uie")
    assert result.returncode == 1, result.stdout + result.stderr
    shown = result.stdout + result.stderr
    assert not _has_raw_control(shown.replace("\n", "")) and "\x07" not in shown, repr(shown)
    assert "\\x1b[2J\\x1b]0;owned\\x07" in shown  # shown as escapes, not dropped
    assert re.search(r"^afqmc\s+prune_ptq\s+\S+\s+1\s+0\s+0\s+running\s+ImagePullBackOff: Back-off \\x1b", shown, re.M)
    assert re.search(
        r"^afqmc\s+prune_ptq\s+\S+\s+0\s+0\s+4\s+failed\s+BackoffLimitExceeded: backoff \\x1b", shown, re.M
    )


def test_api_error_bodies_are_escaped(light_python, kube, kubeconfig):
    kube.refuse = 403
    kube.refuse_message = "forbidden " + HOSTILE
    result = run_launch(light_python, *BASE_ARGS, "--tasks", "afqmc", "--apply", *kubeconfig)
    _assert_one_line_error(result, 4)
    assert not _has_raw_control(result.stderr) and "\x07" not in result.stderr, repr(result.stderr)
    assert "forbidden \\x1b[2J" in result.stderr


class Recorder:
    """A final step that records when it was called and what the cluster held then."""

    def __init__(self, kube: FakeKubeAPI, status: int | None = 0, raises: Exception | None = None):
        self.kube, self.status, self.raises = kube, status, raises
        self.calls: list[tuple[str, list[str]]] = []

    def select(self, run_id: str) -> int | None:
        ended = []
        for (_, name), job in self.kube.jobs.items():
            types = {c["type"] for c in job.get("status", {}).get("conditions", []) if c["status"] == "True"}
            ended.append(name if types & {"Complete", "Failed"} else f"{name} still running")
        self.calls.append((run_id, sorted(ended)))
        if self.raises is not None:
            raise self.raises
        return self.status


def _main(kubeconfig: list[str], monkeypatch, *extra: str, on_all_done=None) -> int:
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # main installs its own; restored after
    argv = [*BASE_ARGS, "--tasks", "afqmc", "uie", *extra, "--interval", "0.05", *kubeconfig]
    return launch.main(argv, on_all_done=on_all_done.select if on_all_done else None)


NAMES = ["act-afqmc-prune-ptq-exp1", "act-uie-qat-dis-exp1"]


@pytest.mark.parametrize(
    "fail,status,raises,expected",
    [
        (set(), 0, None, 0),  # all succeed, the step succeeds
        ({"uie"}, 0, None, 1),  # a Job failed: that stands when the step succeeds
        (set(), 3, None, 3),  # the step's own status when the Jobs succeeded
        ({"uie"}, 4, None, 4),  # the step's failure wins over a failed Job
        (set(), None, InputError("no result to select \x1b[2J"), 2),  # an expected failure: one line, its code
        (set(), None, None, 1),  # not an exit status: an internal error
    ],
)
def test_watch_runs_the_final_step_once_after_every_job_ended(
    kube, kubeconfig, monkeypatch, capsys, fail, status, raises, expected
):
    kube.fail_tasks = fail
    step = Recorder(kube, status, raises)
    assert _main(kubeconfig, monkeypatch, "--apply", "--watch", on_all_done=step) == expected
    assert step.calls == [("exp1", NAMES)]  # once, with the run id, when no Job was running any more
    out = capsys.readouterr()
    assert out.out.count("launch: every Job of run exp1 has ended; running select") == 1
    if raises is not None:
        assert out.err.count("\n") == 1 and "\x1b" not in out.err and "no result to select" in out.err


def test_final_step_is_not_run_without_watch_or_when_watching_fails(kube, kubeconfig, monkeypatch):
    step = Recorder(kube)
    assert _main(kubeconfig, monkeypatch, "--apply", on_all_done=step) == 0
    assert step.calls == [] and len(kube.jobs) == 2
    # Nothing of this run in the cluster: watching fails (exit 2), so nothing has ended.
    other = ["--run-id", "exp2"]
    assert _main(kubeconfig, monkeypatch, *other, "--watch", on_all_done=step) == 2
    assert step.calls == []
    kube.refuse = 403  # the cluster refuses: exit 4, no step
    assert _main(kubeconfig, monkeypatch, "--watch", on_all_done=step) == 4
    assert step.calls == []


def test_watch_ends_with_the_selection_of_the_run_by_default(
    kube, kubeconfig, monkeypatch, capsys, s3_server, bucket, tmp_path
):
    """Without an injected step, --watch runs the real selection on the bucket once every Job
    ended: a task with results gets its selected.json, one without is refused (exit 2)."""
    from test_select import RUN, publish_result, result

    from job.config import StorageConfig
    from job.storage import Storage
    from job.storage.selection import read_selection

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    output = f"s3://{bucket}/act"
    store = Storage(StorageConfig(endpoint_url=s3_server))
    publish_result(store, output, result("ptq", ms=10.0, task="afqmc"), tmp_path)
    publish_result(store, output, result("qat_dis", ms=20.0, task="afqmc"), tmp_path)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    argv = ["--image", IMAGE, "--output", output, "--run-id", RUN, "--tasks", "afqmc", "uie"]
    assert launch.main([*argv, "--apply", "--watch", "--interval", "0.05", *kubeconfig]) == 2  # uie: nothing to select
    assert read_selection(store, output, RUN, "afqmc").selected == "ptq"
    out = capsys.readouterr()
    assert f"== {RUN}/afqmc: ptq ==" in out.out and f"{RUN}/uie: no strategy folders" in out.err
    # --no-select: the Jobs' own status alone, nothing selected for it
    assert launch.main([*argv, "--watch", "--no-select", "--interval", "0.05", *kubeconfig]) == 0
