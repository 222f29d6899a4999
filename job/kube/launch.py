"""The launcher behind ``scripts/launch``: one Kubernetes Job per task and strategy, each on one T4 GPU
(or, with ``--device cpu``, on CPU nodes from the CPU image).

Renders the Jobs (``job.kube.render``), checks them with the job's own parsers before anything is
scheduled (``check_with_job``: each task's config loaded with exactly the arguments its
container gets, every location through storage's URI parser), writes them as YAML for
``kubectl apply -f``, or creates them through the Kubernetes API with your kubeconfig and
watches them to the end; when every Job of the run has ended, ``--watch`` calls the
``on_all_done(run_id) -> exit status`` given to ``main`` (once), and folds its status into the
exit code. Needs only PyYAML and the kubernetes client (``.venv-light``); no paddle. Run
``scripts/launch --help``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from job.cli import Parser
from job.config import STRATEGIES
from job.errors import ConfigError, InputError, JobError
from job.kube import render
from job.kube.cluster import Cluster, ClusterError, Exit, apply_jobs, watch
from job.storage import check_location, scrub
from job.terminal import escape

IMAGE_ENV = "ACT_JOB_IMAGE"
CPU_IMAGE_ENV = "ACT_JOB_CPU_IMAGE"  # the CPU image (docker/Dockerfile.cpu), the default of --device cpu
_REPO = Path(__file__).resolve().parents[2]
_IMAGE_CONFIGS = "/app/configs"  # where docker/Dockerfile puts configs/
_DESCRIPTION = """\
Render one Kubernetes Job per task and strategy of the compression job (PaddleSlim ACT on UIE
and the CLUE classifiers), each pinned to one NVIDIA T4 (or, with --device cpu, on CPU nodes
from the CPU image); print them as YAML, write them to files, or create them with your
kubeconfig and watch them until they finish."""

_EPILOG = f"""\
example:
  # render the eight default Jobs (7 CLUE tasks with prune_ptq, uie with qat_dis) for review
  scripts/launch --image registry.example.com/ml/act-job:0.1.0 \\
      --output s3://ml-results/act --run-id exp1 > jobs.yaml
  kubectl apply -f jobs.yaml
  # or create them directly and follow them until all finish
  scripts/launch --image registry.example.com/ml/act-job@sha256:<digest> \\
      --output s3://ml-results/act --run-id exp1 --tasks afqmc tnews uie \\
      --set TrainConfig.epochs=3 --apply --watch
  # three strategies per task (one Job each, same run id), data and models from the bucket
  scripts/launch --image registry.example.com/ml/act-job:0.1.0 --output s3://ml-results/act \\
      --run-id exp2 --tasks afqmc tnews --strategies qat_dis,ptq_hpo,prune_ptq \\
      --model-root s3://ml-models/ernie-3.0-medium --data-root s3://ml-data/clue > jobs.yaml
  # the same fan-out on CPU nodes, from the CPU image (docker/Dockerfile.cpu); models bigger
  # than the demo teacher need more than the default requests: add --cpu and --memory
  scripts/launch --device cpu --image registry.example.com/ml/act-job:0.1.0-cpu \
      --output s3://ml-results/act --run-id exp2-cpu --tasks afqmc tnews --strategies ptq,prune_ptq \
      > jobs-cpu.yaml

what each Job runs:
  python -m job run --config <config in image> Job.strategy=<s> Job.output=<output>
      Job.run_id=<run id> Job.device=<gpu|cpu> [Global.model_dir=<model root>/<task>]
      [Global.dataset=local Global.{{train,dev,test}}_data=<data root>/<task>/{{train,dev,test}}.json]
      [--set overrides...]
  configs: /app/configs/clue/<task>.yaml, /app/configs/uie_base.yaml (uie)
  results: <output>/<run id>/<task>/<strategy>/

run id:
  --run-id names the run. Without it the run id is derived from a hash of the inputs that
  decide the results (image, --strategies, --set, --model-root, --data-root, --device), e.g. run-3f2a9c01de: launching
  the same thing twice gives the same Job names, so nothing is created twice and the job
  skips tasks already complete. Pass --run-id to rerun on purpose (e.g. after pushing a new
  image under the same tag). Job names: act-<task>-<strategy>-<run id>, at most 63 chars.

