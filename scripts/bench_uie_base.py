#!/usr/bin/env python3
"""UIE-base latency on this machine, against the project's targets.

    .venv/bin/python scripts/bench_uie_base.py            # full run (batch 40, length 128)
    .venv/bin/python scripts/bench_uie_base.py --quick    # smoke test: small shape, few repeats

Builds a UIE with the shape of PaddleNLP's uie-base (12 layers, 768 hidden, 12 heads,
vocabulary 40,000; random weights: latency does not depend on them) and its tokenizer
(the embedded People's Daily benchmark's characters plus ``[unusedN]`` fillers), exports
it, compresses it with the project's own ``job.compress.run`` (strategy ``ptq``, and
``prune_ptq``: 25 % of heads and FFN width pruned with distillation, then PTQ) and then
measures in one run, through ``job.benchmark``:

* Paddle Inference (oneDNN): FP32, PTQ INT8, pruned + INT8, at batch 40 / length 128;
* ONNX Runtime: the FP32 model exported by paddle2onnx, at FP32 and at its best INT8;
* dynamic padding against padding to 128, on the benchmark's real test texts.

It prints a table, the ratios against the targets with PASS or MISS, and for a missed
target the op types that dominate. Everything printed, and every record as JSON, is saved
under ``--out`` (default ./bench-out). Built and compressed models are kept under
``--out``/work and reused by the next run with the same settings (``--rebuild`` to redo).
Timings are only as good as the machine is quiet: run it with nothing else running.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

log = logging.getLogger("job.bench")

VOCAB_SIZE = 40000


@dataclasses.dataclass(frozen=True)
class Settings:
    shape: str
    batch_size: int
    seq_len: int
    warmup: int
    repeats: int
    test_examples: int  # 0: the whole test split
    train_examples: int
    dev_examples: int
    calib_batches: int
    train_iter: int


FULL = Settings("uie-base", 40, 128, warmup=3, repeats=10, test_examples=0, train_examples=256, dev_examples=64, calib_batches=8, train_iter=4)
QUICK = Settings("uie-micro", 16, 128, warmup=1, repeats=3, test_examples=800, train_examples=64, dev_examples=32, calib_batches=2, train_iter=2)

# (key, description, threshold): ratio >= threshold passes.
TARGETS = (
    ("ptq", "Paddle PTQ INT8 vs Paddle FP32 (latency, batch x 128)", 3.5),
    ("prune_ptq", "Paddle pruned+INT8 vs Paddle FP32 (latency, batch x 128)", 4.5),
    ("peer", "Paddle INT8 vs ONNX Runtime best INT8 (same network, latency)", 1.3),
    ("dynamic", "dynamic padding vs pad-to-128 (throughput, every Paddle model)", 1.5),
)


def main(argv: list[str] | None = None) -> int:
    from job.config import INT8_SCOPES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"smoke test: {QUICK.shape}, batch {QUICK.batch_size}, {QUICK.repeats} repeats")
    parser.add_argument("--out", default="bench-out", help="output folder (default: ./bench-out)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default 0: every core)")
    parser.add_argument("--repeats", type=int, help="timed runs per figure (default: 10, quick 3)")
    parser.add_argument("--warmup", type=int, help="warm-up runs (default: 3, quick 1)")
    parser.add_argument("--no-onnx", action="store_true", help="leave out the ONNX Runtime peer")
    parser.add_argument("--rebuild", action="store_true", help="rebuild and recompress the models even when --out/work holds them")
    parser.add_argument("--no-profile", action="store_true", help="do not profile ops when a target is missed")
    parser.add_argument("--int8-scope", choices=INT8_SCOPES, default="linear", help="what the quantized programs run in INT8 (Job.int8_scope; default: linear, as the job publishes them)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)

    from job import logs

    logs.setup(verbose=args.verbose)
    settings = QUICK if args.quick else FULL
    if args.repeats:
        settings = dataclasses.replace(settings, repeats=args.repeats)
    if args.warmup is not None:
        settings = dataclasses.replace(settings, warmup=args.warmup)
    out = Path(args.out)
    work = out / "work" / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    phases: dict[str, float] = {}

    from job.runtime import set_threads

    threads = set_threads(args.threads)
    with logs.phase("data and tokenizer", phases):
        task, vocab_dir = _data(work, settings)
    with logs.phase("build and export", phases):
        fp32 = _build(work, settings, vocab_dir, args.rebuild)
    with logs.phase("PTQ (job.compress, strategy ptq)", phases):
        ptq = _compress(work, settings, "ptq", fp32, task, threads, args.rebuild, args.int8_scope)
    with logs.phase("prune + PTQ (job.compress, strategy prune_ptq)", phases):
        pruned = _compress(work, settings, "prune_ptq", fp32, task, threads, args.rebuild, args.int8_scope)

    from job.evaluate import model_params

    params = {name: model_params(m) for name, m in (("fp32", fp32), ("ptq", ptq), ("prune_ptq", pruned))}
    if params["prune_ptq"] >= params["fp32"]:
        print(f"error: the pruned model is not smaller ({params['prune_ptq']:,} >= {params['fp32']:,} parameters): pruning pruned nothing", file=sys.stderr)
        return 1

    from job import benchmark
    from job.config import BenchmarkConfig

    cfg = BenchmarkConfig(
        enabled=True,
        device="cpu",
        batch_size=settings.batch_size,
        max_seq_len=settings.seq_len,
        threads=args.threads,
        warmup=settings.warmup,
        repeats=settings.repeats,
        precisions=["fp32", "int8"],
        dynamic_padding=True,
        onnx_peer=not args.no_onnx,
    )
    with logs.phase("benchmark", phases):
        result = benchmark.run(cfg, {"fp32": fp32, "ptq": ptq, "prune_ptq": pruned}, task, workdir=work / "bench", onnx_from="fp32")

    lines = [
        f"# UIE latency benchmark ({'quick' if args.quick else 'full'}): shape {settings.shape}, vocabulary {VOCAB_SIZE}, random weights",
        f"# batch {settings.batch_size}, sequence {settings.seq_len}, {threads} threads, warm-up {settings.warmup}, {settings.repeats} timed runs",
        f"# INT8 scope of the quantized programs: {args.int8_scope} (served by oneDNN with its defaults, as Taskflow serves them)",
        f"# parameters: FP32 {params['fp32']:,}; PTQ {params['ptq']:,}; pruned+PTQ {params['prune_ptq']:,} ({params['prune_ptq'] / params['fp32']:.1%} of FP32)",
        "",
        result.summary(),
        "",
    ]
    ratios = _ratios(result)
    lines += _target_lines(ratios)
    lines += _check_lines(result)
    lines += _peer_lines(result)
    missed = [key for key, _, threshold in TARGETS if ratios.get(key, (None,))[0] is not None and ratios[key][0] < threshold]
    if missed and not args.no_profile:
        lines += ["", "## where the time goes (missed targets)"]
        with logs.phase("profiles", phases):
            lines += _profiles(result, missed)
    total = time.perf_counter() - started
    lines += ["", "phases: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in phases.items()) + f"; total {total:.0f} s"]
    text = "\n".join(lines)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    stem = "bench-quick" if args.quick else "bench"
    (out / f"{stem}.txt").write_text(text + "\n", encoding="utf-8")
    payload = {"settings": dataclasses.asdict(settings), "threads": threads, "int8_scope": args.int8_scope, "params": params, "ratios": {k: list(v) for k, v in ratios.items()}, "records": result.records, "notes": result.notes, "phases": phases}
    (out / f"{stem}.json").write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nsaved {out / (stem + '.txt')} and {out / (stem + '.json')}")
    return 0


# --------------------------------------------------------------------------------------
# Inputs: data, tokenizer, models
# --------------------------------------------------------------------------------------


def _data(work: Path, settings: Settings):
    from job.benchmark_data import build_pd_benchmark
    from job.model import build_vocab, load_tokenizer, save_tokenizer
    from job.tasks import UIETask
    from job.uie_data import encode, read_doccano

    data_dir = work.parent / "data"
    if not (data_dir / ".complete").is_file():
        build_pd_benchmark(data_dir)
        (data_dir / ".complete").write_text("ok\n")
    vocab_dir = work.parent / f"tokenizer-{VOCAB_SIZE}"
    if not (vocab_dir / "vocab.txt").is_file():
        texts: set[str] = set()
        for split in ("train", "dev", "test"):
            for example in read_doccano(data_dir / f"{split}.txt", settings.seq_len).examples:
                texts.update((example.content, example.prompt))
        vocab = build_vocab(sorted(texts))
        if len(vocab) > VOCAB_SIZE:
            raise SystemExit(f"the benchmark has {len(vocab)} distinct tokens, more than the vocabulary of {VOCAB_SIZE}")
        vocab += [f"[unused{i}]" for i in range(1, VOCAB_SIZE - len(vocab) + 1)]
        save_tokenizer(vocab, vocab_dir)
    tokenizer = load_tokenizer(vocab_dir)
    limits = {"train": settings.train_examples, "dev": settings.dev_examples, "test": settings.test_examples}
    splits = {split: encode(read_doccano(data_dir / f"{split}.txt", settings.seq_len, limit=limit), tokenizer, settings.seq_len) for split, limit in limits.items()}
    task = UIETask(splits)
    log.info("data: %s", ", ".join(f"{s} {len(f)} examples" for s, f in splits.items()))
    return task, vocab_dir


def _build(work: Path, settings: Settings, vocab_dir: Path, rebuild: bool):
    from job.model import ModelFiles, build_uie, export_uie

    folder = work / f"{settings.shape}-fp32"
    if (folder / ".complete").is_file() and not rebuild:
        log.info("reusing %s", folder)
        return ModelFiles(folder).check()
    model = build_uie(settings.shape, VOCAB_SIZE, seed=42)
    export_uie(model, vocab_dir, folder)
    (folder / ".complete").write_text("ok\n")
    return ModelFiles(folder).check()


_GLOBAL = "Global: {{task_name: uie, dataset: embedded, batch_size: 8, max_seq_length: {seq}}}\n"
_PRUNE = """\
TrainConfig: {{train_iter: {train_iter}, eval_iter: 1000, logging_iter: 1, learning_rate: 2.0e-5}}
TransformerPrune: {{pruned_ratio: 0.25}}
Distillation: {{loss: l2}}
"""
_PTQ = """\
QuantPost:
  batch_size: 8
  batch_nums: {calib}
  algo: hist
  onnx_format: true
  weight_quantize_type: channel_wise_abs_max
  quantize_op_types: [mul, matmul, matmul_v2]
