#!/usr/bin/env python3
"""The bench's headline pair timed again as its users load it, interleaved in one process.

    python -m job lab headline_check --config configs/lab/headline_check.yaml

Reads a bench record (``bench``) and the work folder of the run that wrote it (``work``:
that run's ``--out``/work/full), takes the two models the record's headline chose
(``lab.bench_record.headline_sides``: the job's fastest published model within the gate,
and OpenVINO + NNCF INT8 of the original), and loads each the way its user does: a
published folder read by OpenVINO with the model card's loading code (``read_model`` of
``inference.pdmodel``, the card's compile settings, the row's precision setting, shapes
left dynamic), or a default oneDNN INT8 predictor as Taskflow serves it when the chosen
row is Paddle's; NNCF's IR read the same way. An OpenVINO side is also compiled reshaped
to the batch's static shape, as the bench's latency rows are. Every run gets the same batch
(the record's batch and sequence length, random token ids, full mask) in alternating rounds,
so drift on the machine lands on all alike. Prints the medians and the interleaved ratios
beside the record's, and writes one JSON record naming the CPU and its instruction sets
(``--record``).

The bench times its rows one after another, then this pair the same way as here
(``time_pair``, its ``headline_rounds``) for its headline; this check repeats that on its
own, with as many rounds as asked, as the user's client of the bench's figure.

Exit codes: 0 done; 1 a step failed; 2 bad input (a missing record, folder or OpenVINO).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from job.errors import InputError  # noqa: E402  (after the path: the lab runs from a checkout)
from job.pipeline import BENCH_RECORD  # noqa: E402

DEFAULT_CONFIG = "configs/lab/headline_check.yaml"
# The inputs of a UIE program, as Taskflow and the job feed them.
INPUTS = ("input_ids", "token_type_ids", "position_ids", "attention_mask")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """``python -m job lab headline_check``: which bench record, where its models are, how long to time."""

    bench: str = BENCH_RECORD
    """The bench record whose headline is checked (``--bench``)."""
    work: str = "bench-out/work/full"
    """The work folder of the bench run that wrote it: its ``--out``/work/full (``--work``)."""
    rounds: int = 10
    """Timed rounds; each runs both models once, the order alternating (``--rounds``)."""
    warmup: int = 3
    """Untimed runs of each model first (``--warmup``)."""
    threads: int = 0
    """CPU threads of both (0: the record's; ``--threads``)."""
    record: str = ""
    """Where the JSON record goes (empty: printed only; ``--record``)."""


@dataclasses.dataclass(frozen=True)
class Side:
    """One model of the headline as its user loads it."""

    label: str
    """What the record calls it."""
    runtime: str
    """``openvino`` or ``paddle-inference``."""
    source: Path
    """The program a user loads: a published ``inference.pdmodel`` or NNCF's ``.xml``."""
    hint: str
    """OpenVINO's INFERENCE_PRECISION_HINT ("" leaves its default); "" for Paddle."""
    recorded_ms: float
    """The bench's median for this row."""


def parser():
    """The check's flags; each overrides its config (``--config``) for this run."""
    from lab.cli import experiment_parser

    parser = experiment_parser("headline_check", __doc__, DEFAULT_CONFIG, ROOT)
    parser.add_argument("--bench", help="the bench record (default: the committed one)")
    parser.add_argument("--work", help="the bench run's work folder (default: bench-out/work/full)")
    parser.add_argument("--rounds", type=int, help="timed rounds (default 10)")
    parser.add_argument("--warmup", type=int, help="untimed runs of each model first (default 3)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: the record's)")
    parser.add_argument("--record", help="the JSON record to write (default: print only)")
    return parser


def configure(argv: list[str]) -> Experiment:
    """The check: its config with the flags applied, checked."""
    from lab.cli import config_with_flags

    args = parser().parse_args(argv)
    experiment = config_with_flags(args, Experiment, ("bench", "work", "rounds", "warmup", "threads", "record"))
    for key, least in (("rounds", 1), ("warmup", 0), ("threads", 0)):
        if getattr(experiment, key) < least:
            raise InputError(f"python -m job lab headline_check: --{key} must be >= {least}")
    return experiment


def sides(record: dict[str, Any], work: Path, name: str = "the bench record") -> tuple[Side, Side]:
    """(ours, peer): the headline's two rows of ``record`` (called ``name`` in errors), each
    with the file its user loads. InputError (one line) when the record has no headline pair
    or a file is missing."""
    from lab import bench_record
    from lab.bench_uie_base import model_folder, nncf_ir

    scope = str(record.get("int8_scope", "linear"))
    f1 = (record.get("accuracy") or {}).get("f1", {})
    chosen = bench_record.headline_sides(record.get("records") or [], f1, scope)
    out = []
    for key in ("ours", "peer"):
        row = chosen[key]["chosen"]
        if row is None:
            raise InputError(f"{name}: headline: no {key} row within the gate")
        if key == "peer":
            source = nncf_ir(work, row["model"])
        else:
            source = model_folder(work, row["model"], scope) / "inference.pdmodel"
        if not source.is_file():
            raise InputError(f"{source}: not found (--work must be the bench run's OUT/work/full)")
        hint = "" if row["runtime"] != "openvino" or row.get("hint", "default") == "default" else str(row["hint"])
        label = f"{row['model']}/{row.get('variant') or row['precision']}"
        out.append(Side(label, row["runtime"], source, hint, float(row["latency_ms"]["median"])))
    return out[0], out[1]


def batch(batch_size: int, seq_len: int, seed: int = 0) -> dict[str, Any]:
    """One batch of the four UIE inputs: random token ids, one segment, full mask."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 20_000, (batch_size, seq_len), dtype=np.int64)
    return {
        "input_ids": ids,
        "token_type_ids": np.zeros_like(ids),
        "position_ids": np.broadcast_to(np.arange(seq_len, dtype=np.int64), ids.shape).copy(),
        "attention_mask": np.ones_like(ids),
    }


# How a side's OpenVINO model is compiled: shapes left dynamic, as the model card's code
# leaves them; or reshaped to the batch's static shape first, as the bench's latency rows do.
SHAPES = ("dynamic", "static")


def open_side(side: Side, threads: int, shapes: str = "dynamic", shape: tuple[int, int] = (40, 128)):
    """``feed -> outputs`` for ``side``, loaded as the model card (``shapes`` dynamic) and
    Taskflow load it; ``static`` reshapes an OpenVINO model to ``shape`` before compiling."""
    if side.runtime == "paddle-inference":
        from lab.clients import default_int8_predictor, run_with

        return run_with(default_int8_predictor(side.source.parent, threads))
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(side.source))
    names = [i.get_any_name() for i in model.inputs]
    unknown = sorted(set(names) - set(INPUTS))
    if unknown:
        raise InputError(f"{side.source}: inputs {unknown} are not a UIE program's ({', '.join(INPUTS)})")
    if shapes == "static":
        model.reshape({name: list(shape) for name in names})
    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    if side.hint:
        config["INFERENCE_PRECISION_HINT"] = side.hint
    compiled = core.compile_model(model, "CPU", config)
    return lambda feed: list(compiled({name: feed[name] for name in names}).values())


def interleaved(runs: dict[str, Any], feed: dict[str, Any], rounds: int, warmup: int) -> dict[str, list[float]]:
    """Milliseconds per call of each of ``runs``, the order alternating round by round."""
    for run in runs.values():
        for _ in range(warmup):
            run(feed)
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            started = time.perf_counter()
            runs[name](feed)
            times[name].append((time.perf_counter() - started) * 1000.0)
    return times


def time_pair(
    ours: Side, peer: Side, threads: int, shape: tuple[int, int], rounds: int, warmup: int
) -> dict[str, dict[str, Any]]:
    """Per way of loading (``SHAPES``): both sides' median milliseconds, the ratio of the medians
    (peer / ours), the spread of each round's own ratio, and every time; all runs alternate in
    one loop on one batch of ``shape``. A Paddle side serves one way (Taskflow's), in both modes."""
    import zlib  # noqa: F401  (before paddle: see pitfalls)

    import numpy as np

    feed = batch(*shape)
    runs = {
        (key, shapes): open_side(side, threads, shapes, shape)
        for shapes in SHAPES
        for key, side in (("ours", ours), ("peer", peer))
        if shapes == "dynamic" or side.runtime == "openvino"
    }
    times = interleaved(runs, feed, rounds, warmup)
    modes = {}
    for shapes in SHAPES:
        o, p = times.get(("ours", shapes), times[("ours", "dynamic")]), times.get(("peer", shapes))
        if p is None:
            continue
        # Each round's own ratio: the machine's state moves both sides, not always alike.
        quartiles = np.percentile([b / a for a, b in zip(o, p, strict=True)], [0, 25, 50, 75, 100])
        modes[shapes] = {
            "ours_ms": round(float(np.median(o)), 1),
            "peer_ms": round(float(np.median(p)), 1),
            "ratio": round(float(np.median(p) / np.median(o)), 3),
            "round_ratios": dict(
                zip(("min", "q1", "median", "q3", "max"), (round(float(q), 3) for q in quartiles), strict=True)
            ),
            "times_ms": {"ours": [round(t, 1) for t in o], "peer": [round(t, 1) for t in p]},
        }
    return modes


def render_paragraph(record: dict[str, Any]) -> str:
    """The README's paragraph of one check record (``lab.readme_tables``, block ``headline-check``)."""
    hardware = record["hardware"]
    batch_size, seq_len = record["batch"]
    sides = record["sides"]

    def name(key: str) -> str:
        s = sides[key]
        setting = "its default precision" if s["hint"] == "default" else f"hint {s['hint']}"
        runtime = "OpenVINO" if s["runtime"] == "openvino" else "Paddle Inference"
        return f"`{s['label']}` ({runtime}, {setting}; the bench: {s['recorded_median_ms']:.1f} ms)"

    def mode(shapes: str) -> str:
        m = record["modes"][shapes]
        spread = m["round_ratios"]
        how = (
            "With shapes dynamic, as the model card loads them"
            if shapes == "dynamic"
            else "reshaped to the batch first"
        )
        return (
            f"{how}: ours {m['ours_ms']:.1f} ms, the peer {m['peer_ms']:.1f} ms, **{m['ratio']:.2f}×** "
            f"(each round's own ratio from {spread['min']:.2f}× to {spread['max']:.2f}×, the middle half "
            f"{spread['q1']:.2f}× to {spread['q3']:.2f}×)"
        )

    return (
        f"One check (`{record['command']}`, {record['date']}) on {hardware['cpu']} ({hardware['cores']} cores; "
        f"{', '.join(hardware['isa'])}), {record['threads']} threads, batch {batch_size} x {seq_len}, "
        f"{record['rounds']} alternating rounds after {record['warmup']} warm-up runs each, ours {name('ours')} "
        f"against the peer {name('peer')}, in `{record['bench_record']}` {record['recorded_ratio']:.3f}×. "
        + "; ".join(mode(shapes) for shapes in SHAPES if shapes in record["modes"])
        + "."
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = configure(argv)
    bench_path = Path(args.bench)
    try:
        record = json.loads(bench_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{bench_path}: not a readable bench record ({type(exc).__name__})") from None
    if not isinstance(record, dict):
        raise InputError(f"{bench_path}: not a bench record (a JSON object)")
    try:
        ours, peer = sides(record, Path(args.work), str(bench_path))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a record of another shape
        raise InputError(f"{bench_path}: not a bench record this check reads ({type(exc).__name__}: {exc})") from None
    try:
        import openvino
    except ImportError:
        raise InputError(
            "python -m job lab headline_check: OpenVINO is not installed "
            "(bash scripts/setup.sh --openvino, then .venv-openvino/bin/python)"
        ) from None

    from job.machine import cpu_facts

    settings = record.get("settings") or {}
    threads = args.threads or int(record.get("threads") or 2)
    shape = (int(settings.get("batch_size", 40)), int(settings.get("seq_len", 128)))
    modes = time_pair(ours, peer, threads, shape, args.rounds, args.warmup)
    # The bench's headline ratio: side by side in its own run when it has one, else its rows'.
    headline = (record.get("targets") or {}).get("headline") or {}
    recorded = float(headline.get("value") or peer.recorded_ms / ours.recorded_ms)
    out = {
        "schema": "headline-check/1",
        "what": (
            "the bench record's headline pair loaded as users load them (OpenVINO with the model card's code, "
            "shapes dynamic, and reshaped to the batch as the bench's latency rows are; Paddle as Taskflow "
            "serves it) and timed in alternating rounds in one process"
        ),
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["python -m job lab headline_check", *argv]),
        "bench_record": str(bench_path),
        "hardware": cpu_facts(),
        "versions": {"openvino": openvino.__version__},
        "threads": threads,
        "batch": list(shape),
        "rounds": args.rounds,
        "warmup": args.warmup,
        "sides": {
            key: {
                "label": side.label,
                "runtime": side.runtime,
                "hint": side.hint or "default",
                "source": side.source.relative_to(Path(args.work)).as_posix(),
                "recorded_median_ms": round(side.recorded_ms, 1),
            }
            for key, side in (("ours", ours), ("peer", peer))
        },
        "modes": modes,
        "recorded_ratio": round(recorded, 3),
    }
    print(render_paragraph(out))
    if args.record:
        Path(args.record).parent.mkdir(parents=True, exist_ok=True)
        Path(args.record).write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"saved {args.record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
