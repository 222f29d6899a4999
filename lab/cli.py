"""``python -m job lab <experiment>``: the lab's experiments, each a module with a typed
``Experiment`` config (``configs/lab/<experiment>.yaml``), a ``parser()`` of flags that
override it for one run, and ``main(argv)``.

``job/__main__.py`` imports this module lazily (the image ships only ``job/``); nothing
else under ``job/`` imports the lab.
"""

from __future__ import annotations

import argparse
import importlib
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from job.errors import InputError

__all__ = ["EXPERIMENTS", "config_with_flags", "experiment_parser", "main", "usage"]

# Experiment name (the command's argument) -> its module.
EXPERIMENTS = {
    "bench_uie_base": "lab.bench_uie_base",
    "probe_attention_int8": "lab.probe_attention_int8",
    "demo_table": "lab.demo_table",
    "load_pull": "lab.load_pull",
    "resume_check": "lab.resume_check",
    "probe_int8_weights": "lab.probe_int8_weights",
    "job_footprint": "lab.job_footprint",
    "probe_depth": "lab.probe_depth",
    "headline_check": "lab.headline_check",
}


def experiment_parser(name: str, doc: str | None, default_config: str, root: Path) -> argparse.ArgumentParser:
    """The parser every experiment starts from: its name, summary and ``--config``; the
    experiment adds its own flags, each overriding one key of the config for one run."""
    from job.cli import Parser

    parser = Parser(
        prog=f"python -m job lab {name}",
        description=(doc or "").split("\n\n")[0],
        epilog=f"Settings: {default_config} (every key documented there).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        default=str(root / default_config),
        metavar="FILE",
        help=f"the experiment (default: {default_config})",
    )
    return parser


def config_with_flags(args: argparse.Namespace, experiment_cls: type, flags: Iterable[str]) -> Any:
    """The experiment ``args.config`` states, with each of ``flags`` given on the command
    line (an ``args`` attribute of the key's name, not None) in place of its key."""
    import dataclasses

    from job.config import load_dataclass

    experiment = load_dataclass(args.config, experiment_cls)
    given = {key: getattr(args, key) for key in flags if getattr(args, key) is not None}
    return dataclasses.replace(experiment, **given)


def usage() -> str:
    """``python -m job lab --help``: every experiment, what it measures and its config."""
    lines = [
        "usage: python -m job lab EXPERIMENT [--config FILE] [flags]",
        "",
        "Run a lab experiment: benchmarks, probes and tables that measure what the job",
        "publishes (from a source checkout: the lab lives in lab/, beside job/).",
        "Flags of one experiment: python -m job lab EXPERIMENT --help",
        "",
        "experiments:",
    ]
    for name, module_name in EXPERIMENTS.items():
        module = importlib.import_module(module_name)
        lines.append(f"  {name}")
        summary = " ".join((module.__doc__ or "").strip().split("\n\n")[0].split())
        lines.append(textwrap.fill(summary, 100, initial_indent=" " * 6, subsequent_indent=" " * 6))
        lines.append(f"      config: {module.DEFAULT_CONFIG}")
    return "\n".join(lines)


def main(experiment: str | None, argv: list[str]) -> int:
    """Run ``experiment`` with ``argv`` (its flags); bad input raises ``InputError`` / ``ConfigError``."""
    if not experiment:
        raise InputError(f"python -m job lab: an experiment is required: {', '.join(EXPERIMENTS)} (see --help)")
    if experiment not in EXPERIMENTS:
        raise InputError(
            f"python -m job lab: no experiment named {experiment!r}; "
            f"choose one of {', '.join(EXPERIMENTS)} (see --help)"
        )
    return int(importlib.import_module(EXPERIMENTS[experiment]).main(list(argv)))