cluster side:
  kubectl apply -f k8s/namespace.yaml     namespace {render.JobOptions.namespace} (restricted pod security)
  the Secret --secret (default act-job-s3) holding AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
  and optionally AWS_ENDPOINT_URL_S3, AWS_REGION: see k8s/s3-secret.example.yaml.
  Credentials reach the pods only through that Secret; this command never reads them.
  Job exit codes 2 (bad input) and 3 (accuracy gate) fail a Job at once; other failures are
  retried up to --backoff-limit times; disruptions (preemption, drain) are not counted.

exit codes:
  0 ok (rendered, applied, or all watched Jobs succeeded)
  1 a Job failed (--watch)
  other: the status of the step run when all watched Jobs have ended, when it is not 0
  2 bad input (flags, values, kubeconfig, a request the API rejected as invalid)
  4 cluster API unreachable or refused (connection, authentication, permissions)
  130 interrupted (Ctrl-C); Jobs already created keep running
"""


def _duration(text: str) -> int:
    """Seconds from '3600', '90m', '6h' or '7d'."""
    match = re.fullmatch(r"(\d+)([smhd]?)", text.strip(" "))
    if not match:
        raise argparse.ArgumentTypeError(f"expected seconds or a number with s, m, h or d, got {text!r}")
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _split(values: list[str] | None) -> list[str]:
    """Flatten 'a b' and 'a,b' forms."""
    return [part for value in values or [] for part in value.split(",") if part]


def build_parser() -> argparse.ArgumentParser:
    d = {f.name: f.default for f in dataclasses.fields(render.JobOptions)}
    p = Parser(
        prog="scripts/launch",
        prog_in_errors=False,
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    what = p.add_argument_group("what to run")
    what.add_argument(
        "--image",
        help=(
            "job image, REPOSITORY:TAG or REPOSITORY@sha256:DIGEST (a digest pins the content); "
            f"default: ${IMAGE_ENV}, with --device cpu ${CPU_IMAGE_ENV} (the CPU image, docker/Dockerfile.cpu)"
        ),
    )
    what.add_argument("--output", metavar="s3://BUCKET/PREFIX", help="results root in object storage (required)")
    what.add_argument(
        "--run-id", help="run name (1-63 letters, digits, . _ -); default: derived from the inputs, see 'run id' below"
    )
    what.add_argument(
        "--tasks",
        nargs="+",
        metavar="TASK",
        help=f"tasks, space- or comma-separated (default: all of {' '.join(render.DEFAULT_TASKS)})",
    )
    what.add_argument(
        "--strategies",
        "--strategy",
        dest="strategies",
        nargs="+",
        metavar="STRATEGY",
        help=(
            f"strategies for every task, space- or comma-separated, one Job each under the same run id; "
            f"choose from {', '.join(STRATEGIES)} (default: prune_ptq for CLUE tasks, qat_dis for uie)"
        ),
    )
    what.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="Section.key=value",
        help="config override for every Job (repeatable), e.g. --set TrainConfig.epochs=3",
    )
    what.add_argument(
        "--model-root",
        metavar="URI",
        help="models to compress: Global.model_dir=<URI>/<task> per Job (default: the config's)",
    )
    what.add_argument(
        "--data-root",
        metavar="URI",
        help=(
            "data of every task in object storage, <URI>/<task>/train.json, dev.json, test.json in the formats the "
            "job reads (CLUE: JSON lines; uie: doccano JSONL): Global.dataset=local, no hub download "
            "(default: the config's data)"
        ),
    )

    where = p.add_argument_group("where and how it runs")
    where.add_argument("--namespace", "-n", default=d["namespace"], help="namespace (default: %(default)s)")
    where.add_argument(
        "--device",
        default=d["device"],
        help=(
            "gpu: one T4 per Job (node affinity, GPU request and toleration); cpu: CPU nodes, the CPU image, "
            "no GPU key, CPU and memory requests from a measured run of the demo teacher (default: %(default)s)"
        ),
    )
    where.add_argument(
        "--gpu-product",
        action="append",
        metavar="PRODUCT",
        help=(
            "allowed values of the node label nvidia.com/gpu.product, repeatable or comma-separated; "
            "replaces the default Tesla-T4 (e.g. --gpu-product Tesla-T4,Tesla-T4-SHARED); --device gpu only"
        ),
    )
    where.add_argument(
        "--runtime-class",
        metavar="NAME",
        help="runtimeClassName of the pods, e.g. nvidia (default: none, the node's default runtime)",
    )
    where.add_argument(
        "--queue",
        metavar="LOCALQUEUE",
        help="Kueue LocalQueue: label kueue.x-k8s.io/queue-name and create the Jobs suspended for Kueue to admit",
    )
    where.add_argument(
        "--secret",
        default=d["secret_name"],
        metavar="NAME",
        help="Secret with the S3 credentials, passed with envFrom (default: %(default)s)",
    )
    where.add_argument("--image-pull-secret", metavar="NAME", help="imagePullSecret for a private registry")
    where.add_argument(
        "--cpu",
        help=f"CPU request and limit (default: {render.GPU_NODE_CPU}, with --device cpu {render.CPU_NODE_CPU})",
    )
    where.add_argument(
        "--memory",
        help=(
            "memory request and limit, /dev/shm included "
            f"(default: {render.GPU_NODE_MEMORY}, with --device cpu {render.CPU_NODE_MEMORY}: the demo teacher's "
            "measured peak x 1.5; UIE-base and ERNIE need more)"
        ),
    )
    where.add_argument(
        "--shm-size",
        help=f"size of /dev/shm, in memory (default: {render.GPU_NODE_SHM}, with --device cpu {render.CPU_NODE_SHM})",
    )
    where.add_argument(
        "--scratch-size",
        default=d["scratch_size"],
        help="size limit of the /work scratch volume (default: %(default)s)",
    )
    where.add_argument(
        "--cache-size", default=d["cache_size"], help="size limit of the /cache volume (default: %(default)s)"
    )
    where.add_argument(
        "--backoff-limit",
        type=int,
        default=d["backoff_limit"],
        help="retries of retryable failures (default: %(default)s)",
    )
    where.add_argument(
        "--deadline",
        type=_duration,
        default=d["active_deadline_seconds"],
        metavar="DURATION",
        help="activeDeadlineSeconds: wall-clock limit per Job, e.g. 6h (default: %(default)s s)",
    )
    where.add_argument(
        "--ttl",
        type=_duration,
        default=d["ttl_seconds_after_finished"],
        metavar="DURATION",
        help="ttlSecondsAfterFinished: delete finished Jobs after, e.g. 7d (default: %(default)s s)",
    )

    out = p.add_argument_group("output and cluster")
    dest = out.add_mutually_exclusive_group()
    dest.add_argument("--out", metavar="FILE", help="write all Jobs to FILE (multi-document YAML) instead of stdout")
    dest.add_argument("--out-dir", metavar="DIR", help="write one <job name>.yaml per Job into DIR")
    out.add_argument(
        "--apply",
        action="store_true",
        help="create the Jobs through the Kubernetes API; existing ones are left as they are",
    )
    out.add_argument(
        "--watch", action="store_true", help="print a status table until every Job has finished; exit 1 if any failed"
    )
    out.add_argument(
        "--no-select",
        action="store_true",
        help="with --watch: do not run the selection (python -m job select) once every Job has ended",
    )
    out.add_argument(
        "--interval",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="--watch polling interval (default: %(default)s)",
    )
    out.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
    out.add_argument("--context", metavar="NAME", help="kubeconfig context (default: the current one)")
    return p


# --------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------


def options_from_args(args: argparse.Namespace) -> tuple[render.JobOptions, list[str], bool]:
    """(options, tasks, run id derived?) from parsed flags; InputError on bad input."""
    device = args.device
    image_env = CPU_IMAGE_ENV if device == "cpu" else IMAGE_ENV
    image = args.image or os.environ.get(image_env)
    if not image:
        raise InputError(f"--image is required (or set ${image_env})")
    if args.gpu_product and device != "gpu":
        raise InputError(f"--gpu-product: only with --device gpu (--device is {escape(repr(device), 60)})")
    if not args.output:
        raise InputError("--output s3://bucket/prefix is required")
    given = [("--output", args.output), ("--model-root", args.model_root), ("--data-root", args.data_root)] + [
        ("--set", item) for item in args.overrides
    ]
    for flag, value in given:
        if value and scrub.scrub_url(value) != value:
            raise InputError(
                f"{flag} {escape(repr(scrub.scrub_url(value)), 120)}: a URL with credentials (user:password@) "
                "would be written into the Job; "
                f"put them in the Secret (--secret) instead"
            )
    if args.tasks is not None and not _split(args.tasks):
        raise InputError("--tasks: give at least one task (leave the flag out for all of them)")
    tasks = _split(args.tasks) or list(render.DEFAULT_TASKS)
    for task in tasks:
        render.config_path(task)
    if args.strategies is not None and not _split(args.strategies):
        raise InputError("--strategies: give at least one strategy (leave the flag out for the defaults)")
    strategies = tuple(_split(args.strategies))
    derived = args.run_id is None
    run_id = (
        args.run_id
        if not derived
        else render.derive_run_id(image, strategies, args.overrides, args.model_root, args.data_root, device)
    )
    options = render.JobOptions(
        image=image,
        output=args.output,
        run_id=run_id,
        strategies=strategies,
        overrides=tuple(args.overrides),
        model_root=args.model_root,
        data_root=args.data_root,
        namespace=args.namespace,
        device=device,
        gpu_products=tuple(_split(args.gpu_product)) or render.JobOptions.gpu_products,
        runtime_class=args.runtime_class,
        queue=args.queue,
        secret_name=args.secret,
        image_pull_secret=args.image_pull_secret,
        backoff_limit=args.backoff_limit,
        active_deadline_seconds=args.deadline,
        ttl_seconds_after_finished=args.ttl,
        cpu=args.cpu,
        memory=args.memory,
        shm_size=args.shm_size,
        scratch_size=args.scratch_size,
        cache_size=args.cache_size,
    )
    return options, tasks, derived


def _config_file(in_image: str) -> str:
    """The config a Job's container reads, as a file here: itself inside the image, else
    this checkout's copy (the image is built from it: docker/Dockerfile copies configs/)."""
    if Path(in_image).is_file():
        return in_image
    local = _REPO / "configs" / Path(in_image).relative_to(_IMAGE_CONFIGS)
    if not local.is_file():
        raise InputError(f"cannot check the Jobs' arguments: {local} is missing (run the launcher from a checkout)")
    return str(local)


