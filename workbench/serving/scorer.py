"""One scoring request, framework free: bytes in, status + JSON bytes out.

Parse and validate (protocol), predict (model), log (prediction log, off the request path),
count (metrics). A model that raises on good input is a 500 carrying the request id; bad
input is a 4xx naming the field. Nothing here knows about HTTP servers.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson

from workbench.serving.metrics import ServingMetrics
from workbench.serving.model import ServedModel
from workbench.serving.protocol import Limits, RequestError, parse_body, to_batch
from workbench.store.writer import PredictionRecord

log = logging.getLogger("workbench.serving")
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes


def error_reply(error: RequestError) -> Reply:
    return Reply(error.status, orjson.dumps(error.body()))


class Scorer:
    """Scores requests for one model, logs every prediction, keeps the metrics.

    Args:
        model: the served model.
        limits: row and body-size limits.
        prediction_log: a started ``PredictionLog`` (or None to log nothing).
        metrics: where counts and latencies go.
    """

    def __init__(self, model: ServedModel, limits: Limits, prediction_log: Any,
                 metrics: ServingMetrics) -> None:
        self.model = model
        self.limits = limits
        self.prediction_log = prediction_log
        self.metrics = metrics
        self.ready = False

    def warm_up(self) -> None:
        self.model.warm_up()
        self.ready = True

    def invoke(self, body: bytes, content_type: str | None, request_id: str) -> Reply:
        """Score one request body."""
        started = time.perf_counter()
        try:
            columns, payload, fmt = parse_body(body, content_type)
            batch = to_batch(columns, payload, fmt, self.model.schema, self.limits)
        except RequestError as bad_input:
            return self._done(error_reply(bad_input), started)
        try:
            predictions = self.model.predict(batch)
        except Exception as exc:
            log.error("request %s: model raised %s: %s", request_id, exc.__class__.__name__,
                      str(exc).splitlines()[0][:300] if str(exc) else "")
            failure = RequestError(500, "INTERNAL_ERROR",
                                   f"the model failed on this input ({exc.__class__.__name__}); "
                                   f"request id {request_id}")
            return self._done(error_reply(failure), started)
        reply = Reply(200, orjson.dumps({"predictions": predictions}, option=_JSON_OPTIONS))
        latency = time.perf_counter() - started
        self.metrics.rows.inc(batch.rows)
        if self.prediction_log is not None:
            self.prediction_log.submit(PredictionRecord(
                request_id=request_id, created_at=dt.datetime.now(dt.timezone.utc),
                model_name=self.model.name, columns=batch.columns, inputs=batch.values,
                outputs=predictions, latency_ms=latency * 1000.0,
            ))
        return self._done(reply, started, latency)

    def _done(self, reply: Reply, started: float, latency: float | None = None) -> Reply:
        self.metrics.observe(reply.status, time.perf_counter() - started if latency is None else latency)
        return reply
