#!/usr/bin/env python3
"""Does dropping whole layers cost less accuracy than pruning width? (issue 21, item 3)

    python -m job lab probe_depth --config configs/lab/probe_depth.yaml --out /work/probe/depth02

ACT's ``TransformerPrune`` prunes width only (heads and FFN neurons). This probe builds the
other cut by hand: a student with fewer encoder layers whose embeddings, kept layers and span
heads are the teacher checkpoint's own (``keep`` names the teacher's layers it keeps, in
order), exported as a static inference folder beside the teacher's export. It prints the job
overrides that distil the student from the teacher with ACT: ``Global.model_dir`` the
student, ``Distillation.teacher_model_dir`` the teacher and ``Distillation.node`` pairing the
two programs' span logits by name (their variable names need not match, so ACT's default
pairing is not used). Add a strategy with distillation (``qat_dis``, ``prune_ptq`` for width
pruning on top) and read the F1 in that run's ``results.json`` against the teacher's.

Exit codes: 0 done; 2 bad arguments or config.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_CONFIG = "configs/lab/probe_depth.yaml"
_LAYER_KEY = re.compile(r"^(.*\.encoder\.layers\.)(\d+)(\..*)$")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """``python -m job lab probe_depth``: the teacher, the layers its student keeps, where both go."""

    teacher: str = "teachers/uie-pico-pd199801"
    """Teacher checkpoint folder (``job.model.build.save_checkpoint``'s; ``--teacher``)."""
    keep: list[int] = dataclasses.field(default_factory=lambda: [0, 2])
    """The teacher's encoder layers the student keeps, increasing (``--keep 0,2``)."""
    out: str = "probe-depth"
    """Folder for ``teacher/`` and ``student/``, the two inference exports (``--out``)."""

    def check(self) -> None:
        from job.config import require

        require(bool(self.keep), "keep", "names at least one layer")
        require(self.keep == sorted(set(self.keep)) and self.keep[0] >= 0, "keep", "increasing layer numbers >= 0")


@dataclasses.dataclass(frozen=True)
class Built:
    teacher: Path
    student: Path
    overrides: list[str]  # the job overrides that distil the student from the teacher


def parser():
    from lab.cli import experiment_parser

    parser = experiment_parser("probe_depth", __doc__, DEFAULT_CONFIG, ROOT)
    parser.add_argument("--teacher", help="teacher checkpoint folder (default: teachers/uie-pico-pd199801)")
    parser.add_argument("--keep", help="the teacher's layers the student keeps, comma separated (default: 0,2)")
    parser.add_argument("--out", help="folder for the two exports (default: probe-depth)")
    return parser


def configure(argv: list[str]) -> Experiment:
    from job.errors import InputError
    from lab.cli import config_with_flags

    args = parser().parse_args(argv)
    if args.keep is not None:
        try:
            args.keep = [int(part) for part in args.keep.split(",")]
        except ValueError:
            raise InputError(f"--keep {args.keep!r}: not a comma-separated list of layer numbers") from None
    experiment = config_with_flags(args, Experiment, ("teacher", "keep", "out"))
    try:
        experiment.check()
    except Exception as exc:  # ConfigError: name the flag's key
        raise InputError(f"--keep {','.join(map(str, experiment.keep))}: {exc}") from None
    return experiment


def student_state(teacher_state: dict, keep: list[int]) -> dict:
    """The teacher's weights renumbered for a student holding only the ``keep`` layers."""
    new_index = {old: new for new, old in enumerate(keep)}
    state = {}
    for name, value in teacher_state.items():
        match = _LAYER_KEY.match(name)
        if match is None:
            state[name] = value
        elif int(match.group(2)) in new_index:
            state[f"{match.group(1)}{new_index[int(match.group(2))]}{match.group(3)}"] = value
    return state


def span_logits(folder: Path) -> list[str]:
    """The span logits of an exported UIE program (the inputs of its two sigmoids)."""
    from job.runtime import paddle

    paddle.enable_static()
    try:
        executor = paddle.static.Executor(paddle.CPUPlace())
        program, _, _ = paddle.static.load_inference_model(str(folder / "inference"), executor)
        return [op.input("X")[0] for op in program.global_block().ops if op.type == "sigmoid"]
    finally:
        paddle.disable_static()


def build(experiment: Experiment) -> Built:
    """Export the teacher and its layer-dropped student; the overrides that distil one from the other."""
    from paddlenlp.transformers import UIE, ErnieConfig

    from job.errors import InputError
    from job.model.build import export_model, load_checkpoint

    checkpoint, out = Path(experiment.teacher), Path(experiment.out)
    teacher = load_checkpoint(checkpoint)
    if type(teacher).__name__ != "UIE":
        raise InputError(f"{checkpoint}: not a UIE checkpoint (the probe pairs the span logits)")
    layers = teacher.config.num_hidden_layers
    if experiment.keep[-1] >= layers:
        raise InputError(f"keep {experiment.keep}: the teacher has {layers} layers (0 to {layers - 1})")
    config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    config["num_hidden_layers"] = len(experiment.keep)
    student = UIE(ErnieConfig(**config))
    missing, unexpected = student.set_state_dict(student_state(teacher.state_dict(), experiment.keep))
    if missing or unexpected:
        raise RuntimeError(f"the student's weights do not match: missing {missing}, unexpected {unexpected}")
    student.eval()
    export_model(teacher, checkpoint, out / "teacher")
    export_model(student, checkpoint, out / "student")
    pairs = []
    for teacher_name, student_name in zip(span_logits(out / "teacher"), span_logits(out / "student"), strict=True):
        pairs += [f"teacher_{teacher_name}", student_name]
    overrides = [
        f"Global.model_dir={out / 'student'}",
        f"Distillation.teacher_model_dir={out / 'teacher'}",
        f"Distillation.node=[{','.join(pairs)}]",
    ]
    return Built(out / "teacher", out / "student", overrides)


def main(argv: list[str]) -> int:
    experiment = configure(argv)
    built = build(experiment)
    print(f"student: the teacher's layers {experiment.keep} -> {built.student}")
    print(f"teacher: {built.teacher}")
    print("distil it (add a strategy with distillation and its training settings):")
    print("  python -m job run --config configs/uie_demo.yaml " + shlex.join(built.overrides))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
