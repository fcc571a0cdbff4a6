"""Fused CPU kernels (the C++ in stages/model/fast/csrc/), built with the machine's C++ compiler on
first use and loaded through ctypes.

They replace chains of small PyTorch operators in the CPU training step: the LSTM
cell, which the input-feeding decoder runs once per target position (about ten
operators forward and twenty backward, each a pass over memory plus its dispatch),
the input-feeding decoder's attention step (multiplicative attention and the linear
combine layer), and the label-smoothed cross-entropy over the logits; and in beam
search, each hypothesis's best log-probabilities (`top_log_probs`). Without a
compiler, or with S2S_CPU_KERNELS=0, everything runs on the PyTorch operators, which
compute the same values (tests/fast/test_cpu_kernels.py holds the two to each other).
The C interface is declared once, in csrc/kernels.h: every .cpp includes it (so a
definition that differs does not compile), `interface()` reads the ctypes argument
types from it, and `_call` refuses a call with the wrong number of arguments
(tests/fast/test_kernel_interface.py).
The build links libgomp.so.1, which resolves to the copy that Linux wheels of torch
have already loaded; where the build fails (say, a compiler without OpenMP), the
operators run and a warning says why.

The library is built once per source, compiler and CPU into the user's cache
(`$S2S_CACHE_DIR`, else `$XDG_CACHE_HOME/s2s`, else `~/.cache/s2s`), under a
temporary name then renamed, so concurrent first uses do not see half a file, and
replaces the builds of earlier sources there. It is built with -march=native, hence
the CPU's flags in its name.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch

log = logging.getLogger(__name__)

SOURCES = Path(__file__).with_name("csrc")  # *.cpp compiled into one library, *.h included
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fopenmp", "-std=c++17",
         "-fPIC", "-shared", "-pthread"]
HEADER = SOURCES / "kernels.h"  # the one declaration of the C interface
_DTYPES = {torch.float32: 0, torch.bfloat16: 1}
_C_TYPES = {"int": ctypes.c_int, "int64_t": ctypes.c_int64, "float": ctypes.c_float, "double": ctypes.c_double}
_DECLARATION = re.compile(r"^(\w+)\s+(s2s_\w+)\s*\(([^)]*)\);", re.M)


# The kernels split their rows over torch's threads (the same OpenMP runtime: the
# library's libgomp.so.1 is the one torch loaded) from this many elements of work on.
LSTM_SPLIT = 1 << 12
ATTEND_SPLIT = 1 << 16
TOPK_SPLIT = 1 << 15


def threads(work: int, split: int) -> int:
    return torch.get_num_threads() if work >= split else 1


def enabled() -> bool:
    return os.environ.get("S2S_CPU_KERNELS", "1") != "0"


def cache_dir() -> Path:
    if os.environ.get("S2S_CACHE_DIR"):
        return Path(os.environ["S2S_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "s2s"


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _build(compiler: str) -> Path:
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    files = sorted(SOURCES.glob("*.cpp")) + sorted(SOURCES.glob("*.h"))
    texts = [f"{f.name}\n{f.read_text()}" for f in files]
    key = hashlib.sha256("\n".join([*texts, " ".join(FLAGS), version, _cpu_flags(),
                                    platform.machine()]).encode()).hexdigest()[:16]
    target = cache_dir() / f"cpu_kernels-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".cpu_kernels-", suffix=".so")
    os.close(fd)
    try:
        sources = [str(f) for f in files if f.suffix == ".cpp"]
        subprocess.run([compiler, *FLAGS, "-o", tmp, *sources], capture_output=True, text=True, check=True)
        os.replace(tmp, target)
        for stale in target.parent.glob("cpu_kernels-*.so"):  # builds of earlier sources
            if stale != target:
                stale.unlink(missing_ok=True)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


_status = "not loaded"
_bound: dict[str, tuple[Any, int]] = {}  # name -> (function, argument count) of the loaded library, for `_call`


def status() -> str:
    """Whether the kernels run, and why: `on: built with ...` or `off: <reason>`."""
    library()
    return _status


@functools.lru_cache(maxsize=None)
def library() -> Optional[ctypes.CDLL]:
    """The loaded kernels, or None (disabled, no compiler, or the build failed)."""
    global _status
    if not enabled():
        _status = "off: S2S_CPU_KERNELS=0"
        return None
    compiler = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    if compiler is None:
        _status = "off: no C++ compiler found (set CXX)"
        log.info("no C++ compiler found: the LSTM cell, attention step and loss run on PyTorch operators")
        return None
    try:
        path = _build(compiler)
        lib = ctypes.CDLL(str(path))
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        _status = f"off: the build with {compiler} failed ({detail.strip()[:200]})"
        log.warning("building the CPU kernels with %s failed, so training runs on PyTorch operators (slower); "
                    "set CXX to a working C++ compiler, or S2S_CPU_KERNELS=0 to skip the build: %s",
                    compiler, detail.strip()[:500])
        return None
    _status = f"on: built with {compiler} ({path.name})"
    _bound.clear()
    for name, (restype, argtypes) in interface().items():
        function = getattr(lib, name)
        function.argtypes, function.restype = argtypes, restype
        _bound[name] = (function, len(argtypes))
    return lib


def _c_type(declared: str) -> Optional[type]:
    """A C type as written in kernels.h -> its ctypes type (pointers as addresses)."""
    if "*" in declared:
        return ctypes.c_void_p
    if declared == "void":
        return None
    if declared not in _C_TYPES:
        raise ValueError(f"{HEADER}: type {declared!r} has no ctypes equivalent; use one of "
                         f"{', '.join(_C_TYPES)} or a pointer")
    return _C_TYPES[declared]


@functools.lru_cache(maxsize=None)
def interface() -> dict[str, tuple[Optional[type], list[type]]]:
    """Every function kernels.h declares: name -> (return type, argument types), as ctypes types."""
    functions = {}
    for returns, name, params in _DECLARATION.findall(HEADER.read_text()):
        types = [" ".join(p.split()[:-1]).replace("const ", "") + ("*" if "*" in p else "")
                 for p in params.split(",")]
        functions[name] = (_c_type(returns), [_c_type(t) for t in types])
    return functions  # type: ignore[return-value]


def _call(name: str, *args: Any) -> Any:
    """Call a kernel with exactly the arguments kernels.h declares for it. ctypes itself
    lets surplus arguments through (it allows C varargs), so the count is checked here."""
    _loaded()
    function, count = _bound[name]
    if len(args) != count:
        raise TypeError(f"{name} takes {count} arguments ({HEADER}), not {len(args)}")
    return function(*args)


def _loaded() -> ctypes.CDLL:
    """The library, for callers that checked `*_applies` first."""
    lib = library()
    if lib is None:
        raise RuntimeError("the CPU kernels are not built: check the matching *_applies() first")
    return lib


def _rows(t: torch.Tensor) -> bool:
    """A CPU matrix whose rows are contiguous (any row stride)."""
    return t.device.type == "cpu" and t.dim() == 2 and t.stride(1) == 1 and t.stride(0) >= t.size(1)


def lstm_applies(gates: torch.Tensor, c: torch.Tensor) -> bool:
    return (gates.dtype in _DTYPES and c.dtype == torch.float32 and _rows(gates) and c.is_contiguous()
            and c.device.type == "cpu" and library() is not None)


def lstm_forward(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """The kernel behind `cells.lstm_cell_forward`, same contract (see `lstm_applies`)."""
    batch, size = c.shape
    h = torch.empty(c.shape, dtype=gates.dtype)
    c_new, tanh_c = torch.empty_like(c), torch.empty_like(c)
    act = torch.empty(batch, 4 * size)
    _call("s2s_lstm_forward", _DTYPES[gates.dtype], batch, size, gates.data_ptr(), gates.stride(0), c.data_ptr(),
                         h.data_ptr(), c_new.data_ptr(), act.data_ptr(), tanh_c.data_ptr(),
                         threads(batch * size, LSTM_SPLIT))
    return h, c_new, (act, c, tanh_c)


def lstm_backward_applies(saved: tuple[torch.Tensor, ...], dtype: torch.dtype) -> bool:
    return (dtype in _DTYPES and all(t.dtype == torch.float32 and t.is_contiguous() and t.device.type == "cpu"
                                     for t in saved) and library() is not None)


def lstm_backward(saved: tuple[torch.Tensor, ...], grad_h: torch.Tensor, grad_c: torch.Tensor,
                  dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel behind `cells.lstm_cell_backward`, for tensors from `lstm_forward`."""
    act, c, tanh_c = saved
    batch, size = c.shape
    grad_h = grad_h.to(dtype).contiguous()
    grad_c = grad_c.to(torch.float32).contiguous()
    grad_gates = torch.empty(batch, 4 * size, dtype=dtype)
    grad_c_prev = torch.empty_like(c)
    _call("s2s_lstm_backward", _DTYPES[dtype], batch, size, act.data_ptr(), c.data_ptr(), tanh_c.data_ptr(),
                          grad_h.data_ptr(), grad_c.data_ptr(), grad_gates.data_ptr(), grad_c_prev.data_ptr(),
                          threads(batch * size, LSTM_SPLIT))
    return grad_gates, grad_c_prev


