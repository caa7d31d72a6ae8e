"""Scoring, framework free: request bytes in, status + JSON bytes out.

Two steps, so requests that arrive together can be scored together:
  ``prepare`` parses and validates one request (protocol) into a ``Prepared``, or a 4xx reply;
  ``score`` predicts a list of prepared requests in one ``predict`` call per group of
  requests with the same columns, splits the predictions back in order, logs every request's
  prediction (off the request path) and counts it (metrics).

A model that raises on good input is a 500 carrying the request id; when it raises on a
merged batch its requests are rescored one by one, so only the request that fails gets the
500. Nothing here knows about HTTP servers or event loops.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from workbench.serving.metrics import ServingMetrics
from workbench.serving.model import ServedModel
from workbench.serving.protocol import Batch, Limits, RequestError, parse_body, to_batch
from workbench.store.writer import PredictionRecord

log = logging.getLogger("workbench.serving")
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True)
class Reply:
    """What goes back to the client; ``model_name`` names the instance that scored it."""

    status: int
    body: bytes
    model_name: str | None = None


def error_reply(error: RequestError, model_name: str | None = None) -> Reply:
    return Reply(error.status, orjson.dumps(error.body()), model_name)


@dataclass
class Prepared:
    """One validated request waiting to be scored.

    Attributes:
        batch: the validated columns.
        request_id: the request's id (logged, and named in a 500).
        started: ``time.perf_counter()`` when the request was read, for its latency.
        created_at: when it arrived, for the prediction log.
        abandoned: set when the client was already answered (a timeout): its result is
            neither logged nor counted.
    """

    batch: Batch
    request_id: str
    started: float
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    abandoned: bool = False


# Called with what was scored: the model, the requests, their predictions (one list per
# request). The shadow scorer listens here.
ScoredListener = Callable[[ServedModel, Sequence[Prepared], Sequence[list[Any]]], None]


class Scorer:
    """Scores requests for the served model, logs every prediction, keeps the metrics.

    Args:
        model: the served model; ``swap`` replaces it between two batches.
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
        self.listeners: list[ScoredListener] = []
        metrics.set_model(model.name)

    def warm_up(self) -> None:
        self.model.warm_up()
        self.ready = True

    def swap(self, model: ServedModel) -> None:
        """Serve ``model`` from the next batch on (a batch in flight finishes on the old one:
        one attribute assignment, atomic under the GIL)."""
        self.model = model
        self.metrics.set_model(model.name)

    def prepare(self, body: bytes, content_type: str | None, request_id: str,
                started: float | None = None) -> Prepared | Reply:
        """Parse and validate one request: a ``Prepared``, or the 4xx ``Reply`` for bad input."""
        started = time.perf_counter() if started is None else started
        model = self.model
        try:
            columns, payload, fmt = parse_body(body, content_type)
            batch = to_batch(columns, payload, fmt, model.schema, self.limits)
        except RequestError as bad_input:
            return self.done(error_reply(bad_input, model.name), started)
        return Prepared(batch, request_id, started)

    def score(self, requests: Sequence[Prepared]) -> list[Reply]:
        """Score ``requests``, merged where their columns agree; one reply per request, in order."""
        model = self.model
        replies: list[Reply | None] = [None] * len(requests)
        for positions in groups_by_columns(requests):
            group = [requests[i] for i in positions]
            for position, reply in zip(positions, self._score_group(model, group)):
                replies[position] = reply
        self.metrics.batch_rows.observe(sum(r.batch.rows for r in requests))
        return [reply for reply in replies if reply is not None]

    def _score_group(self, model: ServedModel, group: list[Prepared]) -> list[Reply]:
        if len(group) > 1:
            merged = merge_batches([p.batch for p in group])
            try:
                predictions, scores = self._predict(model, merged)
            except Exception:  # one request's input broke the batch: find which, alone
                predictions, scores = None, None
            if predictions is not None and len(predictions) == merged.rows:
                return self._succeeded(model, group, split(predictions, group),
                                       None if scores is None else split(scores, group))
        replies = []
        for prepared in group:
            try:
                predictions, scores = self._predict(model, prepared.batch)
            except Exception as exc:
                replies.append(self._failed(model, prepared, exc))
                continue
            replies.extend(self._succeeded(model, [prepared], [predictions],
                                           None if scores is None else [scores]))
        return replies

    def _predict(self, model: ServedModel, batch: Any) -> tuple[list[Any], list[float] | None]:
        """Predictions, with the probabilities only when they are logged (``--no-log``
        spares the request path the extra work)."""
        if self.prediction_log is None:
            return model.predict(batch), None
        return model.predict_scored(batch)

    def _succeeded(self, model: ServedModel, group: list[Prepared],
                   outputs: list[list[Any]], scores: list[list[float]] | None) -> list[Reply]:
        replies = []
        now = time.perf_counter()
        for n, (prepared, predictions) in enumerate(zip(group, outputs)):
            reply = Reply(200, orjson.dumps({"predictions": predictions}, option=_JSON_OPTIONS),
                          model.name)
            if prepared.abandoned:
                replies.append(reply)
                continue
            latency = now - prepared.started
            self.metrics.rows.inc(prepared.batch.rows)
            if self.prediction_log is not None:
                self.prediction_log.submit(PredictionRecord(
                    request_id=prepared.request_id, created_at=prepared.created_at,
                    model_name=model.name, columns=prepared.batch.columns,
                    inputs=prepared.batch.values, outputs=predictions, latency_ms=latency * 1000.0,
                    scores=None if scores is None else scores[n]))
            replies.append(self.done(reply, prepared.started, latency))
        for listener in self.listeners:
            listener(model, group, outputs)
        return replies

    def _failed(self, model: ServedModel, prepared: Prepared, exc: Exception) -> Reply:
        log.error("request %s: model raised %s: %s", prepared.request_id, exc.__class__.__name__,
                  str(exc).splitlines()[0][:300] if str(exc) else "")
        failure = RequestError(500, "INTERNAL_ERROR",
                               f"the model failed on this input ({exc.__class__.__name__}); "
                               f"request id {prepared.request_id}")
        reply = error_reply(failure, model.name)
        return reply if prepared.abandoned else self.done(reply, prepared.started)

    def done(self, reply: Reply, started: float, latency: float | None = None) -> Reply:
        """Count ``reply`` in the metrics and return it."""
        self.metrics.observe(reply.status, time.perf_counter() - started if latency is None else latency)
        return reply


def groups_by_columns(requests: Sequence[Prepared]) -> list[list[int]]:
    """Positions of requests that can share a ``predict`` call: the same columns, in order."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for position, prepared in enumerate(requests):
        groups.setdefault(tuple(prepared.batch.columns), []).append(position)
    return list(groups.values())


def merge_batches(batches: Sequence[Batch]) -> Batch:
    """One batch holding ``batches``' rows in order (they have the same columns)."""
    columns = batches[0].columns
    values = {name: [value for batch in batches for value in batch.values[name]] for name in columns}
    return Batch(list(columns), values, sum(batch.rows for batch in batches))


def split(predictions: list[Any], group: Sequence[Prepared]) -> list[list[Any]]:
    """Cut a merged batch's predictions back into one list per request."""
    out, offset = [], 0
    for prepared in group:
        out.append(predictions[offset:offset + prepared.batch.rows])
        offset += prepared.batch.rows
    return out
