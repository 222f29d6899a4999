"""Training a teacher on CPU (dygraph): AdamW with warm-up and decay, the task's losses,
the dev metric during training. The deployed model is measured through Paddle Inference
(``job.evaluate``), not here."""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass

import numpy as np

from job.config import TeacherConfig
from job.data.tasks import Task
from job.logs import progress
from job.runtime import paddle

__all__ = ["TrainResult", "classification_loss", "evaluate_dygraph", "train_model", "uie_loss"]

log = logging.getLogger("job.model")


@dataclass
class TrainResult:
    steps: int
    seconds: float
    best_dev_metric: float
    best_step: int
    history: list[dict[str, float]]
    stopped_by_budget: bool = False


def evaluate_dygraph(model, task: Task, split: str = "dev", batch_size: int = 64) -> dict[str, float]:
    """The task's metric during training (dygraph; the deployed model is measured through
    Paddle Inference by job.evaluate)."""

    def outputs(batch):
        out = model(*(paddle.to_tensor(batch[k]) for k in task.input_names))
        return [o.numpy() for o in (out if isinstance(out, (tuple, list)) else [out])]

    model.eval()
    with paddle.no_grad():
        values = task.score(split, batch_size, outputs)
    model.train()
    return values


def uie_loss(positive_weight: float):
    """Weighted BCE on start and end probabilities. Positive positions are rare (a few
    per sentence, none for most prompts); unweighted, the model learns to predict no span."""

    def loss(outputs, batch, inputs):
        start_prob, end_prob = outputs
        mask = inputs[3].astype("float32")
        total = _weighted_bce(start_prob, paddle.to_tensor(batch["start_ids"]), mask, positive_weight)
        return total + _weighted_bce(end_prob, paddle.to_tensor(batch["end_ids"]), mask, positive_weight)

    return loss


def classification_loss(outputs, batch, inputs):
    logits = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
    return paddle.nn.functional.cross_entropy(logits, paddle.to_tensor(batch["labels"]))


def train_model(model, task: Task, cfg: TeacherConfig, loss_fn, seed: int = 42) -> TrainResult:
    """Train with AdamW, linear warm-up then decay, gradient clipping; evaluate the task's
    metric on dev every ``eval_every`` steps and keep the best weights."""
    from paddlenlp.transformers import LinearDecayWithWarmup

    model.train()
    schedule = LinearDecayWithWarmup(cfg.learning_rate, cfg.steps, cfg.warmup_ratio)
    no_decay = {p.name for n, p in model.named_parameters() if "bias" in n or "norm" in n}
    optimizer = paddle.optimizer.AdamW(
        learning_rate=schedule,
        parameters=model.parameters(),
        weight_decay=cfg.weight_decay,
        apply_decay_param_fun=lambda name: name not in no_decay,
        grad_clip=paddle.nn.ClipGradByGlobalNorm(1.0),
    )
    history: list[dict[str, float]] = []
    best_metric, best_step, best_state = -1.0, 0, None
    start_time = time.perf_counter()
    budget = cfg.time_budget_minutes * 60 if cfg.time_budget_minutes else math.inf
    step, epoch, stopped = 0, 0, False
    running = []
    bar = progress(total=cfg.steps, desc="train teacher", unit="step")
    while step < cfg.steps and not stopped:
        for batch in task.batches("train", cfg.batch_size, shuffle=True, seed=seed + epoch):
            inputs = [paddle.to_tensor(batch[k]) for k in task.input_names]
            loss = loss_fn(model(*inputs), batch, inputs)
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.clear_grad()
            step += 1
            running.append(float(loss))
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(
                    {"loss": f"{np.mean(running[-50:]):.4f}", f"best dev {task.metric}": f"{max(best_metric, 0):.3f}"},
                    refresh=False,
                )
            out_of_time = time.perf_counter() - start_time > budget
            if step % cfg.eval_every == 0 or step == cfg.steps or out_of_time:
                values = evaluate_dygraph(model, task)
                history.append(
                    {
                        "step": step,
                        "loss": float(np.mean(running[-50:])),
                        **{f"dev_{k}": float(v) for k, v in values.items()},
                    }
                )
                shown = ", ".join(f"{k} {v:.4f}" for k, v in values.items() if isinstance(v, float))
                log.info("step %d: loss %.4f, dev %s", step, history[-1]["loss"], shown)
                if values[task.metric] > best_metric:
                    best_metric, best_step = values[task.metric], step
                    best_state = copy.deepcopy(model.state_dict())
            if out_of_time:
                log.info("time budget of %.1f min reached at step %d", cfg.time_budget_minutes, step)
                stopped = True
            if step >= cfg.steps or stopped:
                break
        epoch += 1
    bar.close()
    if best_state is not None:
        model.set_state_dict(best_state)
    model.eval()
    return TrainResult(step, time.perf_counter() - start_time, best_metric, best_step, history, stopped)


def _weighted_bce(prob, label, mask, positive_weight: float):
    weight = mask * (1.0 + (positive_weight - 1.0) * label)
    loss = paddle.nn.functional.binary_cross_entropy(prob, label, weight=weight, reduction="sum")
    return loss / paddle.clip(mask.sum(), min=1.0)
