"""The workloads of the benchmark: the latency batch (real test examples padded to
``max_seq_len``), the padding comparison's sample of texts in three modes, and the
calibration batches the peers quantize with. Saved as one ``.npz`` the workers load.

* ``max``: ``task.fixed_batch(batch_size, max_seq_len)``, the figure every runtime is
  compared on.
* The padding comparison: one fixed sample of test texts (``TEXT_BATCHES`` x batch_size,
  spread evenly over the split, kept in split order) in three modes: ``to-max`` (each
  batch padded to ``max_seq_len``), ``to-longest`` (the same batches, each padded to its
  longest text), ``bucketed`` (sorted by length, then batched and padded to each batch's
  longest). Padding to the longest is rounded up to a multiple of ``PAD_MULTIPLE`` and
  cut at ``max_seq_len``: rounding bounds the number of distinct shapes.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np

from job.config import BenchmarkConfig

__all__ = [
    "PAD_MULTIPLE",
    "TEXT_BATCHES",
    "TEXT_PADDINGS",
    "batches_digest",
    "build_workload",
    "calibration_batches",
    "load_workload",
    "save_workload",
    "shape_count",
    "text_sample",
]

PAD_MULTIPLE = 16
# The padding comparison times TEXT_BATCHES x batch_size texts (fewer when the test split is smaller).
TEXT_BATCHES = 10
TEXT_PADDINGS = ("to-max", "to-longest", "bucketed")


def build_workload(cfg: BenchmarkConfig, task: Any, names: list[str]) -> dict[str, Any]:
    fixed = task.fixed_batch(cfg.batch_size, cfg.max_seq_len)
    missing = [n for n in names if n not in fixed]
    if missing:
        from job.errors import InputError

        raise InputError(f"the model asks for inputs {missing} that task {task.name} does not provide")
    max_batch = {n: np.ascontiguousarray(fixed[n]) for n in names}
    texts: dict[str, list[dict[str, np.ndarray]]] = {mode: [] for mode in TEXT_PADDINGS}
    sample = np.zeros(0, dtype=np.int64)
    real = 0.0
    if cfg.dynamic_padding:
        lengths = np.asarray(task.lengths("test"))
        sample = text_sample(len(lengths), TEXT_BATCHES * cfg.batch_size)
        real = float(np.minimum(lengths[sample], cfg.max_seq_len).mean()) if len(sample) else 0.0
        in_order = [sample[i : i + cfg.batch_size] for i in range(0, len(sample), cfg.batch_size)]
        by_length = sample[np.argsort(lengths[sample], kind="stable")]
        bucketed = [by_length[i : i + cfg.batch_size] for i in range(0, len(by_length), cfg.batch_size)]
        for mode, groups in (("to-max", in_order), ("to-longest", in_order), ("bucketed", bucketed)):
            for group in groups:
                if mode == "to-max":
                    width = cfg.max_seq_len
                else:
                    longest = min(int(lengths[group].max()), cfg.max_seq_len)
                    width = min(int(math.ceil(longest / PAD_MULTIPLE) * PAD_MULTIPLE), cfg.max_seq_len)
                batch = task.collate("test", group, pad_to=width)
                texts[mode].append({n: np.ascontiguousarray(batch[n][:, :width]) for n in names})
    return {"max": max_batch, "texts": texts, "sample": sample, "real_len": real}


def text_sample(size: int, count: int) -> np.ndarray:
    """``count`` test indices spread evenly over a split of ``size``, in split order (the
    order requests would come in); every index when the split is smaller."""
    if size <= count:
        return np.arange(size, dtype=np.int64)
    return np.unique(np.linspace(0, size - 1, count).round().astype(np.int64))


def save_workload(workload: dict[str, Any], path: Path) -> None:
    arrays = {f"max/{n}": a for n, a in workload["max"].items()}
    for mode, batches in workload["texts"].items():
        for i, batch in enumerate(batches):
            arrays.update({f"{mode}/{i:04d}/{n}": a for n, a in batch.items()})
    arrays["sample"] = np.asarray(workload["sample"], dtype=np.int64)
    arrays["real_len"] = np.asarray(workload["real_len"], dtype=np.float64)
    np.savez(path, **arrays)


def load_workload(path: str) -> dict[str, Any]:
    with np.load(path) as data:
        out: dict[str, Any] = {
            "max": {},
            "texts": {mode: {} for mode in TEXT_PADDINGS},
            "sample": data["sample"],
            "real_len": float(data["real_len"]),
        }
        for key in data.files:
            if key in ("sample", "real_len"):
                continue
            parts = key.split("/")
            if parts[0] == "max":
                out["max"][parts[1]] = data[key]
            else:
                out["texts"][parts[0]].setdefault(parts[1], {})[parts[2]] = data[key]
    out["texts"] = {mode: [groups[k] for k in sorted(groups)] for mode, groups in out["texts"].items()}
    return out


def calibration_batches(
    task: Any, names: list[str], count: int = 8, size: int = 8, split: str = ""
) -> list[dict[str, np.ndarray]]:
    splits = getattr(task, "splits", {})
    if split not in splits:
        split = "dev" if "dev" in splits else "test"
    out = []
    for batch in task.batches(split, size, shuffle=True, seed=0):
        out.append({n: np.ascontiguousarray(batch[n]) for n in names})
        if len(out) >= count:
            break
    return out


def batches_digest(batches: list[dict[str, np.ndarray]]) -> str:
    sha = hashlib.sha256()
    for batch in batches:
        for name in sorted(batch):
            sha.update(name.encode())
            sha.update(np.ascontiguousarray(batch[name]).tobytes())
    return sha.hexdigest()


def shape_count(workload: dict[str, Any]) -> int:
    """Distinct input shapes of a workload (the max batch and every text batch)."""
    return len({next(iter(b.values())).shape for batches in workload["texts"].values() for b in batches}) + 1
