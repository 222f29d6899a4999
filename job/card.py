"""The model card (``MODEL.md``) of a published folder, rendered from its results.json.

``render(result)`` is pure: every figure in the card is read from the ``TaskResult`` (the
test ``tests/test_card.py`` parses the card back and compares), nothing is measured or
looked up here. The card says what the model is and where it came from, how accurate it
is on which data, how it is served, how fast and how large it is against its original on
which hardware (``result.latency``; "not measured" when a result has none), every CPU
runtime row (``result.runtimes``: Paddle Inference as Taskflow serves it, OpenVINO at its
default precision and at f32, each measured, gated, refused or skipped), how to load it
(PaddleNLP Taskflow for UIE, Paddle Inference for classifiers, and OpenVINO for each setting
the model was measured and passed in) and its known limits.

``render_deploy(selection, result)`` is the selection's deployment card (``DEPLOY.md``
beside ``selected.json``): the strategy, the runtime and setting to serve it with, its
figures as ``selected.json`` holds them, and that runtime's loading code.

Light on purpose (stdlib, ``job.results``, ``job.data.clue``'s label table): readers of
pulled results may render cards without paddle.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from job.results import Latency, RuntimeFigures, TaskResult, Timing

if TYPE_CHECKING:
    from job.select import Selection

__all__ = ["DEPLOY_FILENAME", "FILENAME", "render", "render_deploy"]

FILENAME = "MODEL.md"
DEPLOY_FILENAME = "DEPLOY.md"

# The ACT sections each strategy runs (job.config.STRATEGIES; kept here so that the card
# needs no config import, and checked equal by tests/test_card.py).
_STRATEGY_SECTIONS = {
    "qat_dis": ("QuantAware", "Distillation"),
    "ptq": ("QuantPost",),
    "ptq_hpo": ("QuantPost", "HyperParameterOptimization"),
    "prune_dis": ("TransformerPrune", "Distillation"),
    "prune_ptq": ("TransformerPrune", "Distillation", "QuantPost", "HyperParameterOptimization"),
}
_NOT_MEASURED = "not measured"
_UNSAFE = re.compile(r"[\x00-\x1f\x7f`|<>]")


def render(result: TaskResult, *, prefix: str = "") -> str:
    """``MODEL.md`` for the folder ``<prefix>/<run_id>/<task>/<strategy>/`` holding
    ``result``. ``prefix`` is the job's output root (``Job.output``, a local folder or
    ``s3://bucket/prefix``); empty: the one recorded in the result's config."""
    root = prefix or _config(result, "Job", "output") or ""
    folder = "/".join(part.rstrip("/") for part in (root, result.run_id, result.task, result.strategy) if part)
    sections = [
        _title(result),
        _origin(result, folder),
        _accuracy(result),
        _speed_and_size(result),
        _runtimes(result),
        _loading(result, root),
        _limits(result),
    ]
    return "\n\n".join(section.rstrip("\n") for section in sections) + "\n"


# --------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------


def _title(result: TaskResult) -> str:
    status = {
        "complete": "passed its accuracy gate and was published complete (`_SUCCESS` present)",
        "gated": "**failed its accuracy gate**: published for inspection, without `_SUCCESS`; not for deployment",
        "failed": f"the task failed before it was measured ({_safe(result.error) or 'no reason recorded'})",
    }[result.status]
    return (
        f"# {_safe(result.model_name)}: {_safe(result.task)} compressed with `{_safe(result.strategy)}`\n\n"
        f"Status: **{result.status}**: {status}."
    )


