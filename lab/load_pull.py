#!/usr/bin/env python3
"""Load check of ``scripts/pull`` (issue 20, item 7): a whole run pulled through injected faults.

    python -m job lab load_pull [--scales 0.025 0.2 0.5] [--record-dir records]

Starts a local S3 server (moto, HTTP on 127.0.0.1), publishes a run of 8 tasks x 3
strategies through the job's own ``job.storage.publish`` (real manifests, ``_SUCCESS``
markers), each folder shaped like a UIE-base INT8 folder with every file's size multiplied
by a scale factor, then runs the real ``scripts/pull get`` (light environment, a
subprocess) against it through a proxy that answers 503 SlowDown to every Nth request and
cuts every Nth large response mid-body. Per scale it reports the pull's throughput, its
peak memory (the pull process's own ``VmHWM``, read from /proc while it runs), the faults injected and
their retries (a faulted request seen again), and checks every pulled file against the SHA-256 of
the bytes published. Two scales show whether peak memory grows with the folder size.

Writes ``records/load-pull-DATE-CPU.json`` (the CPU and its instruction sets, versions).
Exit codes: 0 every scale pulled and verified; 1 a pull failed or a file did not verify;
2 bad arguments.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_CONFIG = "configs/lab/load_pull.yaml"
LIGHT_PYTHON = ROOT / ".venv-light" / "bin" / "python"
BUCKET = "load-pull"
SCHEMA = 1
_MB = 1_000_000


def _tasks() -> list[str]:
    return ["uie", "afqmc", "tnews", "iflytek", "cmnli", "ocnli", "cluewsc2020", "csl"]


def _strategies() -> list[str]:
    return ["ptq", "qat_dis", "prune_ptq"]


def _folder() -> dict[str, int]:
    # A published UIE-base INT8 folder (float32 weights behind per-tensor quantize pairs).
    return {
        "inference.pdiparams": 448_000_000,
        "inference.pdmodel": 1_500_000,
        "vocab.txt": 182_000,
        "config.json": 700,
        "tokenizer_config.json": 400,
        "special_tokens_map.json": 150,
    }


@dataclasses.dataclass(frozen=True)
class Experiment:
    """``python -m job lab load_pull``: the run published, the scales, the faults injected."""

    out: str = "runs/load-pull"
    """Work folder: the folders published and the pulls' destinations, removed after each scale (``--out``)."""
    record_dir: str = "records"
    """Where ``load-pull-DATE-CPU.json`` is written (``--record-dir``)."""
    tasks: list[str] = dataclasses.field(default_factory=_tasks)
    """Task names of the run, one folder per task and strategy."""
    strategies: list[str] = dataclasses.field(default_factory=_strategies)
    """Strategy names of the run."""
    folder: dict[str, int] = dataclasses.field(default_factory=_folder)
    """One task folder at full size: file name -> bytes (results.json is added, real and unscaled)."""
    scales: list[float] = dataclasses.field(default_factory=lambda: [0.025, 0.2, 0.5])
    """Each scale is one publish and one pull: every file's size times the scale (``--scales``)."""
    slowdown_every: int = 20
    """The proxy answers 503 SlowDown to every Nth request (0: never)."""
    drop_every: int = 3
    """The proxy cuts every Nth large response after half its body (0: never)."""
    drop_min_bytes: int = 0
    """Responses from this many bytes are large (the manifest and results.json are small reads; their
    retry is item 5 of issue 20)."""

    def check(self) -> None:
        from job.config import require
        from job.storage.locations import is_safe_name

        for key in ("tasks", "strategies"):
            names = getattr(self, key)
            require(bool(names) and len(set(names)) == len(names), key, "expected distinct names")
            require(all(is_safe_name(n) for n in names), key, "expected safe path components")
        require(bool(self.folder), "folder", "expected at least one file")
        require(all(size >= 0 for size in self.folder.values()), "folder", "sizes must be >= 0")
        require("results.json" not in self.folder, "folder", "results.json is written by the experiment")
        require(bool(self.scales) and all(0 < s <= 1 for s in self.scales), "scales", "expected values in (0, 1]")
        require(self.slowdown_every == 0 or self.slowdown_every >= 2, "slowdown_every", "must be 0 or >= 2")
        require(self.drop_every == 0 or self.drop_every >= 2, "drop_every", "must be 0 or >= 2")
        require(self.drop_min_bytes >= 0, "drop_min_bytes", "must be >= 0")


