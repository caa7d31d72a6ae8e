"""The prediction writer: every prediction the server makes, written to the store off the
request path.

``PredictionLog.submit`` only appends to an in-memory backlog (a deque under one lock); one
daemon thread encodes the records (orjson) and inserts them in batches, one transaction per
batch. The store is SQLite under the state directory on the embedded platform, or any
SQLAlchemy URL (Postgres on the compose platform).

Two kinds of failure, two answers:

- transient (the store is down, locked, unreachable): nothing is lost that fits. The batch in
  hand is kept and retried every ``retry_interval``, the backlog is bounded by
  ``max_backlog``, and what does not fit is dropped and counted.
- permanent (the store rejects the data: integrity, data or programming errors, a foreign
  schema): retrying would block the backlog forever. The batch is retried row by row, so one
  bad row costs only itself; each rejected row is counted as a write error and dropped.

At any moment ``written + dropped + backlog`` equals the number of ``submit`` calls.

Kept lean on purpose (it runs inside the serving image): SQLAlchemy Core and orjson only.
"""
from __future__ import annotations

import collections
import datetime as dt
import decimal
import logging
import math
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from workbench.errors import ConfigError
from workbench.store import schema
from workbench.store.engine import create_engine, one_line, utc
from workbench.store.keys import key_text
from workbench.store.schema import (
    ID_COLUMN_LEN,
    MODEL_NAME_LEN,
    PRIMARY,
    REQUEST_ID_LEN,
    ROLES,
    insert_target,
)

logger = logging.getLogger(__name__)

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_LOG_EVERY_S = 60.0
# The writer shares a serving worker's core with the event loop and the scoring thread. A
# 500-record batch is about 7 ms of CPU, and on one core the OS lets a thread run that long
# before a request that arrived meanwhile is read. Encoding and inserting in chunks, and
# giving the core up between them, bounds that delay to one chunk's work: iris at 8
# connections, p99 5.5 -> 3.3 ms at the same throughput (tests/benchmarks/serving.py).
CHUNK_ROWS = 64
# Give up the core (and the GIL) to any thread that is ready to run; a no-op when none is.
_yield_cpu = getattr(os, "sched_yield", lambda: time.sleep(0))
# The store is unreachable, locked or restarting: the same rows can succeed later. Anything
# else the store or its driver raises (integrity, data or programming errors, a value the
# driver cannot send) refuses the data itself and would fail again however often retried.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError,
    sa.exc.TimeoutError, OSError)


def is_transient(exc: BaseException) -> bool:
    """Whether a failed write may succeed if retried (the store is down, not the data bad)."""
    return isinstance(exc, TRANSIENT_ERRORS) or bool(getattr(exc, "connection_invalidated",
                                                             False))


@dataclass(frozen=True)
class PredictionRecord:
    """One request's prediction, as the server hands it over.

    Attributes:
        request_id: the request's id (cut to 64 characters when stored).
        created_at: when the request arrived, timezone-aware (naive values are taken as UTC).
        model_name: the served model's full name.
        columns: input column names, in signature order.
        inputs: column -> values, one list per column, all of the same length; floats may be NaN.
        outputs: one prediction per row (numbers, strings or lists).
        latency_ms: time spent handling the request (for a shadow record: the shadow's own
            scoring time).
        role: ``primary`` when this model answered the request, ``shadow`` when it scored
            the same request off the response path (logged under its own ``model_name``
            with the primary record's ``request_id``).
        scores: one probability per row (the positive class's for a binary classifier),
            when the caller has them: ``workbench predict --log`` does, the server logs
            none. ``workbench monitor performance`` needs them for ``roc_auc``.
    """

    request_id: str
    created_at: dt.datetime
    model_name: str
    columns: list[str]
    inputs: dict[str, list[Any]]
    outputs: list[Any]
    latency_ms: float
    role: str = PRIMARY
    scores: list[float] | None = None


