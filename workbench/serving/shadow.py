"""``--shadow``: a challenger scores every request too, off the response path.

The scoring thread hands each scored group to ``ShadowScorer.offer`` (a non-blocking put) and
answers the client; the shadow's own thread gathers what was offered and scores it in large
merged batches, so its cost per request stays small even beside a busy champion (the call
overhead of a pipeline is paid once per batch, not once per request). Its predictions are
logged under the challenger's name, with role ``shadow`` and the champion's request ids, for
``workbench monitor compare``. When the shadow falls behind, requests are skipped and
counted (``workbench_shadow_requests{outcome="skipped"}``), never queued without bound.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

from workbench.serving.metrics import ServingMetrics
from workbench.serving.model import ServedModel
from workbench.serving.scorer import Prepared, merge_batches, split
from workbench.store.schema import SHADOW
from workbench.store.writer import PredictionRecord

log = logging.getLogger("workbench.serving")


class ShadowScorer:
    """Scores what the served model scored with ``model`` and logs it as shadow predictions.

    Args:
        model: the challenger; ``swap`` replaces it (``--follow``).
        prediction_log: where its predictions go (None: scored and counted, not logged).
        metrics: the server's metrics.
        batch_rows: rows gathered before a shadow call (fewer after ``max_delay_s``).
        max_delay_s: longest a request waits for its shadow score.
        max_backlog: requests waiting beyond which new ones are skipped.
    """

    def __init__(self, model: ServedModel, prediction_log: Any, metrics: ServingMetrics, *,
                 batch_rows: int = 256, max_delay_s: float = 1.0, max_backlog: int = 10_000) -> None:
        self.model = model
        self.prediction_log = prediction_log
        self.metrics = metrics
        self.batch_rows = batch_rows
        self.max_delay_s = max_delay_s
        self._queue: queue.Queue[Prepared | None] = queue.Queue(maxsize=max_backlog)
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
        self._outcome = {name: metrics.shadow.labels(outcome=name)
                         for name in ("scored", "failed", "skipped")}

    def start(self) -> None:
        self.model.warm_up()
        self._thread.start()

    def swap(self, model: ServedModel) -> None:
        self.model = model

    def offer(self, _served: ServedModel, group: Sequence[Prepared],
              _outputs: Sequence[list[Any]]) -> None:
        """Queue ``group`` for the shadow (called on the scoring thread; never blocks)."""
        for prepared in group:
            try:
                self._queue.put_nowait(prepared)
            except queue.Full:
                self._outcome["skipped"].inc()

    def close(self, timeout: float = 10.0) -> None:
        """Score what is queued, then stop."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _run(self) -> None:
        pending: list[Prepared] = []
        rows, first_at = 0, 0.0
        while True:
            wait = self.max_delay_s - (time.monotonic() - first_at) if pending else None
            item: Prepared | bool | None
            try:
                item = self._queue.get(timeout=max(wait, 0.0) if wait is not None else None)
            except queue.Empty:
                item = False  # the oldest waited long enough
            if item is None:
                self._score(pending)
                return
            if isinstance(item, Prepared):
                if not pending:
                    first_at = time.monotonic()
                pending.append(item)
                rows += item.batch.rows
                if rows < self.batch_rows:
                    continue
            if pending:
                self._score(pending)
            pending, rows = [], 0

    def _score(self, pending: list[Prepared]) -> None:
        if not pending:
            return
        model = self.model
        by_columns: dict[tuple[str, ...], list[Prepared]] = {}
        for prepared in pending:
            by_columns.setdefault(tuple(prepared.batch.columns), []).append(prepared)
        for group in by_columns.values():
            started = time.perf_counter()
            try:
                merged = merge_batches([p.batch for p in group])
                predictions = model.predict(merged)
                if len(predictions) != merged.rows:
                    raise ValueError(f"{len(predictions)} predictions for {merged.rows} rows")
            except Exception as exc:
                self._outcome["failed"].inc(len(group))
                log.error("shadow %s failed on %d request(s): %s", model.name, len(group),
                          exc.__class__.__name__)
                continue
            # Each request's share of the call: what the shadow would have cost it.
            per_row_ms = (time.perf_counter() - started) * 1000.0 / max(merged.rows, 1)
            self._outcome["scored"].inc(len(group))
            if self.prediction_log is None:
                continue
            for prepared, outputs in zip(group, split(predictions, group)):
                self.prediction_log.submit(PredictionRecord(
                    request_id=prepared.request_id, created_at=prepared.created_at,
                    model_name=model.name, columns=prepared.batch.columns,
                    inputs=prepared.batch.values, outputs=outputs,
                    latency_ms=per_row_ms * prepared.batch.rows, role=SHADOW))
