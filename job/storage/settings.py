"""What a store is reached with: settings from ``StorageConfig`` and the standard AWS
environment, read once and checked, and the credentials (never shown)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from job.errors import InputError
from job.storage import scrub

if TYPE_CHECKING:
    from job.config import StorageConfig

__all__ = ["Credentials", "StoreSettings"]

_MB = 1024 * 1024


class Credentials:
    """Keys from the environment; never shown by repr."""

    __slots__ = ("key_id", "secret", "token")

    def __init__(self, key_id: str | None, secret: str | None, token: str | None):
        self.key_id, self.secret, self.token = key_id, secret, token

    def __repr__(self) -> str:
        return "Credentials(***)"

    def values(self) -> list[str]:
        return [v for v in (self.key_id, self.secret, self.token) if v]


class StoreSettings:
    """Settings of the stores a ``Storage`` reaches.

    ``StorageConfig`` keys that are set win; else the standard environment:
    ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``, ``AWS_REGION``/``AWS_DEFAULT_REGION``,
    ``AWS_RETRY_MODE`` (default ``standard``, which retries SlowDown, 503 and other 5xx
    answers), ``AWS_MAX_ATTEMPTS`` (default 5), ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/
    ``AWS_SESSION_TOKEN`` (when unset, boto3's own chain: profiles, web identity, instance
    roles). A bad value is an ``InputError`` naming the key or variable.
    """

    def __init__(self, config: StorageConfig | None = None, *, environ: Mapping[str, str] | None = None):
        from job.config import StorageConfig

        env = os.environ if environ is None else environ
        cfg = config if config is not None else StorageConfig()
        try:
            cfg.check()
        except ValueError as exc:
            raise InputError(f"Storage.{getattr(exc, 'key', '?')}: {exc}") from None

        endpoint = cfg.endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or ""
        source = "Storage.endpoint_url" if cfg.endpoint_url else "AWS_ENDPOINT_URL"
        if endpoint and not re.fullmatch(r"https?://[^/\s\x00-\x1f\x7f-\x9f]+(/[^\s\x00-\x1f\x7f-\x9f]*)?", endpoint):
            raise InputError(f"{source}: expected http(s)://host[:port], got {scrub.scrub_url(endpoint)!r}")
        self.endpoint_url: str | None = endpoint or None
        self.region: str = cfg.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"

        self.retry_mode: str = cfg.retry_mode or env.get("AWS_RETRY_MODE") or "standard"
        if self.retry_mode not in ("standard", "adaptive", "legacy"):
            raise InputError(f"AWS_RETRY_MODE: must be standard, adaptive or legacy, got {self.retry_mode!r}")
        attempts: Any = cfg.max_attempts or env.get("AWS_MAX_ATTEMPTS") or 5
        try:
            self.max_attempts: int = int(attempts)
        except ValueError:
            raise InputError(f"AWS_MAX_ATTEMPTS: expected a whole number, got {attempts!r}") from None
        if self.max_attempts < 1:
            raise InputError(f"AWS_MAX_ATTEMPTS: must be >= 1, got {self.max_attempts}")

        self.checksum_when_required: bool = cfg.checksum_when_required
        self.multipart_threshold: int = cfg.multipart_threshold_mb * _MB
        self.multipart_chunksize: int = cfg.multipart_chunksize_mb * _MB

        key_id = env.get("AWS_ACCESS_KEY_ID") or None
        secret = env.get("AWS_SECRET_ACCESS_KEY") or None
        if bool(key_id) != bool(secret):
            missing = "AWS_SECRET_ACCESS_KEY" if key_id else "AWS_ACCESS_KEY_ID"
            raise InputError(f"{missing} is not set but its pair is; set both or neither")
        self.credentials = Credentials(key_id, secret, env.get("AWS_SESSION_TOKEN") or None)
        scrub.add_secrets(self.credentials.values())

    def __repr__(self) -> str:
        endpoint = scrub.scrub_url(self.endpoint_url) if self.endpoint_url else "aws"
        return (
            f"StoreSettings(endpoint={endpoint!r}, region={self.region!r}, retry_mode={self.retry_mode!r}, "
            f"max_attempts={self.max_attempts})"
        )