@dataclass(frozen=True)
class LogStats:
    """A snapshot of the log's counters.

    Attributes:
        backlog: records accepted and not yet written, including a batch held for retry.
        dropped: records that will never be written: refused by a full backlog or after
            ``close``, not encodable as JSON, rejected by the store, or left over at ``close``.
        written: records committed to the store.
        write_errors: failed writes: every attempt while the store is unavailable (each
            retry counts), and every record the store rejected (also counted in ``dropped``).
        last_error: the last failure as one line (exception class and first message line).
    """

    backlog: int
    dropped: int
    written: int
    write_errors: int
    last_error: str | None


class PredictionLog:
    """Batched, bounded, off-the-request-path writer of prediction records.

    Create and start one per server process (after any fork: the writer thread does not
    survive one). Typical use::

        log = PredictionLog(sqlite_url(settings.home / "predictions.db"))
        log.start()
        log.submit(record)          # on every request
        log.close()                 # on shutdown

    Args:
        url: SQLAlchemy URL of the store (a file-backed SQLite URL or a server database).
        batch_size: most records per insert transaction; a full batch is written at once.
        flush_interval: seconds the writer waits for a batch to fill before writing a partial one.
        max_backlog: most records held in memory; later submits are dropped until it drains.
        retry_interval: seconds between attempts while the store fails.
        id_column: the input column whose value identifies a predicted row for the labels
            that arrive later (``customer_id``); a record that has it is stored with its ids
            beside it (see ``_encode``), which the label join reads instead of the inputs.

    Raises:
        ConfigError: the URL cannot be parsed, names an in-memory SQLite database or a
            driver that is not installed, or a size or interval is not positive.
    """

    def __init__(self, url: str, *, batch_size: int = 500, flush_interval: float = 0.5,
                 max_backlog: int = 10_000, retry_interval: float = 1.0,
                 id_column: str | None = None) -> None:
        if batch_size < 1 or max_backlog < 1:
            raise ConfigError("prediction log: batch_size and max_backlog must be at least 1")
        if flush_interval <= 0 or retry_interval <= 0:
            raise ConfigError("prediction log: flush_interval and retry_interval must be positive")
        if id_column and len(id_column) > ID_COLUMN_LEN:
            raise ConfigError(f"prediction log: the id column's name is longer than "
                              f"{ID_COLUMN_LEN} characters ({id_column[:20]}...); rename it")
        self._engine = create_engine(url, writer=True)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_backlog = max_backlog
        self.retry_interval = retry_interval
        self.id_column = id_column or None

        # Everything below is guarded by _cond.
        self._cond = threading.Condition()
        self._pending: collections.deque[PredictionRecord] = collections.deque()
        self._held: list[dict[str, Any]] | None = None  # encoded batch awaiting (re)write
        self._taken = 0          # records out of _pending and not yet written or dropped
        self._accepted = 0       # submits that went into the backlog
        self._done = 0           # accepted records written or dropped, in FIFO order
        self._written = 0
        self._dropped = 0
        self._write_errors = 0
        self._last_error: str | None = None
        self._flush_requests = 0
        self._stopping = False
        self._closing = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._close_lock = threading.Lock()
        # Touched by the writer thread only.
        self._schema_ready = False
        self._last_logged: str | None = None
        self._logged_at = 0.0

    @property
    def engine(self) -> Engine:
        """The writer's engine (for instrumentation; the writer thread owns its connections)."""
        return self._engine

    def start(self) -> None:
        """Start the writer thread; a second call does nothing.

        Never touches the store: the table is created on the writer's first attempt, so a
        store that is down does not delay or fail the server's start.

        Raises:
            RuntimeError: the log was closed.
        """
        with self._cond:
            if self._closing:
                raise RuntimeError("prediction log is closed; create a new one")
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="workbench-prediction-log",
                                            daemon=True)
            self._thread.start()

    def submit(self, record: PredictionRecord) -> bool:
        """Queue one record for writing; O(1), never blocks on the store, never raises.

        Returns:
            True when queued; False when the backlog is full or the log is closing (the
            record is counted in ``dropped``).
        """
        with self._cond:
            if self._closing or len(self._pending) + self._taken >= self.max_backlog:
                self._dropped += 1
                return False
            self._pending.append(record)
            self._accepted += 1
            # Wake the writer only when a batch is full; otherwise its interval timer does.
            if len(self._pending) == self.batch_size:
                self._cond.notify_all()
            return True

    def stats(self) -> LogStats:
        """The counters now."""
        with self._cond:
            return self._stats()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record accepted so far is written (or dropped as unwritable).

        Args:
            timeout: most seconds to wait.

        Returns:
            True when done; False on timeout, e.g. while the store is down, or when the
            writer is not running.
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            target = self._accepted
            if self._done >= target:
                return True
            if self._thread is None or not self._thread.is_alive():
                return False
            self._flush_requests += 1
            self._cond.notify_all()
            try:
                while self._done < target:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._thread.is_alive():
                        return False
                    self._cond.wait(remaining)
                return True
            finally:
                self._flush_requests -= 1

    def close(self, timeout: float = 10.0) -> LogStats:
        """Flush what can be written within ``timeout``, stop the writer, dispose the engine.

        Records still unwritten afterwards are counted as dropped. Later submits are refused.
        Calling it again returns the final stats.

        Args:
            timeout: most seconds to spend flushing and stopping.

        Returns:
            The final counters (``backlog`` is 0).
        """
        with self._close_lock:
            with self._cond:
                if self._closed:
                    return self._stats()
                self._closing = True
            deadline = time.monotonic() + max(timeout, 0.0)
            self.flush(timeout)
            with self._cond:
                self._stopping = True
                self._cond.notify_all()
                thread = self._thread
            if thread is not None:
                # A writer waiting on the condition exits at once; only one stuck in a
                # connect can outlast this, and it is a daemon.
                thread.join(max(deadline - time.monotonic(), 0.1))
            with self._cond:
                leftover = len(self._pending) + self._taken
                self._pending.clear()
                self._held = None
                self._taken = 0
                self._drop_accepted(leftover)
                self._closed = True
                stats = self._stats()
            if leftover:
                logger.warning("prediction log closed with %d records unwritten", leftover)
            self._engine.dispose()
            return stats

    # ------------------------------------------------------------------ writer thread

    def _run(self) -> None:
        failing = False
        while True:
            try:
                batch = self._next_batch()
                if batch is None:
                    return
                if not batch:
                    continue
                failing = self._write(batch, failing)
            except Exception as exc:  # the thread must never die silently
                logger.exception("prediction log writer: unexpected error")
                with self._cond:
                    self._write_errors += 1
                    self._last_error = one_line(exc)
                    if self._held is None and self._taken:
                        # Records taken but never encoded cannot be retried.
                        self._drop_accepted(self._taken)
                        self._taken = 0
                    self._sleep(self.retry_interval)

    def _next_batch(self) -> list[dict[str, Any]] | None:
        """The batch to write next: the held one, else a fresh one; None when stopping."""
        with self._cond:
            if self._stopping:
                return None
            if self._held is not None:
                return self._held
            deadline = time.monotonic() + self.flush_interval
            while not self._stopping and len(self._pending) < self.batch_size and not (
                    self._flush_requests and self._pending):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._stopping:
                return None
            count = min(self.batch_size, len(self._pending))
            records = [self._pending.popleft() for _ in range(count)]
            self._taken = count
        # Encoding happens outside the lock so submit never waits for it.
        rows, bad = _encode_batch(records, self.id_column)
        with self._cond:
            if self._closed:  # close() gave up waiting and counted these as dropped
                return None
            if bad:
                self._drop_accepted(len(bad))
                self._last_error = bad[-1]
            self._taken = len(rows)
            self._held = rows or None
        if bad:
            logger.warning("prediction log: dropped %d records that cannot be encoded: %s",
                           len(bad), bad[-1])
        return rows

    def _write(self, rows: list[dict[str, Any]], failing: bool) -> bool:
        """Insert one batch in one transaction; returns whether the store is now failing."""
        try:
            self._insert(rows)
        except schema.StoreSchemaError as exc:
            # Every row would be refused the same way: reject them all, never retry.
            self._schema_ready = False
            self._settle(rows, written=0, rejected=len(rows), remaining=[], error=exc)
            return False
        except Exception as exc:
            if is_transient(exc):
                return self._unavailable(rows, exc, failing)
            # Check the tables again before the next write: a dropped table is recreated.
            self._schema_ready = False
            return self._write_row_by_row(rows, failing)
        if failing:
            logger.info("prediction log: store reachable again")
        self._settle(rows, written=len(rows), rejected=0, remaining=[])
        return False

    def _write_row_by_row(self, rows: list[dict[str, Any]], failing: bool) -> bool:
        """After a permanent error: each row in its own transaction, so only bad rows are lost."""
        written = rejected = 0
        error: BaseException | None = None
        for index, row in enumerate(rows):
            try:
                self._insert([row])
            except schema.StoreSchemaError as exc:
                self._schema_ready = False
                self._settle(rows, written=written, rejected=len(rows) - written, remaining=[],
                             error=exc)
                return False
            except Exception as exc:
                if not is_transient(exc):
                    rejected += 1
                    error = exc
                    continue
                # The store went away in the middle: keep what is left for the retry.
                remaining = rows[index:]
                self._settle(rows, written=written, rejected=rejected, remaining=remaining,
                             error=error)
                return self._unavailable(remaining, exc, failing)
            else:
                written += 1
        self._settle(rows, written=written, rejected=rejected, remaining=[], error=error)
        return False

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        with self._engine.begin() as conn:
            if not self._schema_ready:
                schema.ensure(conn)
            for start in range(0, len(rows), CHUNK_ROWS):
                if start:
                    _yield_cpu()
                conn.execute(sa.insert(insert_target), rows[start:start + CHUNK_ROWS])
        self._schema_ready = True

    def _unavailable(self, rows: list[dict[str, Any]], exc: BaseException, failing: bool) -> bool:
        """A transient failure: count the attempt, keep ``rows`` held, wait before the retry."""
        # The table may be gone with the store (a new file, a recreated database).
        self._schema_ready = False
        message = one_line(exc)
        if not failing:
            logger.warning("prediction log: store unavailable, retrying every %.1f s: %s",
                           self.retry_interval, message)
        with self._cond:
            self._write_errors += 1
            self._last_error = message
            self._sleep(self.retry_interval)
        return True

    def _settle(self, rows: list[dict[str, Any]], *, written: int, rejected: int,
                remaining: list[dict[str, Any]], error: BaseException | None = None) -> None:
        """Account for the held batch ``rows``: written, rejected (a write error each, and
        dropped), and what stays held for a retry."""
        message = one_line(error) if error is not None and rejected else None
        now = time.monotonic()
        if message and (message != self._last_logged or now - self._logged_at > _LOG_EVERY_S):
            # A store that refuses every batch (a foreign table) says so once a minute, not
            # twice a second; /metrics counts every row.
            self._last_logged, self._logged_at = message, now
            logger.error("prediction log: the store rejected %d of %d records: %s",
                         rejected, len(rows), message)
        with self._cond:
            # close() may have given up on this batch meanwhile; it counted it as dropped.
            if self._held is not rows:
                return
            self._written += written
            self._done += written
            self._write_errors += rejected
            if message:
                self._last_error = message
            self._drop_accepted(rejected)
            self._held = remaining or None
            self._taken = len(remaining)
            self._cond.notify_all()

    # ------------------------------------------------------------------ helpers (lock held)

    def _sleep(self, seconds: float) -> None:
        """Wait ``seconds`` unless stopping; submits that notify do not cut it short."""
        deadline = time.monotonic() + seconds
        while not self._stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def _drop_accepted(self, count: int) -> None:
        if count:
            self._dropped += count
            self._done += count
            self._cond.notify_all()

    def _stats(self) -> LogStats:
        return LogStats(backlog=len(self._pending) + self._taken, dropped=self._dropped,
                        written=self._written, write_errors=self._write_errors,
                        last_error=self._last_error)



