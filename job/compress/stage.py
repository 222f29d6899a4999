"""The compression stage: PaddleSlim's AutoCompression (ACT) driven by the typed config.

The strategy picks ACT's sections (``job.config.STRATEGIES``); ACT then runs them in its
own order (pruning with distillation first, quantization last). Data reach ACT as
``paddle.io.DataLoader`` objects built with ``feed_list`` and ``return_list=False`` (its
post-training quantization refuses plain generators); the evaluation loader also carries
the labels, which the transformer pruner needs to score heads. The metric ACT optimises
is the task's own (span F1 or accuracy) on the dev split.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from job.compress import ffn_width, importance, int8, slim_patches
from job.config import JobConfig
from job.data.tasks import Task
from job.errors import InputError
from job.evaluate import ModelFiles
from job.program import is_quantized, program_inputs
from job.runtime import paddle

__all__ = [
    "Calibration",
    "CompressResult",
    "act_config",
    "calibration",
    "check_distillation_nodes",
    "distillation_teacher",
    "run",
]

log = logging.getLogger("job.compress")


@dataclass
class CompressResult:
    model: ModelFiles
    strategy: str
    act_strategies: list[str]
    seconds: float
    dev_metric: float | None
    patches: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)
    int8_scope: int8.RestrictResult | None = None  # what the published program keeps in INT8
    calibration: Calibration | None = None  # what PTQ calibrated on (None: no PTQ)


@dataclass(frozen=True)
class Calibration:
    """The training examples post-training quantization calibrates on."""

    batches: int  # 0: every batch of the train split
    batch_size: int
    fixed: bool  # the same seeded sample on every pass (hist makes two) and every search trial
    examples: int

    def describe(self) -> str:
        sample = "one fixed seeded sample" if self.fixed else "drawn from the shuffled train loader"
        return f"{self.examples} training examples ({self.batches or 'all'} batches of {self.batch_size}, {sample})"


def calibration(cfg: JobConfig, train_examples: int) -> Calibration | None:
    """How many training batches PTQ reads (``QuantPost.batch_nums``; a search reads up to the
    top of ``HyperParameterOptimization.batch_num``). Without training sections in the
    strategy the train loader *is* the calibration sample, so it is cut to that many batches
    and fixed; after pruning with distillation ACT calibrates from the training loader."""
    sections = cfg.act_sections()
    if "QuantPost" not in sections:
        return None
    if "HyperParameterOptimization" in sections:
        batches = max(sections["HyperParameterOptimization"]["batch_num"])
    else:
        batches = sections["QuantPost"]["batch_nums"] or 0
    size = cfg.Global.batch_size
    available = (train_examples + size - 1) // size
    batches = min(batches, available) if batches else 0
    fixed = not any(name in sections for name in ("Distillation", "QuantAware", "TransformerPrune"))
    examples = min(train_examples, batches * size) if batches else train_examples
    return Calibration(batches, size, fixed, examples)


def distillation_teacher(cfg: JobConfig, folder: Path) -> ModelFiles:
    """``Distillation.teacher_model_dir``'s model (``folder``: its local copy), checked; its
    file names default to the original's (``Global.model_filename``, ``params_filename``)."""
    distillation = cfg.Distillation
    assert distillation is not None
    return ModelFiles(
        folder,
        distillation.teacher_model_filename or cfg.Global.model_filename,
        distillation.teacher_params_filename or cfg.Global.params_filename,
    ).check()


def check_distillation_nodes(cfg: JobConfig, model: ModelFiles, teacher: ModelFiles | None) -> None:
    """``Distillation.node`` names variables ACT can pair, or an InputError in one line (ACT
    itself fails deep in its graph merge with an assertion). Names of the original's program
    are paired with the same name in the teacher's (``teacher_`` added); a list whose first
    name is not the original's is taken as given: even length, ``teacher_<teacher's>``
    then the original's, pair by pair."""
    from job.program import program_desc

    sections = cfg.act_sections()
    nodes = cfg.Distillation.node if cfg.Distillation is not None and "Distillation" in sections else []
    if not nodes:
        return
    teacher = teacher or model

    def names(files: ModelFiles) -> set[str]:
        return {var.name for block in program_desc(files.program).blocks for var in block.vars}

    student_names, teacher_names = names(model), names(teacher)
    where = f"{cfg.source}: Distillation.node"
    if nodes[0] in student_names:
        pairs = [(f"teacher_{name}", name) for name in nodes]
    elif len(nodes) % 2:
        raise InputError(
            f"{where}: {nodes[0]!r} is not a variable of the original model ({model.program}), and a list "
            f"of teacher/student pairs has an even length, not {len(nodes)}"
        )
    else:
        pairs = list(zip(nodes[::2], nodes[1::2], strict=True))
    for teacher_node, student_node in pairs:
        if student_node not in student_names:
            raise InputError(f"{where}: {student_node!r} is not a variable of the original model ({model.program})")
        name = teacher_node.removeprefix("teacher_")
        if not teacher_node.startswith("teacher_") or name not in teacher_names:
            raise InputError(
                f"{where}: {teacher_node!r} is not teacher_ and a variable of the teacher ({teacher.program})"
            )


