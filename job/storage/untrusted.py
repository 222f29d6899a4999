"""JSON read from a store (a task's ``manifest.json``, its ``results.json``): untrusted text.

Read only when the store says it is at most a cap in size (the listing's or the response's
size, checked before a byte of the body is read), then parsed with every error a hostile
file can cause (deep nesting, huge numbers, NaN, bytes that are not UTF-8, the wrong types)
turned into one ``InvalidJSONError`` line naming the file: a bad file makes its task
``unsafe`` or ``invalid``; it never stops the others and never shows a traceback.
"""

from __future__ import annotations

import json
from typing import Any

from job.errors import InputError
from job.storage.locations import escape

__all__ = ["MAX_MANIFEST_BYTES", "MAX_RESULTS_BYTES", "InvalidJSONError", "TooLargeError", "load_json", "load_results"]

# A manifest lists a task folder's files (~150 bytes each); a results.json is a few kB.
# 8 MiB holds tens of thousands of entries and keeps a hostile 50 MB file out of memory.
MAX_MANIFEST_BYTES = 8 * 1024 * 1024
MAX_RESULTS_BYTES = 8 * 1024 * 1024


class InvalidJSONError(InputError):
    """A JSON file from a store that cannot be used: not JSON, too deep, of the wrong types."""


class TooLargeError(InvalidJSONError):
    """The store says the object is larger than its cap: it is not read."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _bounded_int(text: str) -> int:
    # Beyond 64 bits no size, count or metric is meant; such a number only overflows later.
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"a number of {len(text)} digits is out of range")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:20]} is out of a float's range")
    return value


def load_json(data: bytes, where: str) -> Any:
    """``data`` parsed as strict JSON (UTF-8; no NaN or Infinity; integers within 64 bits,
    floats finite), or InvalidJSONError (one line)."""
    try:
        return json.loads(
            data.decode("utf-8"), parse_constant=_no_constant, parse_int=_bounded_int, parse_float=_finite_float
        )
    except UnicodeDecodeError:
        raise InvalidJSONError(f"{escape(where)}: not UTF-8 text") from None
    except RecursionError:
        raise InvalidJSONError(f"{escape(where)}: nested too deeply to read") from None
    except (ValueError, OverflowError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise InvalidJSONError(f"{escape(where)}: not valid JSON ({escape(reason)})") from None


def load_results(data: bytes, where: str) -> Any:
    """A ``results.json`` as ``job.results.TaskResult`` (schema checked), or InvalidJSONError."""
    from job.results import TaskResult

    raw = load_json(data, where)
    try:
        return TaskResult.from_dict(raw)
    except RecursionError:
        raise InvalidJSONError(f"{escape(where)}: nested too deeply to read") from None
    except (ValueError, OverflowError, TypeError, AttributeError, KeyError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise InvalidJSONError(f"{escape(where)}: not a results.json this job reads ({escape(reason)})") from None
