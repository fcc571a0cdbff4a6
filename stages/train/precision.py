"""Mixed precision for training: which autocast dtype, and the fp16 gradient scaler."""

from __future__ import annotations

from pathlib import Path

import torch

from stages.devices import device_type
from stages.errors import ConfigError


def pick_precision(name: str, device: str) -> torch.dtype | None:
    """The autocast dtype for `training.precision` on `device`, or None for plain fp32."""
    if name == "fp32":
        return None
    if name == "bf16":
        return torch.bfloat16
    if name == "fp16":
        if not device.startswith("cuda"):
            # CPU fp16 autocast fails in the LSTM kernel (oneDNN has no fp16 LSTM) and
            # would be slow anyway; bf16 is the CPU's reduced precision.
            raise ConfigError(
                f"training.precision=fp16 needs a CUDA device, but training runs on {device!r} "
                f"(training.device); use precision bf16 or fp32 on the CPU"
            )
        return torch.float16
    if device.startswith("cuda"):
        # On GPUs the casts cost more than bf16 saves on this model's small matrix
        # products (bench/results/cuda_train_precision.json).
        return None
    # CPUs with native bf16 dot products (AVX-512 BF16, AMX) run bf16 matmuls several times
    # faster than fp32 (bench/bench_matmul.py).
    return torch.bfloat16 if torch.backends.cpu.get_cpu_capability() in ("AVX512", "AVX512_BF16", "AMX") and _cpu_has_bf16() else None


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def make_scaler(amp: torch.dtype | None, device: str) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 autocast (fp16 gradients underflow without one); None
    otherwise: bf16 has fp32's exponent range and needs no scaling."""
    if amp != torch.float16:
        return None
    return torch.amp.GradScaler(device_type(device))
