"""Inference model folders: the two files a predictor loads and the tokenizer files saved
beside them. Standard library only: the benchmark's ONNX Runtime and OpenVINO workers use
it without loading Paddle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from job.errors import InputError

__all__ = ["TOKENIZER_FILES", "ModelFiles", "check_model_dir"]

# The tokenizer files saved beside a model (with its config.json).
TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


@dataclass(frozen=True)
class ModelFiles:
    """An inference model folder and its two file names."""

    folder: Path
    model_filename: str = "inference.pdmodel"
    params_filename: str = "inference.pdiparams"

    @property
    def program(self) -> Path:
        return self.folder / self.model_filename

    @property
    def params(self) -> Path:
        return self.folder / self.params_filename

    def check(self) -> ModelFiles:
        check_model_dir(self.folder, self.model_filename, self.params_filename)
        return self

    def size_bytes(self) -> int:
        return self.program.stat().st_size + self.params.stat().st_size


def check_model_dir(
    model_dir: Path, model_filename: str = "inference.pdmodel", params_filename: str = "inference.pdiparams"
) -> None:
    """A usable inference model folder, or an InputError naming what is missing."""
    if not model_dir.exists():
        raise InputError(f"{model_dir}: model folder not found")
    if not model_dir.is_dir():
        raise InputError(f"{model_dir}: not a folder (expected an inference model folder)")
    missing = [name for name in (model_filename, params_filename) if not (model_dir / name).is_file()]
    if missing:
        what = "its parameters" if missing == [params_filename] else ", ".join(missing)
        raise InputError(f"{model_dir}: model folder without {what} ({', '.join(missing)} missing)")
    if (model_dir / params_filename).stat().st_size == 0:
        raise InputError(f"{model_dir}: {params_filename} is empty")
