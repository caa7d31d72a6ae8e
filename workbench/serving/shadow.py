"""``--shadow``: a challenger scores every request too, off the response path.

The scoring thread hands each scored group to ``ShadowScorer.offer`` (an append, nothing woken)
and answers the client; the shadow's own thread looks four times a second and scores what
waits in large merged batches, so its cost per request stays small even beside a busy champion
(the call overhead of a pipeline is paid once per batch, not once per request). Its predictions are
logged under the challenger's name, with role ``shadow`` and the champion's request ids, for
``workbench monitor compare``. When the shadow falls behind, requests are skipped and
counted (``workbench_shadow_requests{outcome="skipped"}``), never queued without bound.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from workbench.serving.metrics import ServingMetrics
from workbench.serving.model import ServedModel
from workbench.serving.scorer import Prepared, groups_by_columns, merge_batches, split
from workbench.store.schema import SHADOW
from workbench.store.writer import PredictionRecord

log = logging.getLogger("workbench.serving")


class ShadowScorer:
    """Scores what the served model scored with ``model`` and logs it as shadow predictions.

    Args:
        model: the challenger; ``swap`` replaces it (``--follow``).
        prediction_log: where its predictions go (None: scored and counted, not logged).
        metrics: the server's metrics.
        batch_rows: most rows in one shadow call.
        tick_s: how often the shadow thread looks for work. It is never woken per request:
            a wake-up per request would make it compete with the scoring thread for the GIL
            at every request, which costs the champion's latency more than the scoring does.
        max_backlog: requests waiting beyond which new ones are skipped.
    """

    def __init__(self, model: ServedModel, prediction_log: Any, metrics: ServingMetrics, *,
                 batch_rows: int = 1024, tick_s: float = 0.25, max_backlog: int = 10_000) -> None:
        self.model = model
        self.prediction_log = prediction_log
        self.metrics = metrics
        self.batch_rows = batch_rows
        self.tick_s = tick_s
        self.max_backlog = max_backlog
        # deque.append and popleft are atomic: the scoring thread appends without a lock.
        self._pending: deque[Prepared] = deque()
        self._stop = threading.Event()
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
        if len(self._pending) + len(group) > self.max_backlog:
            self._outcome["skipped"].inc(len(group))
            return
        self._pending.extend(group)

    def close(self, timeout: float = 10.0) -> None:
        """Score what is queued, then stop."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            self._score_waiting()
        self._score_waiting()

    def _score_waiting(self) -> None:
        while self._pending:
            batch: list[Prepared] = []
            rows = 0
            while self._pending and (not batch or rows + self._pending[0].batch.rows <= self.batch_rows):
                prepared = self._pending.popleft()
                batch.append(prepared)
                rows += prepared.batch.rows
            self._score(batch)

    def _score(self, pending: list[Prepared]) -> None:
        if not pending:
            return
        model = self.model
        for positions in groups_by_columns(pending):
            group = [pending[i] for i in positions]
            started = time.perf_counter()
            try:
                merged = merge_batches([p.batch for p in group])
                # Probabilities only when they are logged.
                predictions, scores = (model.predict(merged), None) if self.prediction_log is None \
                    else model.predict_scored(merged)
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
            shares = split(scores, group) if scores is not None else [None] * len(group)
            for prepared, outputs, share in zip(group, split(predictions, group), shares):
                self.prediction_log.submit(PredictionRecord(
                    request_id=prepared.request_id, created_at=prepared.created_at,
                    model_name=model.name, columns=prepared.batch.columns,
                    inputs=prepared.batch.values, outputs=outputs,
                    latency_ms=per_row_ms * prepared.batch.rows, role=SHADOW, scores=share))