def _origin(result: TaskResult, folder: str) -> str:
    original = result.models.original
    source = _safe(original.source) if original and original.source else "not recorded"
    act_sections = [s for s in _STRATEGY_SECTIONS.get(result.strategy, ()) if s in result.config]
    lines = [
        "## What it is",
        "",
        f"- Original model: {_safe(result.model_name)} (source: {source})",
        f"- Task: {_safe(result.task)}; metric: {_safe(result.metric) or 'not recorded'}",
        f"- Strategy: `{_safe(result.strategy)}`; ACT sections: {', '.join(act_sections) or 'none recorded'}; "
        f"ACT strategies run: {' + '.join(_safe(s) for s in result.act_strategies) or 'none recorded'}",
        f"- Run id: `{_safe(result.run_id)}`; created {_safe(result.created) or 'not recorded'}",
        f"- Config fingerprint: `{_safe(result.config_fingerprint) or 'not recorded'}` "
        "(SHA-256 of the resolved config and its inputs, in `results.json`)",
    ]
    if folder:
        lines.append(f"- Published at: `{_safe(folder, 300)}`")
    versions = ", ".join(
        f"{name} {_safe(result.versions[name])}"
        for name in ("paddlepaddle", "paddleslim", "paddlenlp")
        if name in result.versions
    )
    if versions:
        lines.append(f"- Built with: {versions}")
    return "\n".join(lines)


def _accuracy(result: TaskResult) -> str:
    lines = ["## Accuracy", ""]
    evaluation, gate = result.evaluation, result.gate
    if result.after is None:
        return "\n".join([*lines, "Not measured: the task failed before its evaluation."])
    compressed = result.models.compressed
    serving = _safe(compressed.serving) if compressed and compressed.serving else "serving not recorded"
    if evaluation is None:
        lines.append("The split it was scored on is not recorded in this results.json. Points are the metric x 100.")
    else:
        examples = f"{evaluation.examples:,}" if evaluation.examples is not None else "an unrecorded number of"
        lines.append(
            f"Scored on the **{_safe(evaluation.split)}** split ({examples} examples) through "
            f"{_safe(evaluation.runtime)} on {_safe(evaluation.device)} ({serving}). Points are the metric x 100."
        )
    lines += ["", "| metric | original | compressed | change (points) |", "|---|---:|---:|---:|"]
    before, after = result.before or {}, result.after or {}
    keys = [result.metric] + [k for k in ("precision", "recall") if k != result.metric and k in after]
    for key in keys:
        old, new = _number(before.get(key)), _number(after.get(key))
        change = _fmt((new - old) * 100, "{:+.2f}") if old is not None and new is not None else "-"
        lines.append(f"| {_safe(key)} | {_points(old)} | {_points(new)} | {change} |")
    if gate is not None:
        verdict = "passed" if gate.passed else "failed"
        lines += ["", f"Accuracy gate: at most {gate.tolerance:.2f} points lost; {verdict}."]
    return "\n".join(lines)


def _speed_and_size(result: TaskResult) -> str:
    original, compressed = result.models.original, result.models.compressed
    latency = result.latency
    lines = ["## Serving, speed and size", ""]
    rows = [("", "original", "compressed")]
    rows.append(("precision served", _text(original and original.precision), _served(compressed)))
    if latency is None:
        rows.append(("latency, median (ms per batch)", _NOT_MEASURED, _NOT_MEASURED))
        rows.append(("throughput (examples/s)", _NOT_MEASURED, _NOT_MEASURED))
    else:
        rows.append(("latency, median (ms per batch)", *_timings(latency, "latency_ms", "{:.2f}")))
        rows.append(("latency, p90 (ms per batch)", *_timings(latency, "p90_ms", "{:.2f}")))
        rows.append(("throughput (examples/s)", *_timings(latency, "throughput", "{:.1f}")))
    rows.append(("folder size (bytes)", _count(original, "size_bytes"), _count(compressed, "size_bytes")))
    rows.append(("served weight memory (bytes)", _count(original, "weight_bytes"), _count(compressed, "weight_bytes")))
    rows.append(("parameters", _count(original, "params"), _count(compressed, "params")))
    lines += [f"| {' | '.join(row)} |" for row in rows[:1]]
    lines.append("|---|---:|---:|")
    lines += [f"| {' | '.join(row)} |" for row in rows[1:]]
    lines.append("")
    if latency is None:
        lines.append(
            "Latency: not measured for this result (the benchmark was off, the task failed, or results.json "
            "predates schema 3)."
        )
    else:
        speedup = f"{latency.speedup:.2f}x" if latency.speedup is not None else _NOT_MEASURED
        verdict = "faster" if latency.faster() else "**not faster** than the original"
        lines.append(
            f"Speedup {speedup} (original median / compressed median): {verdict}. Measured in one process on "
            f"{_safe(latency.hardware) or 'unrecorded hardware'}: {_safe(latency.device)}, {_safe(latency.runtime)}"
            f"{' (' + _safe(latency.backend) + ')' if latency.backend else ''}, batch {latency.batch_size}, "
            f"sequence length {latency.seq_len}, {latency.threads} threads, {latency.warmup} warm-up and "
            f"{latency.repeats} timed runs."
        )
    return "\n".join(lines)


