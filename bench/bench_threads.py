"""Does it matter which thread runs the model? Translation speed of the same batches in
the main thread and in other threads, alternating, in one process.

    python bench/bench_threads.py runs/default [--rounds 3] [--out bench/results/threads_cpu.json]

The test split is shuffled (seed 0) and cut into batches of 32 sentences, as `s2s serve`'s
dynamic batches are; each round translates the split once as offline translation does
(length-sorted batches of decoding.batch_size), then the shuffled batches once in the main
thread and once in a new thread. `s2s serve` runs the model in the main thread because of this result.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit, machine, test_split  # noqa: E402
from pipeline.api import Translator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sentences, _ = test_split(args.run_dir)
    random.Random(0).shuffle(sentences)
    batches = [sentences[i : i + 32] for i in range(0, len(sentences), 32)]
    translator = Translator.load(args.run_dir)
    translator.translate_inputs(batches[0])  # warm-up, in the main thread

    def timed(results: list[float]) -> None:
        start = time.perf_counter()
        for batch in batches:
            translator.translate_inputs(batch)
        results.append(round(len(sentences) / (time.perf_counter() - start), 1))

    main_thread: list[float] = []
    other_thread: list[float] = []
    sorted_128: list[float] = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        translator.translate(sentences)  # offline: length-sorted batches of decoding.batch_size
        sorted_128.append(round(len(sentences) / (time.perf_counter() - start), 1))
        timed(main_thread)
        worker = threading.Thread(target=timed, args=(other_thread,))
        worker.start()
        worker.join()
    result = {
        "bench": "threads", "run": str(args.run_dir), **machine(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "batch_sentences": 32,
        "offline_sorted_batches_sentences_per_s": sorted_128, "offline_batch_size": translator.config.batch_size,
        "main_thread_sentences_per_s": main_thread, "other_thread_sentences_per_s": other_thread,
        "other_over_main": round(sum(other_thread) / sum(main_thread), 3),
        "random_32_over_sorted": round(sum(main_thread) / sum(sorted_128), 3),
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
