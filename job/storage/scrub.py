"""Credentials never reach a message, a log record or a traceback.

Two kinds of secret: the AWS keys a ``Storage`` was built with (registered with
``add_secrets``) and passwords written into URLs (``https://user:pass@host``: an endpoint, a
kubeconfig's server). ``scrub`` removes both from a text. ``ScrubFilter`` applies it to log
records, their arguments and their formatted tracebacks; ``install`` puts it on the handlers
of the root logger and on boto's loggers, and replaces ``sys.excepthook`` so that even an
unexpected traceback of an entry point is scrubbed.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Iterable

from job.logs import BOTO_LOGGERS

__all__ = ["ScrubFilter", "add_secrets", "clean", "install", "install_excepthook", "scrub", "scrub_url"]

# scheme://userinfo@ : userinfo holds no '/', '@' or whitespace.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s\"']+@")
_SECRETS: set[str] = set()


def scrub_url(text: str) -> str:
    """Hide ``user:password@`` in URLs."""
    return _USERINFO.sub(r"\1***@", text)


def add_secrets(secrets: Iterable[str | None]) -> None:
    """Values to hide from every message from now on (credentials read from the environment)."""
    _SECRETS.update(s for s in secrets if s and len(s) >= 4)


def scrub(text: str) -> str:
    """``text`` without URL passwords and without any registered secret."""
    text = scrub_url(str(text))
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class ScrubFilter(logging.Filter):
    """Scrubs a record's message and its traceback (botocore's DEBUG records show request
    headers; a traceback may show an endpoint URL with its password)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken log call elsewhere: leave it to logging
            return True
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            # Formatter.format uses exc_text when it is set: format the traceback once, scrubbed.
            record.exc_text = scrub("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


_FILTER = ScrubFilter()


def clean(message: str) -> str:
    """A message as one line, without credentials or URL passwords."""
    return scrub(" ".join(message.split()))


def install(excepthook: bool = True) -> None:
    """Scrub every record reaching the root logger's handlers and boto's loggers' own records;
    with ``excepthook`` (entry points), uncaught tracebacks too."""
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    names = [n for n in list(logging.Logger.manager.loggerDict) if n.split(".")[0] in BOTO_LOGGERS]
    for name in {*names, *BOTO_LOGGERS}:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    if excepthook:
        install_excepthook()


def _excepthook(kind, value, tb) -> None:
    sys.stderr.write(scrub("".join(traceback.format_exception(kind, value, tb))))


def install_excepthook() -> None:
    """An uncaught exception's traceback is printed scrubbed."""
    sys.excepthook = _excepthook
