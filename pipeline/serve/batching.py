"""Dynamic batching: requests that arrive together are translated in one search.

Each request becomes a job on a bounded queue. One worker thread takes the first job,
waits up to `wait_ms` for more (or until `max_lines` lines are gathered), and searches
the jobs that ask for the same thing (n-best size, alignments) as one batch through
`Translator.translate_inputs`; each line is searched on its own, so a request gets the
same translation alone or in a crowd. The technique is the one of serving systems such
as Marian's server and NVIDIA Triton's dynamic batcher.
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
    """A queue of jobs and the worker thread that translates them in batches."""

    def __init__(self, translator: Translator, *, queue_size: int = 64, wait_ms: float = 5.0,
                 max_lines: int = 128) -> None:
        self.translator = translator
        self.wait_s, self.max_lines = wait_ms / 1000.0, max_lines
        self._jobs: queue.Queue[Job] = queue.Queue(maxsize=queue_size)
        self._closed = threading.Event()
        self._worker = threading.Thread(target=self._run, name="s2s-batcher", daemon=True)
        self.batches = 0  # searches run, for /health and the tests
        self.lines = 0

    def start(self) -> None:
        self._worker.start()

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
        except asyncio.TimeoutError:
            future.cancel()
            raise

    def close(self, timeout_s: float = 60.0) -> None:
        """Take no new jobs, finish the queued ones, stop the worker."""
        self._closed.set()
        self._worker.join(timeout_s)

    def _run(self) -> None:
        while not (self._closed.is_set() and self._jobs.empty()):
            try:
                first = self._jobs.get(timeout=0.05)
            except queue.Empty:
                continue
            batch = [first]
            lines = len(first.inputs)
            deadline = time.monotonic() + self.wait_s
            while lines < self.max_lines:
                left = deadline - time.monotonic()
                try:
                    job = self._jobs.get(timeout=left) if left > 0 else self._jobs.get_nowait()
                except queue.Empty:
                    break
                batch.append(job)
                lines += len(job.inputs)
            self._search(batch)

    def _search(self, batch: list[Job]) -> None:
        live = [job for job in batch if job.future.set_running_or_notify_cancel()]
        groups: dict[tuple[int, bool], list[Job]] = {}
        for job in live:
            groups.setdefault((job.n_best, job.alignments), []).append(job)
        for (n_best, alignments), jobs in groups.items():
            inputs = [line for job in jobs for line in job.inputs]
            try:
                found = self.translator.translate_inputs(inputs, n_best, alignments=alignments, where="request")
            except Exception as exc:  # handed to the waiting request (a bug shows there as a 500)
                for job in jobs:
                    job.future.set_exception(exc)
                continue
            self.batches += 1
            self.lines += len(inputs)
            start = 0
            for job in jobs:
                job.future.set_result(found[start : start + len(job.inputs)])
                start += len(job.inputs)
