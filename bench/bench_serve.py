"""Load on `s2s serve`: concurrent clients sending single test-book sentences, against
offline batched translation of the same sentences in the same run.

    python bench/bench_serve.py runs/default [--clients 1 8 32] [--seconds 30] [--soak 300]

Starts `s2s serve --run RUN` on a free local port; each level runs N client threads,
each with one keep-alive connection, sending one sentence per request (cycling over the
test split) for `--seconds`; then `--soak` seconds at the largest level while the
server's resident memory is sampled every 5 s. Offline: `Translator.translate` of the
sentences, decoding.batch_size at a time, in this process before the server starts
(the median of `--offline-passes` passes).
Prints one JSON object (and writes it with --out).
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit, machine, test_split  # noqa: E402
from pipeline.api import Translator  # noqa: E402


def rss_mb(pid: int) -> tuple[float, float]:
    """(resident, peak resident) memory of a process, in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def start_server(run: Path, threads: int) -> tuple[subprocess.Popen, int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command = [sys.executable, "-c", "from pipeline.cli import main; main()", "serve", "--run", str(run),
               "--port", str(port), "--queue-size", "256"]
    if threads:
        command += ["--threads", str(threads)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("s2s serve did not start")


def load(port: int, clients: int, seconds: float, sentences: list[str], pid: int,
         sample_every: float = 0.0) -> dict[str, Any]:
    """N clients for `seconds`: throughput, latency percentiles, errors (and RSS samples)."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        i = index
        while time.monotonic() < stop:
            body = json.dumps({"q": sentences[i % len(sentences)], "source": "auto", "target": "es"})
            start = time.perf_counter()
            try:
                connection.request("POST", "/translate", body, {"Content-Type": "application/json"})
                answer = connection.getresponse()
                payload = answer.read()
                ok = answer.status == 200
            except (OSError, http.client.HTTPException) as exc:
                ok, payload = False, str(exc).encode()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            took = time.perf_counter() - start
            with lock:
                (latencies.append(took) if ok else errors.append(payload[:200].decode(errors="replace")))
            i += clients

    samples: list[dict[str, float]] = []
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    while sample_every and any(t.is_alive() for t in threads):
        rss, _ = rss_mb(pid)
        samples.append({"s": round(time.perf_counter() - began, 1), "rss_mb": round(rss, 1)})
        time.sleep(sample_every)
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000, 1) if ordered else 0.0

    result = {"clients": clients, "seconds": round(wall, 1), "requests": len(latencies),
              "sentences_per_s": round(len(latencies) / wall, 1), "p50_ms": pct(50), "p95_ms": pct(95),
              "p99_ms": pct(99), "mean_ms": round(statistics.fmean(ordered) * 1000, 1) if ordered else 0.0,
              "errors": len(errors), "first_errors": errors[:3]}
    if samples:
        result["rss_mb"] = samples
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--soak", type=float, default=300.0, help="seconds at the largest level with RSS sampled (0: none)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--offline-passes", type=int, default=3, help="offline passes; their median is the reference")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    sentences, _ = test_split(args.run_dir)
    translator = Translator.load(args.run_dir)
    translator.translate(sentences[:32])  # warm-up
    passes = []
    for _ in range(args.offline_passes):
        start = time.perf_counter()
        translator.translate(sentences)
        passes.append(round(len(sentences) / (time.perf_counter() - start), 1))
    offline = statistics.median(passes)
    config = {"beam_size": translator.config.beam_size, "batch_size": translator.config.batch_size}
    del translator

    process, port = start_server(args.run_dir, args.threads)
    try:
        load(port, 4, 5.0, sentences, process.pid)  # warm-up
        levels = [load(port, n, args.seconds, sentences, process.pid) for n in args.clients]
        for level in levels:
            level["vs_offline"] = round(level["sentences_per_s"] / offline, 3)
        soak = load(port, max(args.clients), args.soak, sentences, process.pid, sample_every=5.0) if args.soak else None
        _, peak = rss_mb(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    result: dict[str, Any] = {
        "bench": "serve", "run": str(args.run_dir), **machine(),
        "decoding": config, "sentences": len(sentences), "offline_sentences_per_s": offline,
        "offline_passes_sentences_per_s": passes,
        "levels": levels, "server_peak_rss_mb": round(peak, 1),
    }
    if soak:
        curve = [s["rss_mb"] for s in soak["rss_mb"]]
        result["soak"] = {**soak, "rss_first_minute_max_mb": max(curve[:12]), "rss_last_minute_max_mb": max(curve[-12:])}
    emit(result, args.out)


if __name__ == "__main__":
    main()
