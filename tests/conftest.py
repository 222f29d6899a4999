"""Shared fixtures: a real S3 server (moto, over HTTP on 127.0.0.1) and clean AWS settings,
the light environment's interpreter (``light_python``) and the tiny UIE set-up (``tiny``).

Tests never touch real cloud accounts: ``s3_server`` strips every ``AWS_*`` variable of
the developer's environment (credentials, profiles, config files, CA bundles, endpoints)
and sets fake credentials before yielding the server's endpoint URL.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid

# Paddle 2.6 ships its own zlib symbols: the system zlib must be loaded before any test
# imports paddle (directly or through paddlenlp), or later zlib users crash.
import zlib  # noqa: F401
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from jobrun import make_tiny
from s3_faults import DyingProxy, FaultProxy

REPO = Path(__file__).resolve().parent.parent
# The light environment (no paddle) that scripts/launch and scripts/pull run in.
LIGHT_PYTHON = REPO / ".venv-light" / "bin" / "python"
FAKE_KEY_ID = "testing"
FAKE_SECRET = "testing"


@pytest.fixture(scope="session")
def _moto_endpoint() -> Iterator[str]:
    """One moto S3 server for the session (starting one takes ~0.3 s; each test uses its own bucket)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        inner = getattr(server, "_server", None)
        if inner is not None:
            inner.server_close()


def clean_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Remove the developer's AWS settings; set fake credentials that only moto accepts."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-such-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-such-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def s3_server(_moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """Endpoint URL of a moto S3 server on 127.0.0.1, with a clean fake AWS environment."""
    clean_aws_env(monkeypatch, tmp_path)
    yield _moto_endpoint


@pytest.fixture
def s3_client(s3_server: str):
    """A plain boto3 client on the moto server (to arrange or inspect objects behind the code's back)."""
    import boto3

    return boto3.session.Session().client("s3", endpoint_url=s3_server, region_name="us-east-1")


@pytest.fixture
def bucket(s3_client) -> str:
    """A fresh, empty bucket with a valid S3 name."""
    name = f"act-test-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def fault_proxy(s3_server: str) -> Iterator[Callable[..., FaultProxy]]:
    proxies: list[FaultProxy] = []

    def start(**kwargs) -> FaultProxy:
        proxy = FaultProxy(s3_server, **kwargs)
        threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.shutdown()
        proxy.server_close()


@pytest.fixture
def dying_proxy(s3_server: str) -> Iterator[Callable[..., DyingProxy]]:
    proxies: list[DyingProxy] = []

    def start(**kwargs) -> DyingProxy:
        proxy = DyingProxy(s3_server, **kwargs)
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.kill()


@pytest.fixture(scope="session")
def light_python() -> Path:
    """The light environment's interpreter; the test fails when .venv-light was not set up."""
    if not LIGHT_PYTHON.is_file():
        pytest.fail(
            f"{LIGHT_PYTHON} is missing: run bash scripts/setup.sh (it creates .venv-light from requirements/light.txt)"
        )
    return LIGHT_PYTHON


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict:
    """Local data files and a cache with a trained tiny UIE teacher (see tests/jobrun.py)."""
    return make_tiny(tmp_path_factory.mktemp("tiny"))
