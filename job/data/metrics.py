"""Span metrics with the semantics of PaddleNLP's ``SpanEvaluator`` (pure numpy).

A position is predicted when its probability is strictly above ``limit`` (0.5). Predicted
starts and ends are paired the way ``paddlenlp.utils.tools.get_span`` pairs them (each
end takes the latest unpaired start at or before it); a predicted span is correct when the
gold starts and ends pair into the same span. The gold count per example is
``max(#gold starts, #gold ends)``, as upstream counts overlapping gold spans.
Precision, recall and F1 are micro-averaged over all examples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SpanCounts", "pair_spans", "span_counts"]


@dataclass
class SpanCounts:
    correct: int = 0
    inferred: int = 0
    gold: int = 0

    def add(self, other: SpanCounts) -> None:
        self.correct += other.correct
        self.inferred += other.inferred
        self.gold += other.gold

    @property
    def precision(self) -> float:
        return self.correct / self.inferred if self.inferred else 0.0

    @property
    def recall(self) -> float:
        return self.correct / self.gold if self.gold else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if self.correct else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "correct": self.correct,
            "inferred": self.inferred,
            "gold": self.gold,
        }


def pair_spans(starts: list[int] | np.ndarray, ends: list[int] | np.ndarray) -> set[tuple[int, int]]:
    """Pair sorted start and end positions into spans (upstream ``get_span``)."""
    starts, ends = sorted(int(s) for s in starts), sorted(int(e) for e in ends)
    i = j = 0
    pairs: dict[int, int] = {}
    while i < len(starts) and j < len(ends):
        if starts[i] <= ends[j]:
            pairs[ends[j]] = starts[i]
            i += 1
            if starts[i - 1] == ends[j]:
                j += 1
        else:
            j += 1
    return {(start, end) for end, start in pairs.items()}


def span_counts(
    start_prob: np.ndarray, end_prob: np.ndarray, gold_starts: np.ndarray, gold_ends: np.ndarray, limit: float = 0.5
) -> SpanCounts:
    """Counts for one example. ``*_prob`` are its per-token probabilities (unpadded)."""
    pred_starts = np.flatnonzero(start_prob > limit)
    pred_ends = np.flatnonzero(end_prob > limit)
    gold_starts = np.unique(gold_starts)
    gold_ends = np.unique(gold_ends)
    predicted = pair_spans(pred_starts, pred_ends)
    gold = pair_spans(gold_starts, gold_ends)
    return SpanCounts(
        correct=len(predicted & gold), inferred=len(predicted), gold=max(len(gold_starts), len(gold_ends))
    )