"""


def _template(strategy: str, title: str, *sections: str) -> str:
    job = "Job: {{strategy: " + strategy + ", threads: {threads}, seed: 42, int8_scope: {int8_scope}}}\n"
    return f"# {title} (written by scripts/bench_uie_base.py)\n" + _GLOBAL + "".join(sections) + job


_PRUNED = "Pruning (25 % of heads and FFN width) with distillation"
# Config templates per strategy (str.format fields: seq, calib, train_iter, threads, int8_scope).
_YAML = {
    "ptq": _template("ptq", "PTQ of the benchmark's UIE", _PTQ),
    "prune_dis": _template("prune_dis", _PRUNED, _PRUNE),
    "prune_ptq": _template("prune_ptq", f"{_PRUNED}, then PTQ", _PRUNE, _PTQ),
}


def _compress(work: Path, settings: Settings, strategy: str, source, task, threads: int, rebuild: bool, int8_scope: str):
    """``source`` compressed by ``job.compress.run`` with ``strategy``, cached in work and
    reused only while the config and the code that compresses are the same."""
    import hashlib

    from job import compress
    from job.config import load_config
    from job.model import ModelFiles

    folder = work / strategy
    model_dir = folder / "compressed"
    text = _YAML[strategy].format(seq=settings.seq_len, calib=settings.calib_batches, threads=threads, train_iter=settings.train_iter, int8_scope=int8_scope)
    code = "".join((ROOT / "job" / name).read_text(encoding="utf-8") for name in ("compress.py", "int8.py", "slim_patches.py"))
    key = hashlib.sha256((text + code).encode()).hexdigest()
    marker = folder / ".complete"
    if marker.is_file() and not rebuild and json.loads(marker.read_text()).get("key") == key:
        log.info("reusing %s (same config and code)", model_dir)
        return ModelFiles(model_dir).check()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, encoding="utf-8") as handle:
        handle.write(text)
    cfg = load_config(handle.name)
    Path(handle.name).unlink()
    folder.mkdir(parents=True, exist_ok=True)
    result = compress.run(cfg, source, task, folder)
    marker.write_text(json.dumps({"act_strategies": result.act_strategies, "seconds": result.seconds, "key": key}) + "\n")
    return result.model


# --------------------------------------------------------------------------------------
# Ratios and targets
# --------------------------------------------------------------------------------------


def _measured(result, **match) -> dict | None:
    """The first record matching ``match`` that has figures (not skipped, not failed)."""
    return next((r for r in result.find(**match) if r.get("latency_ms")), None)


def _median(result, **match) -> float | None:
    record = _measured(result, **match)
    return record["latency_ms"]["median"] if record else None


def _throughput(result, **match) -> float | None:
    record = _measured(result, **match)
    return record["throughput"] if record else None


def _ratios(result) -> dict[str, tuple[float | None, str]]:
    pi = {"runtime": "paddle-inference", "padding": "max"}
    fp32, ptq, pruned = (_median(result, model=m, **pi) for m in ("fp32", "ptq", "prune_ptq"))
    ort_int8 = _median(result, runtime="onnxruntime", precision="int8", padding="max")
    out: dict[str, tuple[float | None, str]] = {}
    out["ptq"] = (fp32 / ptq if fp32 and ptq else None, f"{fp32 or 0:.1f} ms / {ptq or 0:.1f} ms")
    out["prune_ptq"] = (fp32 / pruned if fp32 and pruned else None, f"{fp32 or 0:.1f} ms / {pruned or 0:.1f} ms")
    out["peer"] = (ort_int8 / ptq if ort_int8 and ptq else None, f"{ort_int8 or 0:.1f} ms / {ptq or 0:.1f} ms (PTQ INT8: the same network as the ONNX model)")
    dyn = []
    for model in ("fp32", "ptq", "prune_ptq"):
        d = _throughput(result, model=model, runtime="paddle-inference", padding="dynamic")
        m = _throughput(result, model=model, runtime="paddle-inference", padding="max")
        if d and m:
            dyn.append((d / m, model))
    if dyn:
        worst = min(dyn)
        out["dynamic"] = (worst[0], "; ".join(f"{model} {ratio:.2f}x" for ratio, model in dyn) + f" (worst: {worst[1]})")
    else:
        out["dynamic"] = (None, "not measured")
    return out


def _target_lines(ratios: dict[str, tuple[float | None, str]]) -> list[str]:
    lines = ["## targets", ""]
    for key, description, threshold in TARGETS:
        ratio, detail = ratios.get(key, (None, "not measured"))
        verdict = "n/a " if ratio is None else ("PASS" if ratio >= threshold else "MISS")
        shown = "   -  " if ratio is None else f"{ratio:5.2f}x"
        lines.append(f"{verdict}  {shown} (target >= {threshold}x)  {description}: {detail}")
    return lines


def _check_lines(result) -> list[str]:
    """Whether each INT8 run computes what its program says (see job.benchmark._int8_check)."""
    lines = ["", "INT8 outputs against the quantized program run in FP32 (QDQ simulated), max-padding batch:"]
    for record in result.find(runtime="paddle-inference", precision="int8", padding="max"):
        check = record.get("int8_check") or {}
        if "mean_abs_diff" in check:
            lines.append(f"  {record['model']:<10} mean abs diff {check['mean_abs_diff']:.4f}, max {check['max_abs_diff']:.4f} (outputs are probabilities in [0, 1])")
        else:
            lines.append(f"  {record['model']:<10} not checked: {check.get('error', 'no check')}")
    return lines if len(lines) > 2 else []


def _peer_lines(result) -> list[str]:
    lines = []
    for record in result.find(runtime="onnxruntime", padding="max"):
        tried = record.get("variants_tried") or []
        if not tried:
            continue
        lines.append("")
        lines.append(f"ONNX Runtime {record['precision']} variants tried (winner: {record.get('variant', 'none')}):")
        for entry in tried:
            if "error" in entry:
                lines.append(f"  {entry['variant']:<36} failed: {entry['error'][:120]}")
            else:
                extra = ", ".join(f"{k} {v}" for k, v in entry.items() if k not in ("variant", "median_ms"))
                lines.append(f"  {entry['variant']:<36} {entry['median_ms']:9.1f} ms  {extra}")
    return lines


def _profiles(result, missed: list[str]) -> list[str]:
    wanted: list[tuple[str, dict]] = []
    pi = {"runtime": "paddle-inference", "padding": "max"}
    picks = {
        "ptq": [("Paddle FP32", {"model": "fp32", **pi}), ("Paddle PTQ INT8", {"model": "ptq", **pi})],
        "prune_ptq": [("Paddle pruned+INT8", {"model": "prune_ptq", **pi})],
        "peer": [("ONNX Runtime INT8", {"runtime": "onnxruntime", "precision": "int8", "padding": "max"}), ("Paddle PTQ INT8", {"model": "ptq", **pi})],
    }
    seen: set[str] = set()
    for key in missed:
        for label, match in picks.get(key, []):
            if label not in seen:
                seen.add(label)
                wanted.append((label, match))
    lines: list[str] = []
    if "dynamic" in missed:
        lines.append("dynamic padding: see the mean real / padded lengths in the table; the gain is bounded by 128 / mean padded length")
    for label, match in wanted:
        record = _measured(result, **match)
        if record is None:
            continue
        try:
            rows = result.profile(record, runs=3, top=8)
        except Exception as exc:  # a profiler failure must not lose the benchmark
            lines.append(f"{label}: profile failed: {exc}")
            continue
        lines.append("")
        lines.append(f"{label} (op type, ms per batch, calls per batch, share of the profiled wall time):")
        for row in rows:
            lines.append(f"  {row['op']:<34} {row['ms_per_run']:9.1f} ms  {row['calls_per_run']:6.0f}  {row['share']:6.1%}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