# -- the faults -----------------------------------------------------------------------------

_SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>load-proxy</RequestId></Error>"
)
_HOP = ("connection", "keep-alive", "proxy-connection", "expect", "transfer-encoding")


class LoadProxy(ThreadingHTTPServer):
    """HTTP proxy in front of the S3 server that streams every body (its own memory stays
    flat) and injects faults by count: 503 SlowDown to every ``slowdown_every``-th request,
    and every ``drop_every``-th GET answer of at least ``drop_min_bytes`` cut after half its
    body. Records every request (method, path, Range), the faults and their retries."""

    daemon_threads = True

    def __init__(self, upstream: tuple[str, int], slowdown_every: int, drop_every: int, drop_min_bytes: int):
        super().__init__(("127.0.0.1", 0), _LoadHandler)
        self.upstream = upstream
        self.slowdown_every = slowdown_every
        self.drop_every = drop_every
        self.drop_min_bytes = drop_min_bytes
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, str]] = []
        self._failed: dict[tuple[str, str, str], int] = {}  # request -> faults not yet retried
        self.retries = 0
        self.large_answers = 0
        self.slowdowns = 0
        self.drops = 0
        self.bytes_out = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def _arrived(self, request: tuple[str, str, str]) -> int:
        """Record a request; one that repeats a faulted request (same method, path and Range) is a retry."""
        with self.lock:
            self.requests.append(request)
            if self._failed.get(request):
                self._failed[request] -= 1
                self.retries += 1
            return len(self.requests)

    def _faulted(self, request: tuple[str, str, str], kind: str) -> None:
        with self.lock:
            self._failed[request] = self._failed.get(request, 0) + 1
            if kind == "slowdown":
                self.slowdowns += 1
            else:
                self.drops += 1


class _LoadHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LoadProxy

    def log_message(self, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        proxy = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        request = (self.command, self.path, self.headers.get("Range", ""))
        number = proxy._arrived(request)
        if proxy.slowdown_every and number % proxy.slowdown_every == 0:
            proxy._faulted(request, "slowdown")
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(_SLOWDOWN)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(_SLOWDOWN)
            self.close_connection = True
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            size = int(response.getheader("Content-Length") or 0)
            cut = False
            if self.command == "GET" and response.status in (200, 206) and size >= proxy.drop_min_bytes:
                with proxy.lock:
                    proxy.large_answers += 1
                    cut = bool(proxy.drop_every) and proxy.large_answers % proxy.drop_every == 0
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in _HOP:
                    self.send_header(key, value)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if cut:
                proxy._faulted(request, "drop")
            if self.command == "HEAD":
                return
            sent, stop = 0, size // 2 if cut else None
            while chunk := response.read(256 * 1024):
                if stop is not None and sent + len(chunk) >= stop:
                    self.wfile.write(chunk[: stop - sent])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)  # the connection drops mid-body
                    sent = stop
                    break
                self.wfile.write(chunk)
                sent += len(chunk)
            with proxy.lock:
                proxy.bytes_out += sent
        finally:
            conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


# -- one scale: publish, pull, verify ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ScaleResult:
    """One scale's pull: what it moved, how fast, how much memory, which faults it survived."""

    scale: float
    folder_bytes: int
    tasks: int
    files: int
    bytes: int
    publish_seconds: float
    pull_seconds: float
    mb_per_s: float
    peak_rss_mb: float
    exit_code: int
    requests: int
    slowdowns: int
    drops: int
    retries: int
    verified_files: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.problems


