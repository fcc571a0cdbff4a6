"""int8 products for the search step that give every row the same result whatever
else is in the batch.

PyTorch's dynamic quantization (fbgemm's `linear_dynamic`) quantizes a product's input
with one scale for the whole tensor, taken from its minimum and maximum: a sentence's
result then depends on the other sentences of its batch. Every input the search step
multiplies in int8 is a recurrent hidden state or a tanh output, so it lies in
[-1, 1]; one extra row holding -1 and +1 pins the range, and with it the scale, to
[-1, 1] for every batch. The integer products are exact and each output element is
dequantized on its own, so a row's result no longer depends on its neighbours
(tests/fast/test_int8.py checks batch invariance bit for bit).

Weights are quantized symmetrically per output row (per channel). Inputs are quantized
to 7 bits (`reduce_range`, as PyTorch does on x86, where fbgemm's 8-bit pairs can
saturate 16-bit sums).

The products run on oneDNN's int8 kernels where the CPU has AMX int8 tiles (Intel since
Sapphire Rapids): at the search step's shapes (160 rows, 512 or 1,024 inputs, 2,048 or
5,226 outputs) they take half the time of fbgemm's (`bench/results/int8_engine_cpu.json`).
Elsewhere they run on PyTorch's x86 engine (fbgemm). Both give every row the same result
whatever else is in the batch; the two engines' results differ in the last bit of the
dequantized sums.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any, Iterator, Optional

import torch

Packed = Any  # an engine's packed int8 weight (torch.classes.quantized.LinearPackedParamsBase)


def _has_amx_int8() -> bool:
    """Whether the CPU reports AMX int8 tiles (Linux's /proc/cpuinfo; False elsewhere)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return " amx_int8" in flags


def default_engine() -> str:
    """The quantized engine `pack` uses: "onednn" on CPUs with AMX int8, else PyTorch's own
    choice ("x86", fbgemm's kernels, on x86 CPUs)."""
    if "onednn" in torch.backends.quantized.supported_engines and _has_amx_int8():
        return "onednn"
    return torch.backends.quantized.engine


ENGINE = default_engine()  # the engine `pack` packs for; a packed weight keeps its engine's kernels


@contextlib.contextmanager
def _engine(name: str) -> Iterator[None]:
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = before


def pack(weight: torch.Tensor, bias: Optional[torch.Tensor] = None, engine: Optional[str] = None) -> Packed:
    """weight (N, K) fp32, bias (N,) -> int8 weights packed for `product`, one scale per row,
    for `engine` (default `ENGINE`); `product` then runs that engine's kernels."""
    weight = weight.detach().float().contiguous()
    scale = (weight.abs().amax(dim=1).clamp_min(1e-12) / 127).double()
    zero = torch.zeros(weight.size(0), dtype=torch.long)
    with warnings.catch_warnings():  # quantized tensors are marked deprecated; the engines still take them
        warnings.simplefilter("ignore")
        quantized = torch.quantize_per_channel(weight, scale, zero, 0, torch.qint8)
        with _engine(engine or ENGINE):
            return torch.ops.quantized.linear_prepack(quantized,
                                                      None if bias is None else bias.detach().float().contiguous())


_PINS: dict[int, torch.Tensor] = {}  # width -> its pin row, built once


def _pin(width: int) -> torch.Tensor:
    """(1, width): -1, then zeros, then 1: the row that fixes the quantization range to [-1, 1]."""
    pin = _PINS.get(width)
    if pin is None:
        pin = torch.zeros(1, width)
        pin[0, 0], pin[0, -1] = -1.0, 1.0
        _PINS[width] = pin
    return pin


def product(x: torch.Tensor | tuple[torch.Tensor, ...], packed: Packed) -> torch.Tensor:
    """x (R, K) with values in [-1, 1], or parts of it side by side ((R, K1), (R, K2) ...
    for [x1 x2 ...]) -> x W^T + b (R, N) in fp32, from int8 W and x. The input is
    written once, behind the pin row, into the buffer the product reads."""
    parts = x if isinstance(x, tuple) else (x,)
    rows, width = parts[0].size(0), sum(part.size(1) for part in parts)
    pinned = torch.empty(rows + 1, width)
    pinned[:1] = _pin(width)
    torch.cat([part.float() for part in parts], dim=1, out=pinned[1:])
    return torch.ops.quantized.linear_dynamic(pinned, packed, True)[1:]


def add_product(acc: torch.Tensor, x: torch.Tensor | tuple[torch.Tensor, ...], packed: Packed) -> torch.Tensor:
    """acc + x W^T (+ b): the int8 counterpart of `torch.addmm(acc, x, W^T)`."""
    return acc + product(x, packed)