def check_with_job(jobs: list[dict], options: render.JobOptions) -> None:
    """Refuse a Job whose container would fail at once with exit code 2.

    Each Job's arguments go through the job's own command-line parser and config loader
    (``python -m job run`` does exactly this in the pod), then every location through
    storage's URI parser; ``--output``, ``--model-root`` and ``--data-root`` must be object
    storage (a pod keeps nothing of its own file system). One source of truth: no rule is copied here.
    """
    from job.__main__ import build_parser as job_parser
    from job.__main__ import load_run_config

    for job in jobs:
        labels = job["metadata"]["labels"]
        task = f"{labels['act-job/task']} (strategy {labels['act-job/strategy']})"
        args = job_parser().parse_args(job["spec"]["template"]["spec"]["containers"][0]["args"])
        local = _config_file(args.config)
        try:
            cfg = load_run_config(args, local)
        except ConfigError as exc:
            shown = str(exc).replace(local, args.config)
            raise InputError(f"the Job of task {task} would fail: {escape(shown)}") from None
        locations = [("--output", cfg.Job.output, True)]
        if cfg.Global.model_dir:
            locations.append(
                (
                    "--model-root" if options.model_root else "Global.model_dir",
                    cfg.Global.model_dir,
                    bool(options.model_root),
                )
            )
        if cfg.Global.dataset == "local":
            data_flag = "--data-root" if options.data_root else None
            locations += [
                (data_flag or f"Global.{key}", getattr(cfg.Global, key), bool(data_flag)) for key in render.DATA_FILES
            ]
        for flag, uri, remote in locations:
            if uri:
                try:
                    check_location(uri, remote=remote)
                except InputError as exc:
                    raise InputError(f"{flag}: {exc}") from None


