"""The machine the job runs on: CPU model, ISA flags, usable cores. Standard library only,
so ONNX Runtime benchmark workers can use it without loading paddle (``job.runtime.hardware``
adds the GPU, which needs paddle)."""

from __future__ import annotations

import os
import platform

__all__ = ["ISA_FLAGS", "cpu_count", "cpu_facts"]

# CPU features INT8 and BF16 speed depends on (AMX tiles run oneDNN's INT8 GEMMs several
# times faster than AVX-512 VNNI): recorded with every figure.
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


def cpu_count() -> int:
    """The cores this process may run on (its affinity mask): what ``threads: 0`` means."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_facts() -> dict[str, object]:
    """CPU model, core count and the ``ISA_FLAGS`` the CPU has (from /proc/cpuinfo)."""
    model, flags = "", []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:  # the first processor's fields
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = value.split()
                if model and flags:
                    break
    except OSError:
        pass
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "avx512_vnni": "avx512_vnni" in flags,
        "isa": [flag for flag in ISA_FLAGS if flag in flags],
    }
