"""Reading data files line by line, with errors that name ``file:line``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from job.errors import DataError

__all__ = ["utf8_lines"]

_BOM = b"\xef\xbb\xbf"


def utf8_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file. A missing or unreadable file, or a line that
    is not UTF-8, is a ``DataError`` naming it; a leading BOM is tolerated."""
    source = str(path)
    try:
        handle = Path(path).open("rb")
    except FileNotFoundError:
        raise DataError(f"{source}: data file not found") from None
    except IsADirectoryError:
        raise DataError(f"{source}: is a folder, not a data file") from None
    except OSError as exc:
        raise DataError(f"{source}: cannot read data file ({exc.strerror})") from None
    with handle:
        for lineno, raw in enumerate(handle, start=1):
            if lineno == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{source}:{lineno}: not UTF-8 text "
                    f"(byte 0x{raw[exc.start]:02x} at offset {exc.start} of the line); save the file as UTF-8"
                ) from None