# ---------------------------------------------------------------------- encoding


def _encode_batch(records: Iterable[PredictionRecord], id_column: str | None = None
                  ) -> tuple[list[dict[str, Any]], list[str]]:
    """Table rows for the records, and one error line per record that cannot be encoded."""
    rows: list[dict[str, Any]] = []
    bad: list[str] = []
    for count, record in enumerate(records):
        if count and count % CHUNK_ROWS == 0:
            _yield_cpu()
        try:
            rows.append(_encode(record, id_column))
        except Exception as exc:
            bad.append(one_line(exc))
    return rows, bad


def _encode(record: PredictionRecord, id_column: str | None = None) -> dict[str, Any]:
    """One table row; NaN becomes null (orjson's rule), inputs are stored row-major. A
    one-row record has its score in ``score`` (see :func:`_row_score`); a record with
    ``id_column`` among its inputs has that name in ``id_column`` and its id (as labels are
    keyed, see ``keys.key_text``) in ``id_value``, or, of more than one row, each row's id,
    prediction and score in ``label_rows``: the label join reads them there.

    Raises:
        TypeError: a value is not JSON-able, or created_at is not a datetime.
        KeyError: a column named in ``columns`` has no values in ``inputs``.
        ValueError: the role is not one the store knows.
    """
    if record.role not in ROLES:
        raise ValueError(f"role {record.role!r} is not one of {', '.join(ROLES)}")
    columns = [str(name) for name in record.columns]
    data = list(zip(*(record.inputs[name] for name in record.columns)))
    outputs = _as_list(record.outputs)
    scores = None if record.scores is None else _as_list(record.scores)
    n_rows = max(len(data), len(outputs))
    at = columns.index(id_column) if id_column is not None and id_column in columns else None
    one_row = n_rows == 1 and len(data) == 1  # the server's record: one request, one row
    return {
        "request_id": str(record.request_id)[:REQUEST_ID_LEN],
        "created_at": utc(record.created_at),
        "model_name": str(record.model_name)[:MODEL_NAME_LEN],
        "n_rows": n_rows,
        "inputs": orjson.dumps({"columns": columns, "data": data}, option=_JSON_OPTIONS,
                               default=_json_default).decode(),
        "outputs": orjson.dumps(outputs, option=_JSON_OPTIONS, default=_json_default).decode(),
        "latency_ms": None if record.latency_ms is None else float(record.latency_ms),
        "role": record.role,
        "scores": None if scores is None else orjson.dumps(
            scores, option=_JSON_OPTIONS, default=_json_default).decode(),
        "id_column": None if at is None else id_column,
        "id_value": None if at is None or not one_row else key_text(data[0][at]),
        "score": _row_score(scores[0]) if scores and n_rows == 1 else None,
        "label_rows": None if at is None or one_row else _label_rows(data, at, outputs, scores),
    }


