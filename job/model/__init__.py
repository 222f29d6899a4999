"""Models: the model stage and what it builds.

* ``stage``: the model stage (the given model, or a teacher from a checkpoint or trained,
  cached under its key);
* ``build``: shapes, vocabularies and tokenizers, UIE and classifiers, export as PaddleNLP
  exports, checkpoints;
* ``train``: teacher training on CPU;
* ``files``: inference model folders (standard library only).

The public names of the submodules are re-exported here and load on first use, so that
``from job.model import ModelFiles`` does not import Paddle.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "TOKENIZER_FILES": "files",
    "ModelFiles": "files",
    "check_model_dir": "files",
    "SHAPES": "build",
    "SPECIAL_TOKENS": "build",
    "ModelShape": "build",
    "build_classifier": "build",
    "build_uie": "build",
    "build_vocab": "build",
    "count_params": "build",
    "export_model": "build",
    "export_uie": "build",
    "load_checkpoint": "build",
    "load_tokenizer": "build",
    "save_checkpoint": "build",
    "save_tokenizer": "build",
    "TrainResult": "train",
    "evaluate_dygraph": "train",
    "train_model": "train",
    "ModelResult": "stage",
    "run": "stage",
    "teacher_key": "stage",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"job.model.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'job.model' has no attribute {name!r}")
