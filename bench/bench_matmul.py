"""How fast this machine multiplies matrices: the ceiling for any fp32 decoder here.

    python bench/bench_matmul.py [--seconds 0.5] [--repeats 5]

Prints one JSON object: GFLOP/s (2 x m x k x n per product, best of --repeats timed
windows of --seconds each) in fp32 and bf16 for the shapes of a beam-5 decoding step
of the default model over 128 sentences (640 hypotheses: output layer, LSTM step), and
for large square products, which get closest to the machine's peak.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

SHAPES = {
    "output_layer_640x512x4000": (640, 512, 4000),
    "lstm_step_640x512x2048": (640, 512, 2048),
    "square_2048": (2048, 2048, 2048),
    "square_4096": (4096, 4096, 4096),
}


def gflops(m: int, k: int, n: int, dtype: torch.dtype, seconds: float, repeats: int) -> float:
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(repeats):
        start, products = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            a @ b
            products += 1
        best = max(best, 2 * m * k * n * products / (time.perf_counter() - start) / 1e9)
    return round(best, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    result: dict[str, object] = {
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}",
        "unit": "GFLOP/s, best window",
    }
    for dtype in (torch.float32, torch.bfloat16):
        result[str(dtype).replace("torch.", "")] = {
            name: gflops(*shape, dtype, args.seconds, args.repeats) for name, shape in SHAPES.items()
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
