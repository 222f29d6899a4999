"""Logging set-up: one readable stream for the job, PaddleSlim's chatter kept down."""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["BOTO_LOGGERS", "phase", "progress", "setup"]

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# The loggers that may show request headers (credentials): kept at INFO or above here
# and by scripts/pull, and scrubbed by job.storage.
BOTO_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3")


def setup(verbose: bool = False) -> None:
    """Configure the root logger once; quiet Paddle's C++ logs unless verbose."""
    level = logging.DEBUG if verbose else logging.INFO
    root = logging.getLogger()
    if not any(getattr(h, "_act_job", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        handler._act_job = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    # `import paddle` resets the root logger to WARNING; our loggers keep their own level.
    logging.getLogger("job").setLevel(level)
    # botocore logs request headers (session tokens among them) at DEBUG: never go lower.
    for chatty in BOTO_LOGGERS:
        logging.getLogger(chatty).setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:
        # Paddle's C++ side logs through glog; this must be set before paddle loads.
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("FLAGS_call_stack_level", "0")
        for noisy in ("paddle", "paddleslim", "paddlenlp", "PaddleSlim"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


class phase:
    """Log the start and end of a pipeline phase, and name the phase when it fails."""

    def __init__(self, name: str, durations: dict[str, float] | None = None):
        self.name = name
        self.durations = durations
        self.log = logging.getLogger("job")

    def __enter__(self) -> phase:
        import time

        self._start = time.perf_counter()
        self.log.info("phase %s: started", self.name)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        import time

        seconds = time.perf_counter() - self._start
        if self.durations is not None:
            self.durations[self.name] = round(seconds, 2)
        if exc is None:
            self.log.info("phase %s: done in %.1f s", self.name, seconds)
        else:
            self.log.error("phase %s: failed after %.1f s: %s", self.name, seconds, exc)


def progress(iterable=None, **kwargs):
    """A tqdm progress bar: lively on a terminal, a line every 30 s in a log file (a pod's
    log would otherwise fill with redraws)."""
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    kwargs.setdefault("mininterval", 2.0 if interactive else 30.0)
    kwargs.setdefault("dynamic_ncols", interactive)
    return tqdm(iterable, **kwargs)