def _results_json(run_id: str, task: str, strategy: str) -> bytes:
    """A real results.json (the UIE PTQ fixture) named for this folder, so the pull prints its table."""
    data = json.loads((ROOT / "tests" / "fixtures" / "results" / "uie_ptq.json").read_text(encoding="utf-8"))
    data.update(run_id=run_id, task=task, strategy=strategy)
    return json.dumps(data, indent=1).encode()


def _write_folder(folder: Path, sizes: dict[str, int], seed: str, results: bytes) -> dict[str, str]:
    """Random files of the given sizes (each folder's own bytes); returns name -> SHA-256."""
    folder.mkdir(parents=True)
    rng = random.Random(seed)
    digests = {}
    for name, size in {**sizes, "results.json": -1}.items():
        data = results if size < 0 else rng.randbytes(size)
        (folder / name).write_bytes(data)
        digests[name] = hashlib.sha256(data).hexdigest()
    return digests


def verify_pulled(dest: Path, expected: dict[str, dict[str, str]]) -> tuple[int, list[str]]:
    """Every task folder under ``dest`` (``run/task/strategy``) holds exactly the files published,
    ``manifest.json`` and ``_SUCCESS``, each file with the SHA-256 of the bytes published."""
    verified, problems = 0, []
    for name, digests in expected.items():
        folder = dest / name
        found = (
            {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()
        )
        want = {*digests, "manifest.json", "_SUCCESS"}
        if found != want:
            problems.append(f"{name}: missing {sorted(want - found)}, unexpected {sorted(found - want)}")
            continue
        for rel, sha in digests.items():
            with open(folder / rel, "rb") as fh:
                if hashlib.file_digest(fh, "sha256").hexdigest() != sha:
                    problems.append(f"{name}/{rel}: SHA-256 differs from the bytes published")
                    continue
            verified += 1
    return verified, problems


def _high_water(pid: int) -> int | None:
    """``VmHWM`` of a live process (its peak resident memory, in bytes); None once it has exited."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def watch_peak_rss(process: subprocess.Popen, every: float = 0.02) -> int:
    """Wait for ``process``; return its peak resident memory in bytes, read from /proc every ``every`` s.

    Not ``getrusage``/``wait4``: Linux carries the parent's peak RSS at the spawn into the
    child's ``ru_maxrss``, and this parent holds the S3 server's objects. ``VmHWM`` belongs to
    the process's own address space; it only grows, so the last reading before the exit is
    its peak unless the peak came within the final ``every`` seconds.
    """
    peak = 0
    while True:
        peak = max(peak, _high_water(process.pid) or 0)
        if process.poll() is not None:
            return peak
        time.sleep(every)


def _env(endpoint: str, home: Path) -> dict[str, str]:
    """Fake credentials only the local server accepts; none of the caller's AWS settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env.update(
        AWS_ACCESS_KEY_ID="load-pull",
        AWS_SECRET_ACCESS_KEY="load-pull",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(home / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        NO_PROXY="127.0.0.1,localhost",
        AWS_ENDPOINT_URL=endpoint,
    )
    return env


def run_scale(experiment: Experiment, scale: float, endpoint: str, work: Path) -> ScaleResult:
    """Publish the run at ``scale`` to the server at ``endpoint``, pull it through a fresh
    ``LoadProxy`` with the real ``scripts/pull``, verify it; ``work`` is removed afterwards."""
    from job.config import StorageConfig
    from job.storage import Storage, publish

    run_id = f"load-{scale:g}".replace(".", "p")
    sizes = {name: round(size * scale) for name, size in experiment.folder.items()}
    storage = Storage(StorageConfig(endpoint_url=endpoint), environ=_env(endpoint, work))
    expected: dict[str, dict[str, str]] = {}
    publish_seconds = 0.0
    try:
        for task in experiment.tasks:
            for strategy in experiment.strategies:
                name = f"{run_id}/{task}/{strategy}"
                local = work / "published" / name
                expected[name] = _write_folder(local, sizes, name, _results_json(run_id, task, strategy))
                started = time.perf_counter()
                publish(
                    storage,
                    local,
                    f"s3://{BUCKET}/act/{name}",
                    fingerprint=f"load-pull-{scale:g}",
                    status="complete",
                    progress=False,
                )
                publish_seconds += time.perf_counter() - started
                shutil.rmtree(local)
        host, port = endpoint.removeprefix("http://").rsplit(":", 1)
        proxy = LoadProxy(
            (host, int(port)), experiment.slowdown_every, experiment.drop_every, experiment.drop_min_bytes
        )
        threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        dest = work / "pulled"
        command = [str(LIGHT_PYTHON), str(ROOT / "scripts" / "pull"), "get", f"s3://{BUCKET}/act", "--run", run_id]
        command += ["--dest", str(dest), "--no-progress", "--endpoint-url", proxy.url]
        log = work / "pull.log"
        try:
            with open(log, "wb") as out:
                started = time.perf_counter()
                process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=_env(proxy.url, work))
                peak = watch_peak_rss(process)
                pull_seconds = time.perf_counter() - started
        finally:
            proxy.shutdown()
            proxy.server_close()
        verified, problems = verify_pulled(dest, expected)
        if process.returncode != 0:
            tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
            problems.insert(0, f"scripts/pull exited with {process.returncode}: " + " | ".join(tail))
        total = sum(len(expected) * s for s in sizes.values()) + sum(
            (dest / name / "results.json").stat().st_size
            for name in expected
            if (dest / name / "results.json").is_file()
        )
        return ScaleResult(
            scale=scale,
            folder_bytes=sum(sizes.values()),
            tasks=len(expected),
            files=sum(len(d) for d in expected.values()),
            bytes=total,
            publish_seconds=round(publish_seconds, 2),
            pull_seconds=round(pull_seconds, 2),
            mb_per_s=round(total / _MB / pull_seconds, 3),
            peak_rss_mb=round(peak / _MB, 1),
            exit_code=process.returncode,
            requests=len(proxy.requests),
            slowdowns=proxy.slowdowns,
            drops=proxy.drops,
            retries=proxy.retries,
            verified_files=verified,
            problems=problems,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- the experiment ------------------------------------------------------------------------


def parser():
    """The load check's flags; each overrides its config (``--config``) for this run."""
    from lab.cli import experiment_parser

    parser = experiment_parser("load_pull", __doc__, DEFAULT_CONFIG, ROOT)
    parser.add_argument("--out", help="work folder, removed after each scale (default: runs/load-pull)")
    parser.add_argument("--record-dir", help="where load-pull-DATE-CPU.json is written (default: records)")
    parser.add_argument(
        "--scales", nargs="+", type=float, metavar="SCALE", help="folder scales (default: 0.025 0.2 0.5)"
    )
    return parser


def configure(argv: list[str]) -> Experiment:
    """The experiment: its config with the flags applied, checked."""
    from job.errors import InputError
    from lab.cli import config_with_flags

    args = parser().parse_args(argv)
    experiment = config_with_flags(args, Experiment, ("out", "record_dir", "scales"))
    if not all(0 < s <= 1 for s in experiment.scales):
        raise InputError("python -m job lab load_pull: --scales must be in (0, 1]")
    return experiment


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "cpu"


def make_record(experiment: Experiment, results: list[ScaleResult], hardware: dict, versions: dict) -> dict:
    """The committed form of one load check: the settings, the machine, one entry per scale."""
    return {
        "schema": SCHEMA,
        "hardware": hardware,
        "versions": versions,
        "settings": {
            "tasks": len(experiment.tasks) * len(experiment.strategies),
            "full_folder_bytes": sum(experiment.folder.values()),
            "slowdown_every": experiment.slowdown_every,
            "drop_every": experiment.drop_every,
            "drop_min_bytes": experiment.drop_min_bytes,
        },
        "scales": [dataclasses.asdict(r) for r in results],
    }


def _nth(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def render_paragraph(record: dict) -> str:
    """The README's load-check paragraph: every figure read from the record."""
    settings = record["settings"]
    lines = [
        f"Measured on {record['hardware']['cpu']} ({record['hardware']['cores']} cores): "
        f"{settings['tasks']} task folders, a full-size folder {settings['full_folder_bytes'] / _MB:.0f} MB "
        "(each file's size times the scale), "
        f"503 SlowDown to every {_nth(settings['slowdown_every'])} request and "
        f"every {_nth(settings['drop_every'])} answer"
        + (f" of at least {settings['drop_min_bytes'] / _MB:g} MB" if settings["drop_min_bytes"] else "")
        + " cut after half its body (manifests and results.json included"
        + (" when that small" if settings["drop_min_bytes"] else "")
        + "); MB are 10^6 bytes.",
        "",
    ]
    headers = ["scale", "folder", "pulled", "time", "throughput", "peak memory of the pull", "faults", "faults retried"]
    headers += ["files verified"]
    rows = [
        [
            f"{s['scale']:g}",
            f"{s['folder_bytes'] / _MB:.1f} MB",
            f"{s['bytes'] / _MB:.0f} MB",
            f"{s['pull_seconds']:.1f} s",
            f"{s['mb_per_s']:.1f} MB/s",
            f"{s['peak_rss_mb']:.1f} MB",
            f"{s['slowdowns']} SlowDown, {s['drops']} cut",
            f"{s['retries']} of {s['slowdowns'] + s['drops']}",
            f"{s['verified_files']} of {s['files']}" + ("" if s["exit_code"] == 0 else f", exit {s['exit_code']}"),
        ]
        for s in record["scales"]
    ]
    from job import tables

    return "\n".join([*lines, *tables.markdown(headers, rows, ["---"] * len(headers))])


def main(argv: list[str] | None = None) -> int:
    experiment = configure(list(sys.argv[1:] if argv is None else argv))
    import logging
    from importlib.metadata import PackageNotFoundError, version

    from moto.server import ThreadedMotoServer

    from job.machine import cpu_facts

    if not LIGHT_PYTHON.is_file():
        print(f"error: {LIGHT_PYTHON} is missing: run bash scripts/setup.sh", file=sys.stderr)
        return 2
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    out = Path(experiment.out).resolve()
    results = []
    try:
        import boto3

        env = _env(endpoint, out)
        boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"]
        ).client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
        for scale in experiment.scales:
            print(
                f"--> scale {scale:g}: publish {len(experiment.tasks) * len(experiment.strategies)} folders", flush=True
            )
            result = run_scale(experiment, scale, endpoint, out / f"scale-{scale:g}")
            results.append(result)
            print(json.dumps(dataclasses.asdict(result)), flush=True)
    finally:
        server.stop()
        inner = getattr(server, "_server", None)
        if inner is not None:
            inner.server_close()

    def _version(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    facts = cpu_facts()
    versions = {"python": sys.version.split()[0]} | {
        n: _version(n) for n in ("boto3", "botocore", "s3transfer", "moto")
    }
    record = make_record(experiment, results, facts, versions)
    path = Path(experiment.record_dir) / f"load-pull-{datetime.date.today():%Y-%m-%d}-{_slug(str(facts['cpu']))}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(render_paragraph(record))
    print(f"\nsaved {path}")
    for result in results:
        for problem in result.problems:
            print(f"error: scale {result.scale:g}: {problem}", file=sys.stderr)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
