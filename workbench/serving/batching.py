"""Adaptive micro-batching: requests that wait while the model is busy share one ``predict``.

A pipeline's ``predict`` costs nearly the same for 1 row as for hundreds (the per-call overhead
of pandas and the column transformer dominates), so under load the server scores whatever
queued up during the previous call in one call, and after a call that scored several requests
it waits a moment (at most a quarter of that call, and ``max_wait_ms``) for those clients to
come back. An idle server, or one with a single client, scores a request at once: a lone
request never waits for company.

The scorer runs on one thread beside the event loop: the loop keeps reading requests while the
model works (that is what fills the next batch), a SIGTERM finds them in flight so uvicorn
drains them, and ``/health`` answers during a slow prediction. One thread, since the GIL
serialises the CPU work anyway.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from workbench.serving.protocol import RequestError
from workbench.serving.scorer import Prepared, Reply, Scorer, error_reply

log = logging.getLogger("workbench.serving")
# The longest wait for company, as a share of the call just made: a quarter of a call costs a
# request less than queueing behind a whole call.
WAIT_SHARE = 0.25


class Batcher:
    """Queues prepared requests and scores them in merged batches on the scoring thread.

    Args:
        scorer: does the scoring.
        max_rows: most rows merged into one call (a larger request is scored alone).
        max_wait_ms: longest wait, after a call that scored several requests, for those
            clients' next requests (see ``_wait_for_company``); 0: never wait.
        timeout_ms: a request not answered by then gets 504; None: no limit.
    """

    def __init__(self, scorer: Scorer, *, max_rows: int = 1024, max_wait_ms: float = 2.0,
                 timeout_ms: float | None = None) -> None:
        self.scorer = scorer
        self.max_rows = max_rows
        self.max_wait = max_wait_ms / 1000.0
        self.timeout = timeout_ms / 1000.0 if timeout_ms else None
        self._pending: deque[tuple[Prepared, asyncio.Future[Reply]]] = deque()
        self._draining = False
        self._arrived = asyncio.Event()
        self._busy_since: float | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")

    @property
    def stuck(self) -> bool:
        """The model has been in one call for longer than the timeout."""
        since = self._busy_since
        return self.timeout is not None and since is not None and time.monotonic() - since > self.timeout

    async def submit(self, prepared: Prepared) -> Reply:
        """The reply for ``prepared``: scored with whatever else is waiting, or a 504."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending.append((prepared, future))
        self._arrived.set()
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        if self.timeout is None:
            return await future
        remaining = self.timeout - (time.perf_counter() - prepared.started)
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(remaining, 0.0))
        except TimeoutError:
            # The model cannot be stopped mid-call; its result for this request is dropped.
            prepared.abandoned = True
            self.scorer.metrics.timeouts.inc()
            log.error("request %s: no prediction after %.0f ms; answered 504",
                      prepared.request_id, self.timeout * 1000)
            return self.scorer.done(error_reply(RequestError(
                504, "TIMEOUT", f"the model did not answer within {self.timeout * 1000:.0f} ms "
                f"(--timeout-ms); request id {prepared.request_id}")), prepared.started)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                batch = self._take()
                if not batch:
                    return
                self._busy_since = started = time.monotonic()
                try:
                    replies = await loop.run_in_executor(
                        self._executor, self.scorer.score, [prepared for prepared, _ in batch])
                except Exception as exc:  # a bug in scoring itself, not in the model
                    log.exception("scoring failed")
                    replies = [self.scorer.done(error_reply(RequestError(
                        500, "INTERNAL_ERROR", f"scoring failed ({exc.__class__.__name__}); "
                        f"request id {prepared.request_id}")), prepared.started)
                        for prepared, _ in batch]
                finally:
                    self._busy_since = None
                for (_, future), reply in zip(batch, replies):
                    if not future.done():
                        future.set_result(reply)
                if len(batch) > 1 and self.max_wait:
                    await self._wait_for_company(len(batch), time.monotonic() - started)
        finally:
            self._draining = False

    async def _wait_for_company(self, answered: int, call_s: float) -> None:
        """After a call that scored several requests, give those clients a moment to send their
        next ones, so they join the next call instead of queueing behind it.

        Without this, eight clients settle into two alternating calls of four: the four that
        arrive during a call wait for it to end, then for their own call. With it, they share
        one call. The wait ends as soon as as many requests wait as were just answered, and
        never lasts longer than a quarter of the call just made (or ``max_wait``); after a call
        that scored one request (one client, or an idle server) there is no wait at all.
        """
        loop = asyncio.get_running_loop()
        expected = len(self._pending) + answered
        deadline = loop.time() + min(self.max_wait, call_s * WAIT_SHARE)
        while len(self._pending) < expected and self._rows_waiting() < self.max_rows:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    def _rows_waiting(self) -> int:
        return sum(prepared.batch.rows for prepared, _ in self._pending)

    def _take(self) -> list[tuple[Prepared, asyncio.Future[Reply]]]:
        """The oldest waiting requests, up to ``max_rows`` rows (at least one request)."""
        taken: list[tuple[Prepared, asyncio.Future[Reply]]] = []
        rows = 0
        while self._pending:
            prepared, future = self._pending[0]
            if taken and rows + prepared.batch.rows > self.max_rows:
                break
            self._pending.popleft()
            if future.done() or prepared.abandoned:
                continue
            taken.append((prepared, future))
            rows += prepared.batch.rows
        return taken

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False)