# --------------------------------------------------------------------------------------
# YAML output
# --------------------------------------------------------------------------------------


def to_yaml(jobs: list[dict], header: str = "") -> str:
    text = yaml.safe_dump_all(jobs, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000)
    return header + text


def _header(options: render.JobOptions, count: int, target: str) -> str:
    return (
        f"# {count} compression Job(s) of run {options.run_id} in namespace {options.namespace}, "
        f"rendered by scripts/launch.\n# Apply with: kubectl apply -f {target}\n"
    )


def write_outputs(jobs: list[dict], options: render.JobOptions, args: argparse.Namespace) -> None:
    try:
        if args.out_dir:
            folder = Path(args.out_dir)
            folder.mkdir(parents=True, exist_ok=True)
            for job in jobs:
                path = folder / f"{job['metadata']['name']}.yaml"
                path.write_text(to_yaml([job], _header(options, 1, str(path))), encoding="utf-8")
            print(f"launch: wrote {len(jobs)} file(s) to {folder}", file=sys.stderr)
        elif args.out:
            Path(args.out).write_text(to_yaml(jobs, _header(options, len(jobs), args.out)), encoding="utf-8")
            print(f"launch: wrote {len(jobs)} Job(s) to {args.out}", file=sys.stderr)
        elif not (args.apply or args.watch):
            sys.stdout.write(to_yaml(jobs, _header(options, len(jobs), "FILE")))
    except OSError as exc:
        raise InputError(f"cannot write {exc.filename}: {exc.strerror}") from None