def _label_rows(data: list[tuple[Any, ...]], at: int, outputs: list[Any],
                scores: list[Any] | None) -> str:
    """Each row's ``[id, prediction, score]`` (JSON) of a record of more than one row: what
    the label join reads of it, in one array, so it picks no row out of the record's inputs,
    outputs and scores (SQLite walks a JSON array to an index). A row past the outputs has no
    prediction to judge and is left out."""
    row_scores = scores if scores is not None else [None] * len(outputs)
    return orjson.dumps([[key_text(row[at]), output, _row_score(score)]
                         for row, output, score in zip(data, outputs, row_scores)],
                        option=_JSON_OPTIONS, default=_json_default).decode()


def _row_score(value: Any) -> float | None:
    """A row's score as the label join stores it: a number as it is; per-class
    probabilities as the last (positive) class's; anything else (or NaN) none. The same rule
    as the join's SQL over ``scores`` for the records logged without this column."""
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        value = value.tolist()
    if isinstance(value, list):
        value = value[-1] if value else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value):
        return None  # JSON has no infinity either: orjson writes null
    return float(value)


def _as_list(values: Any) -> list[Any]:
    """A numpy array or a Series (despite the annotation) as a list."""
    if isinstance(values, list):
        return values
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _json_default(value: Any) -> Any:
    """What orjson cannot encode itself: numpy object arrays, pandas values, Decimals.

    Raises:
        TypeError: the value has no JSON form.
    """
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