def act_config(cfg: JobConfig, teacher: ModelFiles | None = None) -> dict[str, Any]:
    """The dict handed to AutoCompression: the strategy's sections plus TrainConfig, the
    distillation teacher (``teacher``: the pulled ``Distillation.teacher_model_dir``) named
    by its local folder and both its file names."""
    # Fresh dicts all the way down (asdict): ACT pops keys as it reads them (a schedule's
    # and the optimizer's 'type'), and the job's config is what results.json records.
    config: dict[str, Any] = cfg.act_sections()
    for section in config.values():
        # ACT fills these from Global when absent; None values would override that.
        for key in ("teacher_model_dir", "teacher_model_filename", "teacher_params_filename"):
            if key in section and section[key] is None:
                section.pop(key)
    if "TransformerPrune" in config:
        # The job's own keys: ACT's TransformerPrune takes pruned_ratio alone (job.compress.ffn_width,
        # job.compress.importance).
        config["TransformerPrune"].pop("ffn_pruned_ratio", None)
        config["TransformerPrune"].pop("importance", None)
    if "Distillation" in config and teacher is not None:
        # ACT reads a teacher folder without file names as a path prefix (<dir>.pdmodel).
        config["Distillation"].update(
            teacher_model_dir=str(teacher.folder),
            teacher_model_filename=teacher.model_filename,
            teacher_params_filename=teacher.params_filename,
        )
    if cfg.TrainConfig is not None:
        train = {k: v for k, v in asdict(cfg.TrainConfig).items() if v is not None}
        # The job checks origin_metric itself, through Paddle Inference, before ACT starts.
        train.pop("origin_metric", None)
        config["TrainConfig"] = train
    return config


class _Batches(paddle.io.BatchSampler):
    """Length-bucketed index batches of one split, reshuffled every epoch."""

    def __init__(
        self, task: Task, split: str, batch_size: int, shuffle: bool, seed: int, limit: int = 0, fixed: bool = False
    ):
        self.task, self.split, self.batch_size, self.shuffle, self.seed = task, split, batch_size, shuffle, seed
        self.limit = limit
        self.fixed = fixed  # the same batches every pass: a calibration sample, not training epochs
        self.epoch = 0

    def __iter__(self):
        from job.data.tasks import bucketed

        groups = bucketed(
            self.task.lengths(self.split), self.batch_size, shuffle=self.shuffle, seed=self.seed + self.epoch
        )
        if not self.fixed:
            self.epoch += 1
        if self.limit:
            groups = groups[: self.limit]
        for group in groups:
            yield [int(i) for i in group]

    def __len__(self) -> int:
        count = (self.task.size(self.split) + self.batch_size - 1) // self.batch_size
        return min(count, self.limit) if self.limit else count


class _Indices(paddle.io.Dataset):
    def __init__(self, size: int):
        self.size = size

    def __getitem__(self, index: int) -> int:
        return index

    def __len__(self) -> int:
        return self.size


def _loader(
    task: Task,
    split: str,
    names: list[str],
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    limit: int = 0,
    fixed: bool = False,
):
    """A DataLoader that yields ``[{name: tensor}]`` for the given feed names."""
    feeds = []
    for name in names:
        dtype = "int64" if name in task.input_names else task.label_dtype
        shape = [-1, 1] if (name == "labels") else [-1, -1]
        feeds.append(paddle.static.data(name=name, shape=shape, dtype=dtype))

    def collate(indices: list[int]) -> list[np.ndarray]:
        batch = task.collate(split, np.asarray(indices))
        return [batch[name] for name in names]

    return paddle.io.DataLoader(
        _Indices(task.size(split)),
        batch_sampler=_Batches(task, split, batch_size, shuffle, seed, limit, fixed),
        collate_fn=collate,
        feed_list=feeds,
        return_list=False,
        num_workers=0,
    )