def _runtimes(result: TaskResult) -> str:
    lines = ["## Runtimes", ""]
    if not result.runtimes:
        lines.append(
            "No runtime rows in this results.json (schema 3 or earlier, a GPU run, or runtimes not measured): "
            "the Paddle Inference figures above are the ones measured."
        )
        return "\n".join(lines)
    lines += [
        "The folder as each CPU runtime serves it, measured by the job in the run on the gate's split: Paddle "
        "Inference as Taskflow serves it, OpenVINO reading the same folder at its default precision and at f32. "
        "Change: against the original as Paddle Inference serves it; speedup: the original's Paddle Inference "
        "median / this median. Only `measured` rows passed the gate in their runtime.",
        "",
        "| model | runtime | setting | status | precision | score (points) | change (points) "
        "| latency, median (ms per batch) | speedup | INT8 ops | reason |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in result.runtimes:
        timing = row.timing
        cells = (
            _safe(row.model),
            _safe(row.runtime),
            _safe(row.setting),
            _safe(row.status),
            _text(row.precision),
            _fmt(row.score_points, "{:.2f}"),
            _fmt(row.delta_points, "{:+.2f}"),
            _fmt(timing.latency_ms if timing else None, "{:.2f}"),
            _fmt(row.speedup, "{:.2f}x"),
            "-" if row.int8_ops is None else f"{row.int8_ops:,}",
            _text(row.reason),
        )
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def render_deploy(selection: Selection, result: TaskResult | None, *, prefix: str = "") -> str:
    """``DEPLOY.md`` of a task's selection: the strategy, the runtime and setting to serve it
    with, the selected candidate's figures (as ``selected.json`` holds them) and the loading
    code of that runtime for the folder ``<prefix>/<run>/<task>/<strategy>`` (``result``
    is that folder's results.json; None: no code)."""
    title = f"# Deployment of {_safe(selection.task)} (run `{_safe(selection.run_id)}`)"
    chosen = selection.chosen
    if chosen is None:
        return (
            f"{title}\n\nNo model selected: {_safe(selection.reason, 1000) or 'no reason recorded'}.\n\n"
            "Nothing to deploy; `selected.json` beside this card lists every candidate and why it is not eligible.\n"
        )
    lines = [
        title,
        "",
        f"Selected by `python -m job select` (the rule is in `selected.json` beside this card): strategy "
        f"`{_safe(chosen.strategy)}`, served by **{_safe(chosen.runtime)}**, setting `{_safe(chosen.setting)}`, "
        f"precision `{_text(chosen.precision)}`.",
        "",
        f"Why: {_safe(selection.reason, 1000)}.",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| {_safe(chosen.metric) or 'metric'} (points) | {_fmt(chosen.score_points, '{:.2f}')} |",
        f"| change against the original (points) | {_fmt(chosen.delta_points, '{:+.2f}')} |",
        f"| latency, median (ms per batch) | {_fmt(chosen.latency_ms, '{:.2f}')} |",
        f"| the original on paddle-inference (ms per batch) | {_fmt(chosen.original_latency_ms, '{:.2f}')} |",
        f"| speedup | {_fmt(chosen.speedup, '{:.2f}x')} |",
        f"| throughput (examples/s) | {_fmt(chosen.throughput, '{:.1f}')} |",
        f"| folder size (bytes) | {_fmt_int(chosen.size_bytes)} |",
        f"| served weight memory (bytes) | {_fmt_int(chosen.weight_bytes)} |",
        f"| measured on | {_safe(selection.device) or 'not recorded'} |",
        "",
        "## How to load it",
        "",
    ]
    if result is None:
        return "\n".join([*lines, "The selected strategy's results.json was not read: no loading code."]) + "\n"
    root = prefix or _config(result, "Job", "output") or ""
    pull, path = _where(result, root)
    if pull:  # the selection's own pull: the folder it names, verified
        pull[3] = (
            f"scripts/pull get {_safe(root, 300)} --run {_safe(result.run_id)} --task {_safe(result.task)} "
            "--selected --dest pulled"
        )
    lines += pull
    if chosen.runtime == "openvino":
        row = next((r for r in _servable(result, "openvino") if r.setting == chosen.setting), None)
        if row is None:
            return "\n".join([*lines, "Its results.json has no measured row of that runtime: no loading code."]) + "\n"
        lines += _openvino(path, row, result)
    else:
        lines += _paddle_code(result, path)
    return "\n".join(lines) + "\n"


def _loading(result: TaskResult, root: str) -> str:
    lines = ["## How to load it", ""]
    pull, path = _where(result, root)
    lines += pull
    lines += _paddle_code(result, path)
    for row in _servable(result, "openvino"):
        lines += ["", *_openvino(path, row, result)]
    return "\n".join(lines)


def _where(result: TaskResult, root: str) -> tuple[list[str], str]:
    """The pull command (for an s3:// output) and the folder's path the loading code reads."""
    folder = "/".join((result.run_id, result.task, result.strategy))
    if not root.lower().startswith("s3://"):
        return [], _safe("/".join(part.rstrip("/") for part in (root, folder) if part), 300)
    pull = [
        "Pull it first (every file is checked against `manifest.json`):",
        "",
        "```sh",
        f"scripts/pull get {_safe(root, 300)} --run {_safe(result.run_id)} --task {_safe(result.task)} "
        f"--strategy {_safe(result.strategy)} --dest pulled",
        "```",
        "",
    ]
    return pull, _safe(f"pulled/{folder}", 300)


def _paddle_code(result: TaskResult, path: str) -> list[str]:
    threads = _threads(result)
    seq_len = _config(result, "Global", "max_seq_length")
    if result.task == "uie":
        return _taskflow(path, threads, seq_len, result)
    return _paddle_inference(path, threads, seq_len, result)


def _threads(result: TaskResult) -> int | None:
    return result.latency.threads if result.latency and result.latency.threads else None


def _servable(result: TaskResult, runtime: str) -> list[RuntimeFigures]:
    """The compressed model's rows of ``runtime`` it was measured and passed the gate in."""
    order = ("default", "f32")
    rows = [r for r in result.runtimes if r.model == "compressed" and r.runtime == runtime and r.status == "measured"]
    return sorted(rows, key=lambda r: order.index(r.setting) if r.setting in order else len(order))


def _openvino(path: str, row: RuntimeFigures, result: TaskResult) -> list[str]:
    """OpenVINO reading the published folder, compiled as the job measured ``row`` (its
    setting: OpenVINO's default precision, or f32 pinned), fed by input name as the job's
    ``openvino_peer.Session`` feeds it."""
    threads = _threads(result) or 2
    seq_len = _config(result, "Global", "max_seq_length")
    max_len = seq_len if isinstance(seq_len, int) else 128
    f32 = row.setting == "f32"
    precision = _safe(row.precision) or "not recorded"
    version = result.versions.get("openvino")
    intro = (
        f"OpenVINO (setting `{_safe(row.setting)}`: "
        + ("INFERENCE_PRECISION_HINT f32, FP32 for what is not INT8" if f32 else "its default precision on this CPU")
        + f"; the job measured `{precision}`) reads the same folder through its Paddle frontend; "
        + "`pip install -r requirements/extras/openvino.txt`"
        + (f" (the job measured openvino {_safe(version)})" if version else "")
        + ":"
    )
    lines = [
        intro,
        "",
        "```python",
        "import numpy as np",
        "import openvino as ov",
        "from paddlenlp.transformers import AutoTokenizer",
        "",
        f"folder = {path!r}",
        "core = ov.Core()",
        'model = core.read_model(f"{folder}/inference.pdmodel")',
        f'config = {{"INFERENCE_NUM_THREADS": {threads}, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}}',
    ]
    if f32:
        lines.append('config["INFERENCE_PRECISION_HINT"] = "f32"  # the f32 setting the job measured')
    lines += [
        "# Fixed-size batches (padded to max_length)? Compile for that one shape, as the lab's",
        "# latency benchmark does (README, 'headline check': faster than dynamic shapes there):",
        f"# model.reshape({{i.get_any_name(): [BATCH_SIZE, {max_len}] for i in model.inputs}})",
        'compiled = core.compile_model(model, "CPU", config)',
        "",
        "tokenizer = AutoTokenizer.from_pretrained(folder)",
    ]
    if result.task == "uie":
        lines += [
            "prompt, text = '人名', '江泽民主席1998年1月5日在北京会见了美国国务卿奥尔布赖特。'",
            f"encoded = tokenizer(text=[prompt], text_pair=[text], max_length={max_len}, truncation=True, "
            "padding=True, return_tensors='np')",
            'ids = encoded["input_ids"].astype("int64")',
            "batch = {  # the four inputs, as Taskflow and the job feed them",
            '    "input_ids": ids,',
            '    "token_type_ids": encoded["token_type_ids"].astype("int64"),',
            '    "position_ids": np.broadcast_to(np.arange(ids.shape[1], dtype="int64"), ids.shape).copy(),',
            '    "attention_mask": (ids != tokenizer.pad_token_id).astype("int64"),',
            "}",
            "outputs = compiled({i.get_any_name(): batch[i.get_any_name()] for i in model.inputs})",
            "start_prob, end_prob = (outputs[port] for port in compiled.outputs)",
            "print(start_prob.shape, int(start_prob[0].argmax()), int(end_prob[0].argmax()))  # token positions",
        ]
    else:
        pair = _is_pair(result.task)
        example = '["第一句话"], ["第二句话"]' if pair else '["一句要分类的话"]'
        lines += [
            f"encoded = tokenizer({example}, max_length={max_len}, truncation=True, padding=True, return_tensors='np')",
            "outputs = compiled({i.get_any_name(): encoded[i.get_any_name()].astype('int64') for i in model.inputs})",
            "logits = outputs[compiled.outputs[0]]",
            "print(np.argmax(logits, axis=-1))  # label ids",
        ]
    lines += [
        'print(compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())  # what the non-INT8 ops run in',
        "```",
    ]
    return lines


def _is_pair(task: str) -> bool:
    from job.data.clue import LABELS, is_pair_task

    return task in LABELS and is_pair_task(task)


def _taskflow(path: str, threads: int | None, seq_len: Any, result: TaskResult) -> list[str]:
    schema = _config(result, "Global", "dataset") == "embedded"
    compressed = result.models.compressed
    int8 = bool(compressed and compressed.precision == "int8")
    options = [f"    task_path={path!r},", "    is_static_model=True,"]
    if isinstance(seq_len, int):
        options.append(f"    max_seq_len={seq_len},  # the length the job compressed and measured at")
    if threads:
        options.append(f"    num_threads={threads},  # as measured above (Taskflow's default: half the cores)")
    return [
        "PaddleNLP's Taskflow (2.8.1) loads the folder as a static UIE model; it recognises "
        + (
            "the quantized program and serves it in INT8 on CPU (oneDNN)"
            if int8
            else "a float program and serves it in FP32"
        )
        + ". `device_id=-1` keeps it on the CPU.",
        "",
        "```python",
        "from paddlenlp import Taskflow",
        "",
        "ie = Taskflow(",
        '    "information_extraction",',
        "    schema=["
        + ("'人名', '地名', '时间', '机构名'" if schema else "'人名', '地名'")
        + "],  # "
        + ("the prompts the model was trained on" if schema else "your prompts: the ones it was trained on"),
        *options,
        "    device_id=-1,",
        ")",
        'print(ie("江泽民主席1998年1月5日在北京会见了美国国务卿奥尔布赖特。"))',
        "```",
    ]


def _paddle_inference(path: str, threads: int | None, seq_len: Any, result: TaskResult) -> list[str]:
    from job.data.clue import LABELS, is_pair_task

    compressed = result.models.compressed
    int8 = bool(compressed and compressed.precision == "int8")
    labels = LABELS.get(result.task)
    pair = result.task in LABELS and is_pair_task(result.task)
    max_len = seq_len if isinstance(seq_len, int) else 128
    precision = compressed.precision if compressed else ""
    trt = {"int8": "Int8", "fp16": "Half"}.get(precision, "Float32")  # INT8 scales come from the program
    example = '["第一句话"], ["第二句话"]' if pair else '["一句要分类的话"]'
    lines = [
        "A sequence classifier exported with inputs `input_ids` and `token_type_ids`; logits out. "
        "Paddle Inference, on CPU as the job measured it (oneDNN"
        + (", INT8 from the program's quantize/dequantize pairs" if int8 else "")
        + ") or on a GPU with TensorRT:",
        "",
        "```python",
        "import numpy as np",
        "from paddle import inference",
        "from paddlenlp.transformers import AutoTokenizer",
        "",
        f"folder = {path!r}",
        "tokenizer = AutoTokenizer.from_pretrained(folder)",
        'config = inference.Config(f"{folder}/inference.pdmodel", f"{folder}/inference.pdiparams")',
        "use_gpu = False",
        f"if use_gpu:  # TensorRT at the precision the job served: {trt}",
        "    config.enable_use_gpu(256, 0)",
        "    config.enable_tensorrt_engine(",
        "        workspace_size=1 << 30, max_batch_size=64, min_subgraph_size=5,",
        f"        precision_mode=inference.PrecisionType.{trt},",
        "        use_static=False, use_calib_mode=False,",
        "    )",
        "    shapes = {name: [1, 1] for name in ('input_ids', 'token_type_ids')}",
        f"    config.set_trt_dynamic_shape_info(shapes, {{n: [64, {max_len}] for n in shapes}}, "
        f"{{n: [64, {max_len}] for n in shapes}})",
        "else:",
        "    config.disable_gpu()",
        f"    config.set_cpu_math_library_num_threads({threads or 2})",
        "    config.enable_mkldnn()",
    ]
    if int8:
        lines.append("    config.enable_mkldnn_int8()  # as the job served it: every op type oneDNN supports")
    lines += [
        "predictor = inference.create_predictor(config)",
        "",
        f"encoded = tokenizer({example}, max_length={max_len}, truncation=True, padding=True, return_tensors='np')",
        "for name in predictor.get_input_names():",
        "    predictor.get_input_handle(name).copy_from_cpu(encoded[name].astype('int64'))",
        "predictor.run()",
        "logits = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()",
        "print(np.argmax(logits, axis=-1))  # label ids",
        "```",
    ]
    if labels:
        shown = ", ".join(f"{i}: {name}" for i, name in enumerate(labels[:20]))
        more = f", ... ({len(labels)} labels)" if len(labels) > 20 else ""
        lines += ["", f"Label ids (the order of the task's label set): {shown}{more}."]
    return lines


def _limits(result: TaskResult) -> str:
    original, compressed, latency = result.models.original, result.models.compressed, result.latency
    limits = []
    if result.status == "gated" and result.gate is not None:
        limits.append(
            f"The accuracy gate failed: {_fmt(result.delta_points, '{:+.2f}')} points against a tolerance of "
            f"{result.gate.tolerance:.2f}. Do not deploy it."
        )
    if latency is None:
        limits.append("Its latency was not measured: nothing here says it is faster than the original.")
    elif not latency.faster():
        limits.append(
            f"It was not faster than its original on {_safe(latency.hardware) or 'the hardware measured'} "
            f"(speedup {_fmt(latency.speedup, '{:.2f}')}x): `select` never picks it."
        )
    sizes = (original and original.size_bytes, compressed and compressed.size_bytes)
    if all(isinstance(size, int) for size in sizes) and sizes[1] >= sizes[0]:
        limits.append(f"The folder is not smaller than the original's ({sizes[1]:,} bytes against {sizes[0]:,}).")
    folded, stored = compressed.linear_weights_stored() if compressed else (0, 0)
    if stored:
        limits.append(
            f"{stored} INT8 linear weights are stored as INT8 with their scale (Job.weights: int8), read through an "
            "in-place assign op; measured at the float F1 in oneDNN INT8 and Taskflow on the demo teacher, not "
            "through TensorRT. Predictors dequantize them to float32 when they load (the served weight memory)."
        )
    elif folded:
        limits.append(
            f"{folded} INT8 linear weights are stored as float32 behind per-tensor quantize/dequantize pairs "
            "(Paddle 2.6 oneDNN mis-scales ACT's per-channel weights), so they take four times their INT8 size "
            "in the folder; the served weight memory is in the table above."
        )
    if result.task == "uie" and compressed and compressed.precision == "int8":
        limits.append("Taskflow serves an INT8 program in FP32 on a GPU: the INT8 speed is a CPU (oneDNN) figure.")
    if result.evaluation is not None and result.evaluation.held_out:
        limits.append(f"Its test data: {_safe(result.evaluation.held_out)}.")
    if not limits:
        limits.append("None recorded.")
    return "\n".join(["## Known limits", "", *(f"- {item}" for item in limits)])


# --------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------


def _config(result: TaskResult, section: str, key: str) -> Any:
    value = result.config.get(section)
    return value.get(key) if isinstance(value, dict) else None


def _safe(text: Any, limit: int = 200) -> str:
    """Text from results.json (a shared bucket) as one bounded Markdown-inert line."""
    text = _UNSAFE.sub(" ", str(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fmt_int(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "-"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _fmt(value: Any, fmt: str) -> str:
    number = _number(value)
    return "-" if number is None else fmt.format(number)


def _points(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}"


def _text(value: Any) -> str:
    return _safe(value) if value else "-"


def _count(model: Any, key: str) -> str:
    value = getattr(model, key, None) if model is not None else None
    return f"{value:,}" if isinstance(value, int) else "-"


def _served(compressed: Any) -> str:
    if compressed is None or not compressed.precision:
        return "-"
    ops = compressed.int8_ops or {}
    if not ops:
        return _safe(compressed.precision)
    detail = ", ".join(f"{_safe(name)} {count}" for name, count in sorted(ops.items()))
    return f"{_safe(compressed.precision)} ({sum(ops.values())} INT8 ops: {detail})"


def _timings(latency: Latency, key: str, fmt: str) -> tuple[str, str]:
    def one(timing: Timing | None) -> str:
        return _NOT_MEASURED if timing is None else _fmt(getattr(timing, key), fmt)

    return one(latency.original), one(latency.compressed)
