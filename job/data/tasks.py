"""Task adapters: what the compression and evaluation stages need to know about a task.

A task holds its encoded splits and knows how to batch them (dynamic padding), which
inputs and labels a batch carries, and how to score model outputs. UIE scores spans
(precision, recall, F1 with SpanEvaluator semantics); classification scores accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from job.data.metrics import SpanCounts, span_counts
from job.data.uie import UIEFeatures

__all__ = ["ClassificationTask", "ClsFeatures", "Task", "UIETask", "bucketed"]

UIE_INPUTS = ("input_ids", "token_type_ids", "position_ids", "attention_mask")
CLASSIFIER_INPUTS = ("input_ids", "token_type_ids")

_Batch = dict[str, np.ndarray]


class Task(Protocol):
    name: str
    metric: str
    input_names: tuple[str, ...]
    label_names: tuple[str, ...]
    label_dtype: str

    def size(self, split: str) -> int: ...

    def batches(
        self, split: str, batch_size: int, *, shuffle: bool = False, seed: int = 0
    ) -> Iterator[dict[str, np.ndarray]]: ...

    def new_score(self) -> Any: ...

    def update_score(self, state: Any, split: str, batch: dict[str, np.ndarray], outputs: list[np.ndarray]) -> None: ...

    def score_values(self, state: Any) -> dict[str, float]: ...

    def score(
        self,
        split: str,
        batch_size: int,
        run: Callable[[_Batch], list[np.ndarray]],
        *,
        wrap: Callable[[Iterator[_Batch]], Iterable[_Batch]] = iter,
    ) -> dict[str, float]: ...

    def fixed_batch(self, batch_size: int, seq_len: int) -> dict[str, np.ndarray]: ...


def bucketed(lengths: np.ndarray, batch_size: int, *, shuffle: bool, seed: int, bucket: int = 64) -> list[np.ndarray]:
    """Index groups of similar length (little padding), optionally shuffled."""
    order = np.arange(len(lengths))
    rng = np.random.default_rng(seed)
    if shuffle:
        rng.shuffle(order)
    chunk = batch_size * bucket
    groups = []
    for begin in range(0, len(order), chunk):
        part = order[begin : begin + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        groups.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    if shuffle:
        rng.shuffle(groups)
    return groups


def _pad_inputs(sequences: list[np.ndarray], types: list[np.ndarray], pad_to: int = 0) -> dict[str, np.ndarray]:
    width = max(pad_to, max(len(s) for s in sequences))
    size = len(sequences)
    input_ids = np.zeros((size, width), dtype=np.int64)
    token_type_ids = np.zeros((size, width), dtype=np.int64)
    attention_mask = np.zeros((size, width), dtype=np.int64)
    for row, (ids, tt) in enumerate(zip(sequences, types, strict=True)):
        input_ids[row, : len(ids)] = ids
        token_type_ids[row, : len(ids)] = tt
        attention_mask[row, : len(ids)] = 1
    position_ids = np.broadcast_to(np.arange(width, dtype=np.int64), (size, width)).copy()
    return {
        "input_ids": input_ids,
        "token_type_ids": token_type_ids,
        "position_ids": position_ids,
        "attention_mask": attention_mask,
    }


class _SplitBatches:
    """Sizes, lengths and length-bucketed batches of a task's encoded splits (the task's
    own ``collate`` builds each batch)."""

    splits: dict

    def size(self, split: str) -> int:
        return len(self.splits[split])

    def lengths(self, split: str) -> np.ndarray:
        return self.splits[split].lengths()

    def batches(
        self, split: str, batch_size: int, *, shuffle: bool = False, seed: int = 0, pad_to: int = 0
    ) -> Iterator[dict[str, np.ndarray]]:
        features = self.splits[split]
        for group in bucketed(features.lengths(), batch_size, shuffle=shuffle, seed=seed):
            yield self.collate(split, group, pad_to=pad_to)

    def collate(self, split: str, indices: np.ndarray, pad_to: int = 0) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def score(
        self,
        split: str,
        batch_size: int,
        run: Callable[[_Batch], list[np.ndarray]],
        *,
        wrap: Callable[[Iterator[_Batch]], Iterable[_Batch]] = iter,
    ) -> dict[str, float]:
        """The task's metric on one split: ``run`` gives a model's outputs for a batch;
        ``wrap`` wraps the batches (e.g. in a progress bar)."""
        state = self.new_score()
        for batch in wrap(self.batches(split, batch_size)):
            self.update_score(state, split, batch, run(batch))
        return self.score_values(state)

    def fixed_batch(self, batch_size: int, seq_len: int) -> dict[str, np.ndarray]:
        """A batch of real test examples padded (and cut) to exactly ``seq_len``."""
        features = self.splits["test"]
        rows = [i % len(features) for i in range(batch_size)]
        ids = [features.input_ids[i][:seq_len] for i in rows]
        types = [features.token_type_ids[i][:seq_len] for i in rows]
        return _pad_inputs(ids, types, pad_to=seq_len)


@dataclass
class UIETask(_SplitBatches):
    """Extraction: ``[CLS] prompt [SEP] content [SEP]`` in, start/end probabilities out."""

    splits: dict[str, UIEFeatures]
    name: str = "uie"
    metric: str = "f1"
    input_names: tuple[str, ...] = UIE_INPUTS
    label_names: tuple[str, ...] = ("start_ids", "end_ids")
    label_dtype: str = "float32"

    def collate(self, split: str, indices: np.ndarray, pad_to: int = 0) -> dict[str, np.ndarray]:
        features = self.splits[split]
        batch = _pad_inputs(
            [features.input_ids[i] for i in indices], [features.token_type_ids[i] for i in indices], pad_to
        )
        width = batch["input_ids"].shape[1]
        start_ids = np.zeros((len(indices), width), dtype=np.float32)
        end_ids = np.zeros((len(indices), width), dtype=np.float32)
        for row, i in enumerate(indices):
            start_ids[row, features.start_positions[i]] = 1.0
            end_ids[row, features.end_positions[i]] = 1.0
        batch.update(start_ids=start_ids, end_ids=end_ids, index=np.asarray(indices))
        return batch

    def new_score(self) -> SpanCounts:
        return SpanCounts()

    def update_score(
        self, state: SpanCounts, split: str, batch: dict[str, np.ndarray], outputs: list[np.ndarray]
    ) -> None:
        if len(outputs) < 2:
            raise ValueError(f"a UIE model outputs start and end probabilities; this one has {len(outputs)} output(s)")
        features = self.splits[split]
        start_prob, end_prob = outputs[0], outputs[1]
        for row, i in enumerate(batch["index"]):
            n = len(features.input_ids[i])
            state.add(
                span_counts(
                    start_prob[row, :n], end_prob[row, :n], features.start_positions[i], features.end_positions[i]
                )
            )

    def score_values(self, state: SpanCounts) -> dict[str, float]:
        return state.as_dict()


@dataclass
class ClsFeatures:
    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray]
    labels: np.ndarray
    where: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        return np.array([len(ids) for ids in self.input_ids])


@dataclass
class ClassificationTask(_SplitBatches):
    """Sentence or sentence-pair classification: logits out, accuracy scored."""

    splits: dict[str, ClsFeatures]
    name: str
    num_labels: int
    metric: str = "accuracy"
    input_names: tuple[str, ...] = CLASSIFIER_INPUTS
    label_names: tuple[str, ...] = ("labels",)
    label_dtype: str = "int64"

    def collate(self, split: str, indices: np.ndarray, pad_to: int = 0) -> dict[str, np.ndarray]:
        features = self.splits[split]
        batch = _pad_inputs(
            [features.input_ids[i] for i in indices], [features.token_type_ids[i] for i in indices], pad_to
        )
        batch["labels"] = features.labels[indices].reshape(-1, 1).astype(np.int64)
        batch["index"] = np.asarray(indices)
        return batch

    def new_score(self) -> list[int]:
        return [0, 0]

    def update_score(
        self, state: list[int], split: str, batch: dict[str, np.ndarray], outputs: list[np.ndarray]
    ) -> None:
        predicted = np.argmax(outputs[0], axis=-1)
        state[0] += int((predicted == batch["labels"].reshape(-1)).sum())
        state[1] += len(predicted)

    def score_values(self, state: list[int]) -> dict[str, float]:
        return {"accuracy": state[0] / state[1] if state[1] else 0.0, "correct": state[0], "total": state[1]}
