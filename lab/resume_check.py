#!/usr/bin/env python3
"""Resume by stage, measured: the demo job (one fast strategy) publishing to a local S3
server is killed (SIGKILL) as its publish starts, then run again with the same run id; the
record holds both runs' times, the stages the rerun reused (from its log) and whether the
published model and evaluation are the ones staged by the killed run.

    python -m job lab resume_check [--strategy ptq]

Writes records/resume-check-<date>-<cpu>.json.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEMO = "configs/uie_demo.yaml"
DEFAULT_CONFIG = "configs/lab/resume_check.yaml"


@dataclasses.dataclass(frozen=True)
class Experiment:
    """``python -m job lab resume_check``: which strategy, which run id, where the record goes."""

    strategy: str = "ptq"
    """``Job.strategies`` of both runs (``--strategy``): a fast one keeps the check short."""
    records: str = "records"
    """Folder of the record (``--records``)."""

    def check(self) -> None:
        from job.config import STRATEGIES, require

        require(self.strategy in STRATEGIES, "strategy", f"not a strategy; choose among {', '.join(STRATEGIES)}")


def parser():
    from lab.cli import experiment_parser

    parser = experiment_parser("resume_check", __doc__, DEFAULT_CONFIG, ROOT)
    parser.add_argument("--strategy", help="the strategy of both runs (default: ptq)")
    parser.add_argument("--records", help="folder of the record (default: records)")
    return parser


def configure(argv: list[str]) -> Experiment:
    from lab.cli import config_with_flags

    args = parser().parse_args(argv)
    return config_with_flags(args, Experiment, ("strategy", "records"))


def _run(command: list[str], env: dict[str, str], kill_on: str | None) -> dict:
    """Run the job; SIGKILL it when a stderr line contains ``kill_on``. Its time, exit code, log."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    killed = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if kill_on and kill_on in line and not killed.is_set():
                proc.send_signal(signal.SIGKILL)
                killed.set()

    reader = threading.Thread(target=read)
    reader.start()
    code = proc.wait()
    reader.join()
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "exit_code": code,
        "killed": killed.is_set(),
        "log": lines,
    }


def main(argv: list[str] | None = None) -> int:
    experiment = configure(list(sys.argv[1:] if argv is None else argv))

    import boto3
    from moto.server import ThreadedMotoServer

    from job.machine import cpu_facts

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONPATH": str(ROOT),
    }
    s3 = boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="x"
    )
    bucket = f"resume-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    run_id = "resume"
    command = [
        sys.executable,
        "-m",
        "job",
        "run",
        "--config",
        DEMO,
        f"Job.strategies=[{experiment.strategy}]",
        f"Job.output=s3://{bucket}/act",
        f"Job.run_id={run_id}",
    ]
    prefix = f"act/{run_id}/uie/{experiment.strategy}/"

    def objects() -> dict[str, bytes]:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
        return {k[len(prefix) :]: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}

    try:
        print(f"--> {' '.join(command[1:])} (killed as its publish starts)", flush=True)
        first = _run(command, env, kill_on="phase publish: started")
        after_kill = objects()
        print(f"--> the same again, same run id ({first['seconds']} s, exit {first['exit_code']})", flush=True)
        second = _run(command, env, kill_on=None)
        final = objects()
    finally:
        server.stop()
    staged = json.loads(after_kill.get("_staging/compress/staged.json", b"null"))
    manifest = json.loads(final.get("manifest.json", b"null"))
    results = json.loads(final.get("results.json", b"null"))
    record_json = json.loads(after_kill.get("_staging/compress/record.json", b"null"))
    same_files = bool(staged and manifest) and all(
        staged["files"][name]["sha256"] == manifest["files"][name]["sha256"]
        for name in ("inference.pdmodel", "inference.pdiparams")
    )
    same_eval = bool(results and record_json) and results["after"] == record_json["evaluation"]["values"]
    reused = [m.group(1) for line in second["log"] if (m := re.search(r"reused staged stage (\w+)", line))]
    facts = cpu_facts()
    record = {
        "schema": 1,
        "command": " ".join(["python", *command[1:]]).replace(f"s3://{bucket}", "s3://BUCKET"),
        "hardware": facts,
        "first": {k: v for k, v in first.items() if k != "log"} | {"published_before_kill": "_SUCCESS" in after_kill},
        "second": {k: v for k, v in second.items() if k != "log"} | {"complete": "_SUCCESS" in final},
        "reused_stages": reused,
        "reuse_log": [line for line in second["log"] if "staged" in line or "staging" in line][:10],
        "staging_removed_after_publish": not any(k.startswith("_staging/") for k in final),
        "identical": {"model_file_sha256": same_files, "evaluation": same_eval},
        "after": results["after"] if results else None,
    }
    cpu = re.sub(r"[^a-z0-9]+", "-", str(facts.get("cpu", "cpu")).lower()).strip("-")[:40]
    out = ROOT / experiment.records / f"resume-check-{datetime.date.today().isoformat()}-{cpu}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in record.items() if k != "hardware"}, indent=1))
    print(f"saved {out}")
    return 0 if reused and same_files and same_eval and record["second"]["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