def run(
    cfg: JobConfig, model: ModelFiles, task: Task, workdir: Path, teacher: ModelFiles | None = None
) -> CompressResult:
    """Compress ``model`` as ``cfg`` says, distilling from ``teacher`` when given (the pulled
    ``Distillation.teacher_model_dir``; else ACT's default, the model itself); the result
    lands in ``workdir/compressed``."""
    from paddleslim.auto_compression import AutoCompression

    slim_patches.apply()
    strategy = cfg.strategy
    if teacher is None and cfg.Distillation is not None and cfg.Distillation.teacher_model_dir:
        teacher = distillation_teacher(cfg, Path(cfg.Distillation.teacher_model_dir))
    config = act_config(cfg, teacher)
    if "HyperParameterOptimization" in config:
        _require_smac()
    out_dir = workdir / "compressed"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    started = time.perf_counter()
    paddle.enable_static()
    try:
        feed_names = program_inputs(model)
        missing = [name for name in feed_names if name not in task.input_names]
        if missing:
            raise InputError(
                f"{model.folder}: the model's inputs {missing} are not inputs of task {task.name} "
                f"({', '.join(task.input_names)})"
            )
        batch_size = cfg.Global.batch_size
        calib = calibration(cfg, task.size("train"))
        if calib and calib.fixed:
            train_loader = _loader(
                task, "train", feed_names, batch_size, shuffle=True, seed=cfg.Job.seed, limit=calib.batches, fixed=True
            )
        else:
            train_loader = _loader(task, "train", feed_names, batch_size, shuffle=True, seed=cfg.Job.seed)
        if calib:
            log.info("PTQ calibrates on %s", calib.describe())
        eval_loader = _loader(task, "dev", feed_names + list(task.label_names), batch_size, shuffle=False, seed=0)
        dev_metric: dict[str, float] = {}

        def eval_callback(exe, program, feed_target_names, fetch_targets) -> float:
            def outputs(batch):
                return [
                    np.asarray(o)
                    for o in exe.run(
                        program, feed={name: batch[name] for name in feed_target_names}, fetch_list=fetch_targets
                    )
                ]

            values = task.score("dev", batch_size, outputs)
            dev_metric["last"] = float(values[task.metric])
            log.info("ACT evaluation on dev: %s %.4f", task.metric, values[task.metric])
            return float(values[task.metric])

        log.info("compressing %s with strategy %s (ACT sections: %s)", model.folder, strategy, ", ".join(config))
        # ACT's search writes smac3-output_* into the working directory: keep it in ours.
        with _quiet_stdout(), _working_directory(workdir):
            act = AutoCompression(
                model_dir=str(model.folder),
                model_filename=model.model_filename,
                params_filename=model.params_filename,
                save_dir=str(out_dir),
                config=config,
                train_dataloader=train_loader,
                eval_callback=eval_callback,
                eval_dataloader=eval_loader,
                deploy_hardware="gpu" if cfg.Job.device == "gpu" else "cpu",
            )
            act_strategies = list(act._strategy)
            prune = cfg.TransformerPrune if "TransformerPrune" in config else None
            ffn_ratio = prune.ffn_pruned_ratio if prune is not None else None
            scoring = prune.importance if prune is not None else "paddleslim"
            with ffn_width.pruned(ffn_ratio), importance.scored(scoring, task.label_names, task.label_dtype):
                act.compress()
            final_metric = getattr(act, "final_metric", None)
    finally:
        paddle.disable_static()
    seconds = time.perf_counter() - started
    result_model = ModelFiles(out_dir, model.model_filename, model.params_filename).check()
    removed = slim_patches.drop_duplicate_output_scales(result_model.program)
    log.debug("dropped %d duplicate output scale ops from %s", removed, result_model.program)
    scope = None
    if is_quantized(result_model):
        # The program is the contract every consumer serves from: INT8 only where it is accurate.
        scope = int8.restrict(result_model.program, cfg.Job.int8_scope, weight_storage=cfg.Job.weights)
    log.info("ACT %s done in %.1f s: %s", "+".join(act_strategies), seconds, result_model.folder)
    selection_metric = final_metric if final_metric is not None and final_metric >= 0 else dev_metric.get("last")
    return CompressResult(
        result_model,
        strategy,
        act_strategies,
        seconds,
        selection_metric,
        slim_patches.applied(),
        int8_scope=scope,
        calibration=calib,
    )


def _require_smac() -> None:
    try:
        from importlib.metadata import version

        found = version("smac")
    except Exception:
        found = None
    if found != "1.4.0":
        raise InputError(
            f"HyperParameterOptimization needs smac==1.4.0 (found {found or 'none'}); "
            "scripts/setup.sh installs it where a C++ compiler is available"
        )


@contextlib.contextmanager
def _working_directory(path: Path):
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def _quiet_stdout():
    """PaddleSlim prints progress with print(); keep it out of the job's stdout summary
    unless debugging (it still reaches the log at debug level)."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield
    for line in buffer.getvalue().splitlines():
        log.debug("paddleslim: %s", line)
