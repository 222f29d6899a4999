"""``scripts/pull``: list and download the job's results from object storage (or a local
output folder), every file verified against its task's manifest.

  scripts/pull list OUTPUT [--run RUN]
      every <run>/<task>/<strategy> under OUTPUT with its state (complete, incomplete, unsafe)
  scripts/pull get OUTPUT --run RUN [--task T] [--strategy S] [--dest DIR] [--force]
      download every complete task of the run into DIR/<run>/<task>/<strategy>/,
      verify each file's SHA-256 against the task's manifest, print the results table
  scripts/pull get OUTPUT --run RUN --selected [--task T] [--dest DIR] [--force]
      the same for the selected model of each task only (its verified selected.json)

Light dependencies only (pyyaml, boto3, tqdm; no paddle): runs from ``.venv-light``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from job import tables
from job.cli import Parser
from job.config import StorageConfig
from job.errors import ExitCode, InputError, JobError
from job.logs import BOTO_LOGGERS
from job.storage import Storage, TaskStatus, format_size, list_runs, pull_task, scrub
from job.storage.download import destination_lock
from job.storage.locations import escape, is_safe_name
from job.storage.manifest import INVALID, UNSAFE

__all__ = ["build_parser", "main"]

log = logging.getLogger("pull")

_EPILOG = """\
storage settings:
  --endpoint-url and --region, else the standard AWS environment: AWS_ENDPOINT_URL_S3 or
  AWS_ENDPOINT_URL, AWS_REGION or AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID and
  AWS_SECRET_ACCESS_KEY (or a profile), AWS_RETRY_MODE, AWS_MAX_ATTEMPTS.

what a pull writes:
  each task folder DIR/<run>/<task>/<strategy>/ ends up holding exactly the files its
  manifest lists, manifest.json and _SUCCESS: an earlier pull there is replaced as a
  whole; a non-empty folder that is not an earlier pull is refused unless --force.
  Task folders whose names or manifests are unsafe (e.g. '..', two paths that are one name on
  a case-insensitive file system) or invalid (a manifest or results.json that is not JSON of
  its schema, larger than 8 MiB, nested too deeply) are refused, never written; the other
  tasks are still pulled. One pull at a time writes into DIR: it holds DIR/.act-pull.lock;
  a second one is refused (or waits, with --wait).

examples:
  scripts/pull list s3://models/act --endpoint-url http://minio:9000
  scripts/pull get s3://models/act --run 2024-06-01 --task uie --dest ./pulled
  scripts/pull get s3://models/act --run 2024-06-01 --selected --dest ./deploy

exit codes:
  0 ok, 1 internal error, 2 bad input (flags, nothing to pull, an unsafe or invalid task
  folder, another pull writing into DIR, a problem of the local destination), 4 object storage error
