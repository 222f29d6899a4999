"""Exit codes and the user-facing error types of the job.

The exit codes are a contract: the Kubernetes Job's ``podFailurePolicy`` is rendered
from ``ExitCode`` (see ``job.kube.render``), so a user mistake fails the Job at once instead
of being retried, while storage trouble and internal errors are retried.

| code | name     | meaning                                              | retried in the cluster |
|------|----------|------------------------------------------------------|------------------------|
| 0    | OK       | finished (or already complete and skipped)           | -                      |
| 1    | INTERNAL | a bug or an unexpected failure (traceback is logged) | yes                    |
| 2    | INPUT    | bad config, bad data, bad model folder, bad flags    | no                     |
| 3    | GATE     | the compressed model lost more than the tolerance    | no                     |
| 4    | STORAGE  | object storage unreachable or refused a transfer     | yes                    |
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "NON_RETRYABLE",
    "ConfigError",
    "DataError",
    "ExitCode",
    "GateError",
    "InputError",
    "JobError",
    "StorageError",
]


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    INPUT = 2
    GATE = 3
    STORAGE = 4


# Exit codes that no retry can fix: the cluster should fail the Job at once.
NON_RETRYABLE: tuple[ExitCode, ...] = (ExitCode.INPUT, ExitCode.GATE)


class JobError(Exception):
    """An expected failure: reported as one line, never as a traceback."""

    exit_code: ExitCode = ExitCode.INTERNAL


class InputError(JobError):
    """Something the user gave us is wrong (flags, files, folders)."""

    exit_code = ExitCode.INPUT


class ConfigError(InputError):
    """A config file or override is missing, malformed or invalid."""


class DataError(InputError):
    """A data file is unreadable or holds a bad record."""


class GateError(JobError):
    """The compressed model lost more accuracy than the configured tolerance."""

    exit_code = ExitCode.GATE


class StorageError(JobError):
    """Object storage failed (unreachable, refused, or a transfer broke)."""

    exit_code = ExitCode.STORAGE
