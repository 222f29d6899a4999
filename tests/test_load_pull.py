"""The pull's load check (``python -m job lab load_pull``, lab/load_pull.py) runs end to end at
a tiny scale: a real publish to a local S3 server, the real ``scripts/pull`` through the
fault proxy, every file verified, the record written; the verification and the proxy's
faults are real (a damaged file is caught, a cut answer is short)."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lab import load_pull

REPO = Path(__file__).resolve().parent.parent


def _tiny_config(tmp_path: Path) -> Path:
    config = tmp_path / "load_pull.yaml"
    config.write_text(
        f"out: {tmp_path / 'work'}\n"
        f"record_dir: {tmp_path / 'records'}\n"
        "tasks: [uie, tnews]\n"
        "strategies: [ptq, qat_dis]\n"
        "folder: {inference.pdiparams: 4000000, inference.pdmodel: 200000, vocab.txt: 18000}\n"
        "scales: [0.01, 0.02]\n"
        "slowdown_every: 15\n"
        "drop_every: 2\n"
        "drop_min_bytes: 30000\n",
        encoding="utf-8",
    )
    return config


def test_the_load_check_pulls_a_run_through_faults_and_verifies_every_file(tmp_path, light_python):
    done = subprocess.run(
        [sys.executable, "-m", "job", "lab", "load_pull", "--config", str(_tiny_config(tmp_path))],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [record_file] = (tmp_path / "records").glob("load-pull-*.json")
    record = json.loads(record_file.read_text(encoding="utf-8"))
    assert record["hardware"]["cpu"] and "isa" in record["hardware"]
    assert [s["scale"] for s in record["scales"]] == [0.01, 0.02]
    for scale in record["scales"]:
        assert scale["exit_code"] == 0 and not scale["problems"]
        assert scale["tasks"] == 4 and scale["files"] == 4 * 4  # three files and results.json per folder
        assert scale["verified_files"] == scale["files"]
        # Each folder's weights (40 or 80 KB) are large answers: every other one is cut.
        assert scale["drops"] >= 2 and scale["slowdowns"] >= 1
        assert scale["retries"] == scale["slowdowns"] + scale["drops"], "every fault was retried by the pull"
        assert scale["peak_rss_mb"] > 10 and scale["mb_per_s"] > 0
    assert record["scales"][1]["folder_bytes"] == 2 * record["scales"][0]["folder_bytes"]
    assert load_pull.render_paragraph(record) in done.stdout
    assert not list((tmp_path / "work").rglob("*")), "each scale's folders are removed"


def _published(tmp_path: Path) -> tuple[Path, dict[str, dict[str, str]]]:
    dest = tmp_path / "pulled"
    expected = {}
    for name in ("run/uie/ptq", "run/uie/qat_dis"):
        expected[name] = load_pull._write_folder(dest / name, {"a.bin": 1000, "b.txt": 10}, name, b"{}")
        (dest / name / "manifest.json").write_text("{}", encoding="utf-8")
        (dest / name / "_SUCCESS").write_bytes(b"")
    return dest, expected


def test_verification_catches_a_changed_missing_or_extra_file(tmp_path):
    dest, expected = _published(tmp_path)
    assert load_pull.verify_pulled(dest, expected) == (6, [])
    damaged = dest / "run/uie/ptq/a.bin"
    damaged.write_bytes(bytes([damaged.read_bytes()[0] ^ 1]) + damaged.read_bytes()[1:])
    (dest / "run/uie/qat_dis/b.txt").unlink()
    verified, problems = load_pull.verify_pulled(dest, expected)
    assert verified == 2
    assert problems == [
        "run/uie/ptq/a.bin: SHA-256 differs from the bytes published",
        "run/uie/qat_dis: missing ['b.txt'], unexpected []",
    ]
    shutil.copy(dest / "run/uie/ptq/b.txt", dest / "run/uie/ptq/stray")
    assert "run/uie/ptq: missing [], unexpected ['stray']" in load_pull.verify_pulled(dest, expected)[1]


def test_the_proxy_cuts_every_nth_large_answer_and_throttles_every_nth_request():
    """Against a plain HTTP server: the cut answer announces its full length and ends after half."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = bytes(range(256)) * 400  # 102,400 bytes

    class Origin(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    origin = ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    proxy = load_pull.LoadProxy(origin.server_address, slowdown_every=3, drop_every=2, drop_min_bytes=50_000)
    for server in (origin, proxy):
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        statuses, lengths = [], []
        for _ in range(4):
            conn = http.client.HTTPConnection("127.0.0.1", proxy.server_address[1], timeout=10)
            conn.request("GET", "/object")
            response = conn.getresponse()
            statuses.append(response.status)
            try:
                lengths.append(len(response.read()))
            except http.client.IncompleteRead as exc:
                lengths.append(len(exc.partial))
            conn.close()
    finally:
        for server in (proxy, origin):
            server.shutdown()
            server.server_close()
    # Requests 1, 2, 4 are answered (the 2nd large answer is cut at half), the 3rd is throttled.
    assert statuses == [200, 200, 503, 200]
    assert lengths[0] == lengths[3] == len(body) and lengths[1] == len(body) // 2
    assert (proxy.slowdowns, proxy.drops, proxy.retries) == (1, 1, 2)


@pytest.mark.parametrize("bad", ["scales: [0]", "drop_every: 1", "tasks: [uie, uie]", "folder: {results.json: 1}"])
def test_a_bad_setting_is_refused_in_one_line(tmp_path, bad):
    config = tmp_path / "bad.yaml"
    config.write_text(bad + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "job", "lab", "load_pull", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and str(config) in done.stderr, done.stderr


def test_peak_memory_is_the_pull_processs_own_not_its_parents():
    """A parent holding 300 MB starts a child that touches 80 MB: the child's peak is about
    80 MB more than an idle interpreter's, not the parent's 300 MB (Linux carries the
    parent's peak into the child's ``ru_maxrss``)."""
    held = bytearray(300 * 1024 * 1024)
    held[::4096] = b"x" * len(held[::4096])  # resident, not just reserved

    def peak(code: str) -> float:
        process = subprocess.Popen([sys.executable, "-c", code])
        return load_pull.watch_peak_rss(process) / 1e6

    idle = peak("import time; time.sleep(0.3)")
    busy = peak("import time; b = bytearray(80 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.3)")
    del held
    assert 0 < idle < 100, idle
    assert 80 < busy - idle < 100, (idle, busy)