"""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("output", metavar="OUTPUT", help="the job's output root: s3://bucket/prefix or a local folder")
    common.add_argument(
        "--endpoint-url",
        default="",
        metavar="URL",
        help="S3 endpoint (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL or AWS)",
    )
    common.add_argument("--region", default="", help="region (default: $AWS_REGION, $AWS_DEFAULT_REGION or us-east-1)")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    parser = Parser(
        prog="scripts/pull",
        description="List and download the compression job's results from object storage (or a local output folder).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_EPILOG,
    )
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=Parser)
    ls = sub.add_parser(
        "list",
        parents=[common],
        help="list runs and tasks with their state",
        description="List every <run>/<task>/<strategy> under OUTPUT with its state.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ls.add_argument("--run", metavar="RUN", help="only this run id")
    get = sub.add_parser(
        "get",
        parents=[common],
        help="download the complete tasks of a run",
        description=(
            "Download every complete task of a run (incomplete ones are skipped with a warning), "
            "verify every file against its manifest, print the results table."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    get.add_argument("--run", required=True, metavar="RUN", help="run id (see `scripts/pull list`)")
    get.add_argument("--task", metavar="TASK", help="only this task (e.g. uie, tnews)")
    get.add_argument("--strategy", metavar="STRATEGY", help="only this strategy (e.g. ptq, qat_dis)")
    get.add_argument(
        "--dest", default=".", metavar="DIR", help="download into DIR/<run>/<task>/<strategy>/ (default: .)"
    )
    get.add_argument(
        "--force",
        action="store_true",
        help="replace task folders in DIR that hold something other than an earlier pull",
    )
    get.add_argument("--no-progress", action="store_true", help="no progress bars")
    get.add_argument(
        "--selected",
        action="store_true",
        help="only the model `python -m job select` chose for each task (tasks with none are reported, exit 2)",
    )
    get.add_argument(
        "--wait",
        action="store_true",
        help="when another pull is writing into DIR, wait for it to end (default: refuse at once, exit 2)",
    )
    return parser


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (kill, a pod's shutdown) unwinds like Ctrl-C, so temp folders are removed."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    scrub.install_excepthook()
    signal.signal(signal.SIGTERM, _terminate)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return int(ExitCode.INPUT)
        _setup_logging(args.verbose)
        storage = Storage(StorageConfig(endpoint_url=args.endpoint_url, region=args.region))
        if args.command == "list":
            return _list(storage, args)
        if args.selected:
            return _get_selected(storage, args)
        return _get(storage, args)
    except JobError as exc:
        log.debug("failed", exc_info=True)
        print(f"error: {scrub.scrub(escape(str(exc), 1000))}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    # botocore's DEBUG output holds request headers: keep it at INFO even when verbose.
    for noisy in BOTO_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)
    scrub.install()


def _list(storage: Storage, args: argparse.Namespace) -> int:
    tasks = list_runs(storage, args.output, run_id=args.run)
    if not tasks:
        where = f"{args.output} (run {args.run})" if args.run else args.output
        print(f"no tasks under {escape(where)}", file=sys.stderr)
        return 0
    rows = [("run", "task", "strategy", "state"), *((t.run_id, t.task, t.strategy, t.state) for t in tasks)]
    for line in tables.text(rows):
        print(line)
    complete = sum(t.state == "complete" for t in tasks)
    print(f"{len(tasks)} tasks, {complete} complete")
    return 0


def _get(storage: Storage, args: argparse.Namespace) -> int:
    tasks = [
        t
        for t in list_runs(storage, args.output, run_id=args.run)
        if (args.task is None or t.task == args.task) and (args.strategy is None or t.strategy == args.strategy)
    ]
    wanted = " ".join(f"{k} {v}" for k, v in (("run", args.run), ("task", args.task), ("strategy", args.strategy)) if v)
    if not tasks:
        raise InputError(
            f"nothing under {escape(args.output)} for {escape(wanted)} (see `scripts/pull list {escape(args.output)}`)"
        )
    complete = [t for t in tasks if t.state == "complete"]
    unsafe = [t for t in tasks if t.state in (UNSAFE, INVALID)]
    for t in unsafe:
        print(_refusal(t), file=sys.stderr)
    if not complete and not unsafe:
        raise InputError(f"no complete task to pull for {escape(wanted)} ({len(tasks)} incomplete)")
    for t in tasks:
        if t.state not in ("complete", UNSAFE, INVALID):
            print(f"warning: skipping {t.name}: {t.state}", file=sys.stderr)
    dest_root = Path(args.dest)
    with destination_lock(dest_root, wait=args.wait):
        return _pull_all(storage, args, tasks, complete, unsafe)


def _refusal(t: TaskStatus) -> str:
    """One line for a task folder refused as unsafe or invalid, with why (already escaped)."""
    kind = "an unsafe" if t.state == UNSAFE else "an invalid"
    why = t.reason or "a name or a manifest path that is not safe"
    return f"error: refusing {t.name}: {kind} task folder ({why}); nothing of it is written"


def _pull_all(
    storage: Storage,
    args: argparse.Namespace,
    tasks: list[TaskStatus],
    complete: list[TaskStatus],
    unsafe: list[TaskStatus],
) -> int:
    """Pull every complete task (the caller holds the destination's lock); one task's failure
    does not stop the others."""
    from job.report import summary_table

    dest_root = Path(args.dest)
    results, files, size, seconds = [], 0, 0, 0.0
    failed: list[JobError] = []
    pulled_tasks = 0
    for t in complete:
        try:
            pulled = pull_task(
                storage,
                t.prefix,
                dest_root / t.run_id / t.task / t.strategy,
                within=dest_root,
                force=args.force,
                progress=not args.no_progress,
                take_lock=False,
            )
        except JobError as exc:  # one task's failure does not stop the others
            log.debug("failed", exc_info=True)
            print(f"error: {t.name}: {scrub.scrub(escape(str(exc), 1000))}", file=sys.stderr)
            failed.append(exc)
            continue
        pulled_tasks += 1
        print(pulled.summary(), file=sys.stderr)
        files, size, seconds = files + pulled.files, size + pulled.bytes, seconds + pulled.seconds
        if pulled.result is not None:  # checked against its schema before the folder was installed
            results.append(pulled.result)
    if results:
        print(summary_table(results))
        print()
    skipped = len(tasks) - len(complete) - len(unsafe)
    print(
        f"pulled {pulled_tasks} tasks ({files} files, {format_size(size)}) into {dest_root} in {seconds:.1f} s"
        + (f"; skipped {skipped} incomplete" if skipped else "")
        + (f"; {len(unsafe) + len(failed)} refused or failed" if unsafe or failed else "")
    )
    codes = [int(ExitCode.INPUT)] * len(unsafe) + [int(exc.exit_code) for exc in failed]
    return max(codes, default=0)


def _get_selected(storage: Storage, args: argparse.Namespace) -> int:
    """``get --selected``: each task's selected model, pulled as ``get`` pulls a task; a task
    without a verified selection, or whose selection chose nothing, is reported (exit 2 at end)."""

    if args.strategy:
        raise InputError("--selected pulls the strategy each task's selection names: leave out --strategy")
    folders = {(t.task, t.strategy): t for t in list_runs(storage, args.output, run_id=args.run)}
    names = [args.task] if args.task else sorted({task for task, _ in folders if is_safe_name(task)})
    if not names:
        raise InputError(f"nothing under {escape(args.output)} for run {escape(args.run)}")
    with destination_lock(Path(args.dest), wait=args.wait):
        return _pull_selected(storage, args, folders, names)


def _pull_selected(storage: Storage, args: argparse.Namespace, folders: dict, names: list[str]) -> int:
    """Pull each named task's selected folder (the caller holds the destination's lock)."""
    from job.storage.selection import DEPLOY, read_selection, selection_prefix, serve_with

    codes, pulled_tasks = [], 0
    for task in names:
        try:
            selection = read_selection(storage, args.output, args.run, task)
            if selection.selected is None:
                raise InputError(f"{args.run}/{task}: the selection chose no model: {escape(selection.reason)}")
            folder = folders.get((task, selection.selected))
            if folder is None or folder.state != "complete":
                state = folder.state if folder else "absent"
                raise InputError(f"{args.run}/{task}/{selection.selected}: the selected model is {state}")
            dest = Path(args.dest) / args.run / task / selection.selected
            pulled = pull_task(
                storage,
                folder.prefix,
                dest,
                within=Path(args.dest),
                force=args.force,
                progress=not args.no_progress,
                take_lock=False,
            )
        except JobError as exc:  # one task's failure does not stop the others
            print(f"error: {scrub.scrub(escape(str(exc), 1000))}", file=sys.stderr)
            codes.append(int(exc.exit_code))
            continue
        pulled_tasks += 1
        print(f"{args.run}/{task}: selected {selection.selected}; {pulled.summary()}")
        # the runtime comes from a verified selected.json whose values select.py checks (known names only)
        folder = scrub.scrub(escape(selection_prefix(args.output, args.run, task), 300))
        print(
            f"{args.run}/{task}: serve with {serve_with(selection)}; its loading code: {DEPLOY} in {folder}/ "
            "(MODEL.md in the folder has every runtime's)"
        )
    print(f"pulled the selected model of {pulled_tasks} of {len(names)} tasks into {args.dest}")
    return max(codes, default=0)