def cross_entropy_applies(logits: torch.Tensor, target: torch.Tensor) -> bool:
    return (logits.dtype in _DTYPES and _rows(logits) and target.dtype == torch.int64 and target.is_contiguous()
            and target.device.type == "cpu" and library() is not None)


def smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, smoothing: float, pad: int,
                           want_grad: bool) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Summed label-smoothed cross-entropy of logits (N, V) over rows whose target is
    not `pad`, and with `want_grad` its gradient (N, V) in the logits' dtype: the
    kernel behind `loss.smoothed_cross_entropy`, rows split over torch's thread count."""
    rows, classes = logits.shape
    if rows and not (int(target.min()) >= 0 and int(target.max()) < classes):
        raise IndexError(f"target out of range [0, {classes}) for the cross-entropy")
    grad = torch.empty(logits.shape, dtype=logits.dtype) if want_grad else None
    total = _call("s2s_smoothed_ce", _DTYPES[logits.dtype], rows, classes, logits.data_ptr(), logits.stride(0),
                                target.data_ptr(), pad, smoothing, None if grad is None else grad.data_ptr(),
                                threads(rows * classes, 1))
    return torch.tensor(total, dtype=torch.float32), grad


def top_log_probs(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (R, V) -> the k largest log-softmax values of each row (R, k), best first,
    and their indices (R, k): `torch.log_softmax(logits, -1).topk(k)` without the (R, V)
    log-softmax, through csrc/search.cpp where it is built. Values agree with PyTorch's to
    about 1e-6 (another exp and summation order); of equal values the lower index comes first."""
    if not (logits.dtype == torch.float32 and _rows(logits) and 0 < k <= logits.size(1) and library() is not None):
        return torch.log_softmax(logits.float(), dim=-1).topk(k, dim=-1)
    rows, classes = logits.shape
    values = torch.empty(rows, k)
    indices = torch.empty(rows, k, dtype=torch.long)
    _call("s2s_log_softmax_topk", rows, classes, logits.data_ptr(), logits.stride(0), k, values.data_ptr(),
          indices.data_ptr(), threads(rows * classes, TOPK_SPLIT))
    return values, indices


def _ptr(t: Optional[torch.Tensor]) -> Optional[int]:
    return None if t is None else t.data_ptr()


def attend_applies(*tensors: torch.Tensor) -> bool:
    """Contiguous CPU tensors of one kernel dtype, and the kernels built."""
    dtype = tensors[0].dtype
    return (dtype in _DTYPES and all(t.dtype == dtype and t.device.type == "cpu" and t.is_contiguous()
                                     for t in tensors) and library() is not None)


def attend_forward(out: torch.Tensor, keys: torch.Tensor, bias: torch.Tensor, memc: torch.Tensor,
                   proj: torch.Tensor, keep: Optional[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """One attention-and-combine step (csrc/attention.cpp's attend_forward): out, proj,
    keep (B, H); keys, memc (B, S, H); bias (B, S) fp32 -> weights (B, S) fp32, the
    same in out's dtype, tanh_out (B, H) fp32 and feed (B, H)."""
    batch, src, size = keys.shape
    proj, keep = proj.contiguous(), None if keep is None else keep.contiguous()
    weights = torch.empty(batch, src)
    weights_low = torch.empty(batch, src, dtype=out.dtype)
    tanh_out = torch.empty(batch, size)
    feed = torch.empty(batch, size, dtype=out.dtype)
    _call("s2s_attend_forward", _DTYPES[out.dtype], batch, src, size, out.data_ptr(), keys.data_ptr(), bias.data_ptr(),
                           memc.data_ptr(), proj.data_ptr(), _ptr(keep), weights.data_ptr(),
                           weights_low.data_ptr(), tanh_out.data_ptr(), feed.data_ptr(),
                           threads(batch * src * size, ATTEND_SPLIT))
    return weights, weights_low, tanh_out, feed


def attend_backward(grad_feed: torch.Tensor, keep: Optional[torch.Tensor], tanh_out: torch.Tensor,
                    weights: torch.Tensor, keys: torch.Tensor, memc: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Gradients of `attend_forward` for grad_feed (B, H): grad_proj (B, H), grad_scores
    (B, S) and grad_out (B, H), in the keys' dtype."""
    batch, src, size = keys.shape
    grad_feed = grad_feed.to(keys.dtype).contiguous()
    grad_proj = torch.empty(batch, size, dtype=keys.dtype)
    grad_scores = torch.empty(batch, src, dtype=keys.dtype)
    grad_out = torch.empty(batch, size, dtype=keys.dtype)
    _call("s2s_attend_backward", _DTYPES[keys.dtype], batch, src, size, grad_feed.data_ptr(), _ptr(keep),
                            tanh_out.data_ptr(), weights.data_ptr(), keys.data_ptr(), memc.data_ptr(),
                            grad_proj.data_ptr(), grad_scores.data_ptr(), grad_out.data_ptr(),
                            threads(batch * src * size, ATTEND_SPLIT))
    return grad_proj, grad_scores, grad_out