# --------------------------------------------------------------------------------------


def run_when_all_done(on_all_done: Callable[[str], int], run_id: str, jobs_status: int) -> int:
    """Call ``on_all_done(run_id)`` once and fold its status into the launcher's exit code.

    A non-zero status of the step wins (it says what went wrong after the Jobs, e.g. a
    selection that found nothing to select); otherwise the Jobs' own status stands. The
    step's expected failures (``JobError``) are one line with their exit code.
    """
    name = getattr(on_all_done, "__name__", "the final step")
    print(f"launch: every Job of run {run_id} has ended; running {name}", flush=True)
    try:
        status = on_all_done(run_id)
    except JobError as exc:
        print(f"error: {name}: {escape(scrub.scrub(str(exc)), 400)}", file=sys.stderr)
        status = int(exc.exit_code)
    if isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= 255:
        print(f"error: {name} returned {escape(repr(status), 60)}, not an exit status", file=sys.stderr)
        status = int(Exit.JOB_FAILED)
    return status or jobs_status


def select_step(output: str, tasks: list[str]) -> Callable[[str], int]:
    """The final step of ``--watch``: ``python -m job select`` on the run's tasks, reading the
    bucket with the launcher's own credentials (the standard AWS environment)."""

    def select(run_id: str) -> int:
        from job.storage import Storage
        from job.storage.selection import print_selections, select_run

        return print_selections(select_run(Storage(), output, run_id, tasks))

    return select


def main(argv: list[str] | None = None, on_all_done: Callable[[str], int] | None = None) -> int:
    """``scripts/launch``. ``on_all_done(run_id) -> exit status``: run once by ``--watch`` when
    every Job of the run has ended (succeeded, failed or gone), never otherwise."""
    scrub.install_excepthook()  # a kubeconfig's server URL may carry user:password@
    try:
        args = build_parser().parse_args(argv)
        options, tasks, derived = options_from_args(args)
        jobs = render.render_jobs(options, tasks)
        check_with_job(jobs, options)
        if derived:
            print(
                f"launch: run id {options.run_id} "
                "(derived from image, strategy, overrides, model root; --run-id to choose)",
                file=sys.stderr,
            )
        write_outputs(jobs, options, args)
        if on_all_done is None and args.watch and not args.no_select:
            on_all_done = select_step(options.output, tasks)
        if args.apply or args.watch:
            cluster = Cluster(args.kubeconfig, args.context)
            if args.apply:
                apply_jobs(cluster, jobs, options.namespace)
            if args.watch:
                status = watch(cluster, jobs, options.namespace, options.run_id, args.interval)
                # watch returns only once every Job has ended; failures to watch raise instead.
                if on_all_done is not None:
                    status = run_when_all_done(on_all_done, options.run_id, status)
                return status
        return int(Exit.OK)
    except InputError as exc:
        print(f"error: {escape(scrub.scrub(str(exc)), 1000)}", file=sys.stderr)
        return int(Exit.INPUT)
    except ClusterError as exc:
        print(f"error: {escape(scrub.scrub(str(exc)), 1000)}", file=sys.stderr)
        return int(Exit.CLUSTER)
    except KeyboardInterrupt:
        print("error: interrupted (Jobs already created keep running)", file=sys.stderr)
        return 130
