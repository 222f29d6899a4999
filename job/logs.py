"""Logging set-up: one readable stream for the job, PaddleSlim's chatter kept down."""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["BOTO_LOGGERS", "phase", "progress", "route_library_bars", "setup"]

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


_REDRAW_SECONDS_TERMINAL = 2.0
_REDRAW_SECONDS_LOG = 30.0  # a pod's log would otherwise fill with redraws


def _bar_defaults(kwargs: dict) -> dict:
    interactive = sys.stderr.isatty()
    kwargs.setdefault("mininterval", _REDRAW_SECONDS_TERMINAL if interactive else _REDRAW_SECONDS_LOG)
    kwargs.setdefault("dynamic_ncols", interactive)
    return kwargs


def progress(iterable=None, **kwargs):
    """A tqdm progress bar: lively on a terminal, one line every ``_REDRAW_SECONDS_LOG`` in a
    log file."""
    from tqdm import tqdm

    return tqdm(iterable, **_bar_defaults(kwargs))


# Where the bars of a compression run come from: Paddle's quantization code, which
# PaddleSlim's ACT drives ("Adding quant op with weight" for every program it quantizes,
# PTQ's "Preparation/Sampling stage, Run batch"), and PaddleSlim itself (its reconstruction
# PTQ uses the look-alike in paddle's quantization utils). They redraw every 0.1 s
# whatever the stream, which in a pod's log is thousands of redraws.
_LIBRARY_BAR_MODULES = (
    "paddle.static.quantization.post_training_quantization",
    "paddle.static.quantization.quantization_pass",
    "paddle.static.quantization.utils",
)
_LIBRARY_BAR_PREFIXES = ("paddle.static.quantization", "paddleslim")


def route_library_bars() -> list[str]:
    """Give the tqdm bars that Paddle's quantization and PaddleSlim draw the job's own
    pacing (``progress``): their modules' ``tqdm`` becomes a subclass taking those defaults.

    Call it once paddle is importable and before compressing; idempotent. Returns the
    modules changed now.
    """
    import importlib

    from tqdm import tqdm

    routed = getattr(route_library_bars, "_class", None)
    if routed is None:

        class _RoutedTqdm(tqdm):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **_bar_defaults(kwargs))

        routed = route_library_bars._class = _RoutedTqdm  # type: ignore[attr-defined]
    for name in _LIBRARY_BAR_MODULES:
        importlib.import_module(name)
    changed = []
    for name, module in list(sys.modules.items()):
        current = getattr(module, "tqdm", None) if name.startswith(_LIBRARY_BAR_PREFIXES) else None
        # Replace the real tqdm and paddle's look-alike (a class named tqdm of its own), not modules.
        if isinstance(current, type) and current is not routed and (current is tqdm or current.__name__ == "tqdm"):
            module.tqdm = routed
            changed.append(name)
    return changed
