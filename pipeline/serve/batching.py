"""Dynamic batching: requests that arrive together are translated in one search.

Each request becomes a job on a bounded queue. One worker takes the first job, then
keeps taking jobs while they arrive less than `wait_ms` apart (and for at most
`max_wait_ms`, or until `max_lines` lines are gathered), and searches the jobs that ask
for the same thing (n-best size, alignments) as one batch through
`Translator.translate_inputs`. Each line is searched on its own, so a request gets the
same translation alone or in a crowd; files come as jobs of a few lines, so other requests get
turns between them. The technique is the one of serving systems such
as NVIDIA Triton's dynamic batcher.

The worker is the process's main thread under `s2s serve` (`serve_forever`; the HTTP
server runs in another thread): PyTorch's CPU operators run up to a third slower from a
thread other than the first one that used them (bench/bench_threads.py). Tests
run it in a thread of its own (`start`).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Optional

from pipeline.api import Hypothesis, Translator

Result = list[list[Hypothesis]]


class QueueFull(Exception):
    """More requests wait than the queue holds (HTTP 503)."""


class Closed(Exception):
    """The server is shutting down and takes no new requests (HTTP 503)."""


@dataclass
class Job:
    inputs: list[str]  # prepared model inputs (`Translator.prepare_inputs`)
    n_best: int
    alignments: bool
    future: Future = field(default_factory=Future)


class Batcher:
    """A queue of jobs and the worker that translates them in batches."""

    def __init__(self, translator: Translator, *, queue_size: int = 64, wait_ms: float = 10.0,
                 max_wait_ms: float = 50.0, max_lines: int = 128) -> None:
        self.translator = translator
        self.wait_s, self.max_wait_s, self.max_lines = wait_ms / 1000.0, max_wait_ms / 1000.0, max_lines
        self._jobs: queue.Queue[Job] = queue.Queue(maxsize=queue_size)
        self._closed = threading.Event()
        self._done = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.batches = 0  # searches run, for /health and the tests
        self.lines = 0
        self.busy_s = 0.0  # time spent searching

    def start(self) -> None:
        """Run the worker in a thread of its own."""
        self._thread = threading.Thread(target=self.serve_forever, name="s2s-batcher", daemon=True)
        self._thread.start()

    def serve_forever(self) -> None:
        """Run the worker in this thread until `close` and the queue is empty."""
        try:
            while not (self._closed.is_set() and self._jobs.empty()):
                try:
                    first = self._jobs.get(timeout=0.05)
                except queue.Empty:
                    continue
                self._search(self._gather(first))
        finally:
            self._done.set()

    def waiting(self) -> int:
        return self._jobs.qsize()

    def submit(self, job: Job) -> Future:
        """Queue a job; QueueFull when the queue is full, Closed after `close`."""
        if self._closed.is_set():
            raise Closed()
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            raise QueueFull() from None
        return job.future

    async def translate(self, inputs: list[str], n_best: int = 1, alignments: bool = False,
                        timeout_s: Optional[float] = None) -> Result:
        """Queue the inputs and wait for their hypotheses (asyncio.TimeoutError after
        `timeout_s`; the job is then dropped if it has not started)."""
        future = self.submit(Job(inputs, n_best, alignments))
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
        except (asyncio.TimeoutError, asyncio.CancelledError):  # nobody waits for it any more
            future.cancel()
            raise

    def close(self, timeout_s: float = 60.0) -> None:
        """Take no new jobs, let the worker finish the queued ones, wait for it to stop."""
        self._closed.set()
        self._done.wait(timeout_s)

    def _gather(self, first: Job) -> list[Job]:
        """The first job and those arriving right behind it."""
        batch, lines = [first], len(first.inputs)
        deadline = time.monotonic() + self.max_wait_s
        while lines < self.max_lines:
            wait = min(self.wait_s, deadline - time.monotonic())
            try:
                job = self._jobs.get(timeout=wait) if wait > 0 else self._jobs.get_nowait()
            except queue.Empty:
                break
            batch.append(job)
            lines += len(job.inputs)
        return batch

    def _search_alone(self, job: Job) -> None:
        try:
            job.future.set_result(self.translator.translate_inputs(job.inputs, job.n_best,
                                                                   alignments=job.alignments, where="request"))
        except Exception as exc:
            job.future.set_exception(exc)

    def _search(self, batch: list[Job]) -> None:
        live = [job for job in batch if job.future.set_running_or_notify_cancel()]
        groups: dict[tuple[int, bool], list[Job]] = {}
        for job in live:
            groups.setdefault((job.n_best, job.alignments), []).append(job)
        for (n_best, alignments), jobs in groups.items():
            inputs = [line for job in jobs for line in job.inputs]
            began = time.perf_counter()
            try:
                found = self.translator.translate_inputs(inputs, n_best, alignments=alignments, where="request")
            except Exception as exc:
                if len(jobs) == 1:  # handed to the waiting request (a bug shows there as a 500)
                    jobs[0].future.set_exception(exc)
                else:  # one bad request must not fail the others: each alone
                    for job in jobs:
                        self._search_alone(job)
                continue
            self.batches += 1
            self.lines += len(inputs)
            self.busy_s += time.perf_counter() - began
            start = 0
            for job in jobs:
                job.future.set_result(found[start : start + len(job.inputs)])
                start += len(job.inputs)
