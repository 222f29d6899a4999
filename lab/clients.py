"""The clients users load published folders with, used the way users use them; the
real-client tests and ``python -m job lab demo_table`` measure through these, not through the
job's own serving code.

- ``taskflow_span_f1``: PaddleNLP's ``Taskflow("information_extraction", ...,
  is_static_model=True)`` on a doccano test file, scored span by span (character offsets)
  with the job's metric semantics: a predicted span counts when its start and end match a
  gold span of the same text and prompt.
- ``default_int8_predictor``: a Paddle Inference predictor configured as Taskflow
  configures one for a quantized model on CPU (``enable_mkldnn()`` +
  ``enable_mkldnn_int8()`` with no op set), built here and not through the job's code.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

__all__ = ["default_int8_predictor", "read_gold", "run_with", "taskflow_span_f1"]


def read_gold(test_file: Path, sentences: int = 0) -> dict[str, dict[str, set[tuple[int, int]]]]:
    """content -> prompt -> gold (start, end) spans, for the first ``sentences`` contents
    (0: all), in file order."""
    gold: dict[str, dict[str, set[tuple[int, int]]]] = {}
    for line in test_file.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        content = record["content"]
        if content not in gold:
            if sentences and len(gold) == sentences:
                break
            gold[content] = defaultdict(set)
        gold[content][record["prompt"]].update((span["start"], span["end"]) for span in record["result_list"])
    return gold


def taskflow_span_f1(
    folder: Path, test_file: Path, *, sentences: int = 0, batch_size: int = 32, **taskflow_kwargs
) -> dict[str, float]:
    """Span precision, recall and F1 of Taskflow's extraction from ``folder``."""
    from paddlenlp import Taskflow

    gold = read_gold(test_file, sentences)
    prompts = sorted({prompt for by_prompt in gold.values() for prompt in by_prompt})
    extract = Taskflow(
        "information_extraction",
        schema=prompts,
        task_path=str(folder),
        is_static_model=True,
        batch_size=batch_size,
        **taskflow_kwargs,
    )
    contents = list(gold)
    predictions = extract(contents)
    correct = inferred = expected = 0
    for content, found in zip(contents, predictions, strict=True):
        for prompt in prompts:
            predicted = {(span["start"], span["end"]) for span in found.get(prompt, [])}
            truth = gold[content].get(prompt, set())
            correct += len(predicted & truth)
            inferred += len(predicted)
            expected += len(truth)
    precision = correct / inferred if inferred else 0.0
    recall = correct / expected if expected else 0.0
    f1 = 2 * precision * recall / (precision + recall) if correct else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "examples": len(contents) * len(prompts),
        "sentences": len(contents),
        "int8": getattr(extract.task_instance, "_infer_precision", "") == "int8",
    }


def default_int8_predictor(folder: Path, threads: int = 2):
    """A CPU predictor for ``folder`` with Taskflow's INT8 settings, nothing of the job's."""
    from paddle import inference

    config = inference.Config(str(folder / "inference.pdmodel"), str(folder / "inference.pdiparams"))
    config.disable_gpu()
    config.enable_mkldnn()
    config.switch_ir_optim(True)
    config.enable_mkldnn_int8()
    config.set_cpu_math_library_num_threads(threads)
    config.disable_glog_info()
    config.enable_memory_optim()
    return inference.create_predictor(config)


def run_with(predictor):
    """``batch -> outputs`` through ``predictor``, feeding its inputs by name (the form
    ``Task.score`` takes)."""
    import numpy as np

    def run(batch):
        for name in predictor.get_input_names():
            predictor.get_input_handle(name).copy_from_cpu(np.ascontiguousarray(batch[name]))
        predictor.run()
        return [predictor.get_output_handle(name).copy_to_cpu() for name in predictor.get_output_names()]

    return run
