"""The benchmark stage: latency and throughput of inference models, as they are served.

What is measured: ``run`` measures a plan, a list of ``Planned`` entries (one model on one
runtime, with its precision, runtime options and label). ``plan(cfg, models)`` is the job's
own: every model on Paddle Inference and, when ``onnx_peer`` asks, the ONNX Runtime peer;
an experiment (the lab) extends it with rows served otherwise (``variant``, ``options``
such as Paddle's ``bf16``) and with the OpenVINO peer. The runtimes:

* **Paddle Inference, CPU, oneDNN** (``device: cpu``): FP32 for float programs, INT8
  (``enable_mkldnn_int8``) for quantized programs. ``threads`` CPU threads (0: every core
  this process may use).
* **Paddle Inference, GPU, TensorRT** (``device: gpu``): FP32 and FP16 for float
  programs, INT8 for quantized ones, with dynamic shape ranges (batch 1..batch_size,
  sequence 1..max_seq_len, optimum at the benchmark shape). Without a CUDA build or a
  visible GPU every GPU measurement becomes a record with ``skipped`` set and no numbers.
* **ONNX Runtime, CPU** (``onnx_peer``): the FP32 Paddle model exported with paddle2onnx,
  at FP32 and at its best INT8. paddle2onnx 1.2.11 writes weights as ``Constant`` nodes,
  which ONNX Runtime's quantizer and fusions skip, so they are turned into initializers
  first; then the transformer fusions of ``onnxruntime.transformers.optimizer`` (opt_level
  0, which needs no torch), and INT8 by ``quantize_dynamic`` (per tensor and per channel)
  and by static quantization calibrated on real batches (QDQ and QOperator, per channel,
  U8S8). Every variant is timed the same way; the fastest FP32 and the fastest INT8 that
  load, run and quantized something are reported, with every variant tried
  (``variants_tried``). Picking the fastest of several noisy timings favours the peer.

* **OpenVINO, CPU** (a planned ``openvino`` entry, optional package, ``job.benchmark.openvino_peer``): the FP32
  Paddle program read directly by OpenVINO's Paddle frontend, compiled with the precision
  hint ``f32`` and with OpenVINO's default (BF16 where the CPU has it); NNCF INT8
  (transformer preset, calibrated on real training batches) at both hints; and OpenVINO
  handed our own quantized programs (the entry's ``quantized`` option), recorded with the refusal
  message when its frontend cannot read it. Compiled per static batch shape with
  ``INFERENCE_NUM_THREADS`` = threads, ``PERFORMANCE_HINT`` LATENCY, ``NUM_STREAMS`` 1
  (padding rows: one model compiled with dynamic shapes).

Workloads (``padding``):

* ``max``: ``task.fixed_batch(batch_size, max_seq_len)``, real test examples padded to
  exactly ``max_seq_len`` (the reference example's batch 40, length 128): the latency
  figure every runtime is compared on.
* The padding comparison (``dynamic_padding``; every Paddle model, and each peer's best
  rows: ONNX Runtime's best INT8, OpenVINO's best NNCF INT8 and its default-precision
  run, chosen on the ``max`` batch): one fixed sample of test
  texts (``TEXT_BATCHES`` x batch_size of them, spread evenly over the split and kept in
  split order) timed three ways, so that the three figures are of the same texts:
  ``to-max``: batches in the original order, each padded to ``max_seq_len``;
  ``to-longest``: the same batches, each padded to its longest text; ``bucketed``: the
  texts sorted by length, then batched and padded to each batch's longest. Padding to the
  longest is rounded up to a multiple of ``pad_multiple`` (16) and cut at
  ``max_seq_len``: rounding bounds the number of distinct shapes, which oneDNN caches
  primitives for (stated in the record). ``seq_len`` is the mean real length,
  ``padded_len_mean`` the mean padded length, ``texts`` how many texts one pass times.

Method: each measurement runs in a fresh subprocess (``isolate=True``, the default), so
runtimes do not share thread pools, caches or memory. Warm-up: ``warmup`` untimed runs of
the ``max`` batch, and one untimed pass over every batch of a padding mode (every shape
primed); then as many passes over the sample as ``repeats`` batches need (at least one).
Conversions (ONNX exports and quantized variants, NNCF INT8) are cached under the workdir
and reused only while their cache key (``job.cache``: input files' content, the code
that makes them, settings and library versions) is unchanged.
Each timed run is ``time.perf_counter`` around copying the inputs in, running, and copying
the outputs out: the same work for every runtime. ``latency_ms`` holds the median, p90,
p99 (linear interpolation; with few repeats p99 is close to the maximum) and mean per
batch; ``throughput`` is samples per second over all timed runs. ``peak_memory_mb`` is
the process's resident-set high-water mark (``VmHWM`` of /proc/self/status) reset by
writing ``5`` to /proc/self/clear_refs once the model is loaded: the model, the runtime
and everything the runs allocated (``peak_memory_method`` says when the reset was not
possible and the figure is the process-lifetime peak).

Layout (one module per concern; a runtime is one module with a ``Session`` class behind
the protocol of ``session``, so adding a peer is adding a file):

* ``spec``: ``Measurement``, the frozen spec of one measurement (JSON into the worker), and
  ``Planned``, one entry of a plan;
* ``workload``: the latency batch, the padding sample, calibration batches;
* ``measure``: the measurement loop, peak memory, the worker process and its dispatch;
* ``result``: ``BenchResult`` and how measurements become records;
* ``session``: the runtime protocol and registry;
* ``paddle_inference``, ``onnxruntime_peer``, ``openvino_peer``: the runtimes, each with
  its session and its preparation (ONNX export and INT8 variants, NNCF INT8);
* ``stage``: ``plan``, ``run`` and ``prepare_peers``.
"""

from __future__ import annotations

from job.benchmark.onnxruntime_peer import ONNX_VARIANTS, export_onnx
from job.benchmark.openvino_peer import OPENVINO_VARIANTS
from job.benchmark.paddle_inference import gpu_available
from job.benchmark.result import BenchResult
from job.benchmark.spec import Measurement, Planned
from job.benchmark.stage import plan, prepare_peers, run
from job.benchmark.workload import PAD_MULTIPLE, TEXT_BATCHES, TEXT_PADDINGS, calibration_batches

__all__ = [
    "ONNX_VARIANTS",
    "OPENVINO_VARIANTS",
    "PAD_MULTIPLE",
    "TEXT_BATCHES",
    "TEXT_PADDINGS",
    "BenchResult",
    "Measurement",
    "Planned",
    "calibration_batches",
    "export_onnx",
    "gpu_available",
    "plan",
    "prepare_peers",
    "run",
]
