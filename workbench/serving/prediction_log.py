"""The prediction log: every prediction the server makes, written to a store for monitoring.

``PredictionLog.submit`` only appends to an in-memory backlog (a deque under one lock); one
daemon thread encodes the records (orjson) and inserts them in batches, one transaction per
batch. The store is SQLite under the state directory on the embedded platform, or any
SQLAlchemy URL (Postgres on the compose platform).

A store that is down never fails a prediction: the batch in hand is kept and retried, the
backlog is bounded by ``max_backlog``, and what does not fit is dropped and counted. At any
moment ``written + dropped + backlog`` equals the number of ``submit`` calls.

``read_predictions`` turns the stored records back into one DataFrame row per predicted row,
for drift monitoring.

Kept lean on purpose (it runs inside the serving image): SQLAlchemy Core and orjson only;
pandas is imported by ``read_predictions`` alone.
"""
from __future__ import annotations

import collections
import datetime as dt
import decimal
import logging
import pathlib
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from workbench.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

TABLE_NAME = "predictions"
BASE_COLUMNS = ("request_id", "created_at", "model_name", "prediction", "latency_ms")
SQLITE_BUSY_TIMEOUT_MS = 5_000
MAX_ERROR_CHARS = 200
_REQUEST_ID_LEN = 64
_MODEL_NAME_LEN = 255
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY

metadata = sa.MetaData()

predictions_table = sa.Table(
    TABLE_NAME,
    metadata,
    # BIGINT on servers: at a few hundred predictions a second a 32-bit id runs out in
    # months. SQLite only autoincrements an ``INTEGER PRIMARY KEY``.
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
              primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(_REQUEST_ID_LEN), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("model_name", sa.String(_MODEL_NAME_LEN), nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),
    sa.Column("outputs", sa.Text, nullable=False),
    sa.Column("latency_ms", sa.Float),
    sa.Index("ix_predictions_model_name_created_at", "model_name", "created_at"),
)


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
        latency_ms: time spent handling the request.
    """

    request_id: str
    created_at: dt.datetime
    model_name: str
    columns: list[str]
    inputs: dict[str, list[Any]]
    outputs: list[Any]
    latency_ms: float


@dataclass(frozen=True)
class LogStats:
    """A snapshot of the log's counters.

    Attributes:
        backlog: records accepted and not yet written, including a batch held for retry.
        dropped: records that will never be written: refused by a full backlog or after
            ``close``, not encodable as JSON, rejected by the store, or left over at ``close``.
        written: records committed to the store.
        write_errors: failed write attempts (every retry counts).
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

    Raises:
        ConfigError: the URL cannot be parsed, names an in-memory SQLite database or a
            driver that is not installed, or a size or interval is not positive.
    """

    def __init__(self, url: str, *, batch_size: int = 500, flush_interval: float = 0.5,
                 max_backlog: int = 10_000, retry_interval: float = 1.0) -> None:
        if batch_size < 1 or max_backlog < 1:
            raise ConfigError("prediction log: batch_size and max_backlog must be at least 1")
        if flush_interval <= 0 or retry_interval <= 0:
            raise ConfigError("prediction log: flush_interval and retry_interval must be positive")
        self._engine = _create_engine(url, writer=True)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_backlog = max_backlog
        self.retry_interval = retry_interval

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
        self._table_ready = False   # touched by the writer thread only

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
                    self._last_error = _one_line(exc)
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
        rows, bad = _encode_batch(records)
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
            with self._engine.begin() as conn:
                if not self._table_ready:
                    metadata.create_all(conn, checkfirst=True)
                conn.execute(predictions_table.insert(), rows)
        except (sa.exc.DataError, sa.exc.IntegrityError) as exc:
            # The store rejects the data itself: retrying the same batch would block the
            # backlog forever, so it is dropped.
            message = _one_line(exc)
            logger.error("prediction log: store rejected a batch of %d records: %s",
                         len(rows), message)
            with self._cond:
                self._write_errors += 1
                self._last_error = message
                if self._held is rows:
                    self._held = None
                    self._taken = 0
                    self._drop_accepted(len(rows))
            return failing
        except Exception as exc:
            # The table may be gone with the store (a new file, a recreated database).
            self._table_ready = False
            message = _one_line(exc)
            if not failing:
                logger.warning("prediction log: store unavailable, retrying every %.1f s: %s",
                               self.retry_interval, message)
            with self._cond:
                self._write_errors += 1
                self._last_error = message
                self._sleep(self.retry_interval)
            return True
        self._table_ready = True
        if failing:
            logger.info("prediction log: store reachable again")
        with self._cond:
            # close() may have given up on this batch meanwhile; it counted it as dropped.
            if self._held is rows:
                self._held = None
                self._taken = 0
                self._written += len(rows)
                self._done += len(rows)
                self._cond.notify_all()
        return False

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


# ---------------------------------------------------------------------- engine and encoding


def sqlite_url(path: pathlib.Path) -> str:
    """The SQLAlchemy URL of an SQLite file, creating its parent folder.

    Raises:
        OSError: the parent folder cannot be created.
    """
    path = pathlib.Path(path).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.as_posix()}"


def _parse_url(url: str) -> sa.URL:
    """The parsed store URL.

    Raises:
        ConfigError: the URL cannot be parsed, or names an in-memory SQLite database.
    """
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:  # the message never echoes the URL (or its password)
        raise ConfigError(f"prediction store URL cannot be used: {_one_line(exc)}") from exc
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigError("prediction store: an in-memory SQLite database cannot be shared "
                          "by the writer and readers; use a file (sqlite_url)")
    return parsed


def _create_engine(url: str, *, writer: bool) -> Engine:
    """An engine for the store: no pool for SQLite, WAL so several processes can write.

    Raises:
        ConfigError: the URL cannot be used (see ``_parse_url``) or its driver is missing.
    """
    parsed = _parse_url(url)
    try:
        if parsed.get_backend_name() != "sqlite":
            return sa.create_engine(parsed, pool_pre_ping=True)
        # A new connection per flush notices a store that went away and reuses one that
        # came back.
        engine = sa.create_engine(parsed, poolclass=NullPool)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise ConfigError(f"prediction store URL cannot be used: {_one_line(exc)}") from exc

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if writer:
                cursor.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL syncs at checkpoints, not at every commit: a crash can lose the
                # last batches, never corrupt the file, and the disk stops stalling the server.
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    return engine


def _encode_batch(records: Iterable[PredictionRecord]) -> tuple[list[dict[str, Any]], list[str]]:
    """Table rows for the records, and one error line per record that cannot be encoded."""
    rows: list[dict[str, Any]] = []
    bad: list[str] = []
    for record in records:
        try:
            rows.append(_encode(record))
        except Exception as exc:
            bad.append(_one_line(exc))
    return rows, bad


def _encode(record: PredictionRecord) -> dict[str, Any]:
    """One table row; NaN becomes null (orjson's rule), inputs are stored row-major.

    Raises:
        TypeError: a value is not JSON-able, or created_at is not a datetime.
        KeyError: a column named in ``columns`` has no values in ``inputs``.
    """
    columns = [str(name) for name in record.columns]
    data = list(zip(*(record.inputs[name] for name in record.columns)))
    outputs = record.outputs
    if not isinstance(outputs, list):  # a numpy array or a Series, despite the annotation
        outputs = outputs.tolist() if hasattr(outputs, "tolist") else list(outputs)
    return {
        "request_id": str(record.request_id)[:_REQUEST_ID_LEN],
        "created_at": _utc(record.created_at),
        "model_name": str(record.model_name)[:_MODEL_NAME_LEN],
        "n_rows": max(len(data), len(outputs)),
        "inputs": orjson.dumps({"columns": columns, "data": data}, option=_JSON_OPTIONS,
                               default=_json_default).decode(),
        "outputs": orjson.dumps(outputs, option=_JSON_OPTIONS, default=_json_default).decode(),
        "latency_ms": None if record.latency_ms is None else float(record.latency_ms),
    }


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


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """An aware UTC datetime; naive values are taken as UTC.

    SQLite stores the wall time only, so everything is converted to UTC before it is stored
    or compared.

    Raises:
        TypeError: the value is not a datetime.
    """
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        raise TypeError(f"created_at must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def _one_line(exc: BaseException) -> str:
    """Class name and first message line: SQLAlchemy puts SQL and parameters on later lines."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    return f"{type(exc).__name__}: {first}"[:MAX_ERROR_CHARS]


# ---------------------------------------------------------------------- reading


def read_predictions(url: str, model_name: str | None = None,
                     since: dt.datetime | None = None,
                     until: dt.datetime | None = None) -> pd.DataFrame:
    """Logged predictions as one row per predicted row, oldest first.

    Columns: ``request_id``, ``created_at`` (UTC), ``model_name``, the input columns (in
    first-seen order; one that clashes with these names gets an ``input_`` prefix),
    ``prediction`` and ``latency_ms``. Rows of records that lack a column hold null there.

    Args:
        url: SQLAlchemy URL of the store.
        model_name: only this model's predictions.
        since: only predictions created at or after this time (naive means UTC).
        until: only predictions created before this time (naive means UTC).

    Returns:
        The frame; empty with the base columns when nothing matches or nothing was logged.

    Raises:
        ConfigError: the URL cannot be parsed or its driver is not installed.
        sqlalchemy.exc.SQLAlchemyError: the store cannot be read.
    """
    import pandas as pd

    parsed = _parse_url(url)
    if parsed.get_backend_name() == "sqlite" and not pathlib.Path(parsed.database).exists():
        return _frame(pd, {}, {}, [])  # reading must not create the file
    engine = _create_engine(url, writer=False)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(TABLE_NAME):
                return _frame(pd, {}, {}, [])
            table = predictions_table
            query = sa.select(table.c.request_id, table.c.created_at, table.c.model_name,
                              table.c.inputs, table.c.outputs, table.c.latency_ms)
            if model_name is not None:
                query = query.where(table.c.model_name == model_name)
            if since is not None:
                query = query.where(table.c.created_at >= _utc(since))
            if until is not None:
                query = query.where(table.c.created_at < _utc(until))
            query = query.order_by(table.c.created_at, table.c.id)
            base, features, order = _expand(conn.execute(query))
    finally:
        engine.dispose()
    return _frame(pd, base, features, order)


def _expand(rows: Iterable[Sequence[Any]]) -> tuple[dict[str, list[Any]],
                                                   dict[str, list[Any]], list[str]]:
    """Column lists from stored records, one entry per predicted row."""
    base: dict[str, list[Any]] = {name: [] for name in BASE_COLUMNS}
    features: dict[str, list[Any]] = {}
    order: list[str] = []
    total = 0
    for request_id, created_at, model, inputs_json, outputs_json, latency in rows:
        inputs = orjson.loads(inputs_json)
        outputs = orjson.loads(outputs_json)
        data = inputs.get("data") or []
        count = max(len(data), len(outputs))
        by_column = list(zip(*data)) if data else []
        for index, name in enumerate(inputs.get("columns") or []):
            name = f"input_{name}" if name in BASE_COLUMNS else name
            values = features.get(name)
            if values is None:
                values = features[name] = [None] * total
                order.append(name)
            column = list(by_column[index]) if index < len(by_column) else []
            values.extend(column + [None] * (count - len(column)))
        total += count
        for values in features.values():  # columns this record did not have
            if len(values) < total:
                values.extend([None] * (total - len(values)))
        base["request_id"].extend([request_id] * count)
        base["created_at"].extend([created_at] * count)
        base["model_name"].extend([model] * count)
        base["latency_ms"].extend([latency] * count)
        base["prediction"].extend(list(outputs) + [None] * (count - len(outputs)))
    return base, features, order


def _frame(pd: Any, base: dict[str, list[Any]], features: dict[str, list[Any]],
           order: list[str]) -> pd.DataFrame:
    created = pd.to_datetime(base.get("created_at", []), utc=True)
    columns: dict[str, Any] = {
        "request_id": pd.Series(base.get("request_id", []), dtype="str"),
        "created_at": pd.Series(created),
        "model_name": pd.Series(base.get("model_name", []), dtype="str"),
    }
    for name in order:
        values = features[name]
        # Nulls only (say, a float column that was all NaN): float NaN, pandas' missing value.
        columns[name] = (pd.Series(values, dtype="float64")
                         if all(value is None for value in values) else values)
    columns["prediction"] = pd.Series(base.get("prediction", []), dtype="object")
    columns["latency_ms"] = pd.Series(base.get("latency_ms", []), dtype="float64")
    return pd.DataFrame(columns)
