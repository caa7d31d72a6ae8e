"""Reading the prediction store back: one DataFrame row per predicted row, for monitoring.

Reads are windowed (model, role, ``since``, ``until``) on the indexed columns and streamed in chunks
of ``chunk_size`` stored records, so a month of predictions never sits in memory twice (raw
rows and the frame). Reading never creates or migrates anything: a read-only role is enough,
and a store with no predictions reads as an empty frame.

pandas is imported by ``read_predictions`` alone (the writer side runs without it).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import gc
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from workbench.store.engine import create_engine, sqlite_file_missing, utc
from workbench.store.schema import PRIMARY, ROLE_LEN, TABLE_NAME, predictions_table

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection

BASE_COLUMNS = ("request_id", "created_at", "model_name", "role", "prediction", "latency_ms")
CHUNK_SIZE = 5_000


def read_predictions(url: str, model_name: str | None = None,
                     since: dt.datetime | None = None,
                     until: dt.datetime | None = None, *,
                     role: str | None = None,
                     chunk_size: int = CHUNK_SIZE) -> pd.DataFrame:
    """Logged predictions as one row per predicted row, oldest first.

    Columns: ``request_id``, ``created_at`` (UTC), ``model_name``, ``role`` (``primary`` or
    ``shadow``), the input columns (in first-seen order; one that clashes with these names
    gets an ``input_`` prefix), ``prediction`` and ``latency_ms``. Rows of records that lack
    a column hold null there.

    Args:
        url: SQLAlchemy URL of the store.
        model_name: only this model's predictions.
        since: only predictions created at or after this time (naive means UTC).
        until: only predictions created before this time (naive means UTC).
        role: only predictions logged in this role (``primary`` or ``shadow``).
        chunk_size: stored records fetched at a time.

    Returns:
        The frame; empty with the base columns when nothing matches or nothing was logged.

    Raises:
        ConfigError: the URL cannot be parsed or its driver is not installed.
        sqlalchemy.exc.SQLAlchemyError: the store cannot be read.
    """
    import pandas as pd

    if sqlite_file_missing(url):
        return _frame(pd, {}, {}, [])  # reading must not create the file
    engine = create_engine(url, writer=False)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            if not inspector.has_table(TABLE_NAME):
                return _frame(pd, {}, {}, [])
            # A store not yet migrated to version 3 has no role column: all its rows are
            # primary (reading must not migrate it).
            has_role = "role" in {column["name"] for column in inspector.get_columns(TABLE_NAME)}
            result = conn.execution_options(stream_results=True, yield_per=chunk_size).execute(
                window_query(model_name, since, until, role, has_role=has_role))
            base, features, order = _expand(row for chunk in result.partitions()
                                            for row in chunk)
    finally:
        engine.dispose()
    return _frame(pd, base, features, order)


def window_query(model_name: str | None = None, since: dt.datetime | None = None,
                 until: dt.datetime | None = None, role: str | None = None, *,
                 has_role: bool = True) -> sa.Select[Any]:
    """The stored records of one model (or all) in ``[since, until)``, oldest first; of one
    role when ``role`` is given.

    Args:
        has_role: the table has the ``role`` column (schema version 3); without it every
            record reads as ``primary``.

    Raises:
        TypeError: ``since`` or ``until`` is not a datetime.
    """
    table = predictions_table
    role_column: Any = (table.c.role if has_role
                        else sa.literal(PRIMARY, sa.String(ROLE_LEN)).label("role"))
    query = sa.select(table.c.request_id, table.c.created_at, table.c.model_name,
                      table.c.inputs, table.c.outputs, table.c.latency_ms, role_column)
    if model_name is not None:
        query = query.where(table.c.model_name == model_name)
    if role is not None:
        matches: Any = (table.c.role == role if has_role
                        else sa.true() if role == PRIMARY else sa.false())
        query = query.where(matches)
    if since is not None:
        query = query.where(table.c.created_at >= utc(since))
    if until is not None:
        query = query.where(table.c.created_at < utc(until))
    return query.order_by(table.c.created_at, table.c.id)


def driver_rows(conn: Connection, query: sa.Select[Any],
                chunk_size: int = CHUNK_SIZE) -> Iterator[Sequence[Any]]:
    """The rows of ``query``, streamed in chunks, as plain tuples.

    On SQLite they come straight from the driver's cursor, in the connection's transaction:
    SQLAlchemy's result rows and type processing cost as much as a label join's own work at a
    million rows. Times therefore come back as SQLite stores them (text, UTC), booleans as
    0/1; a datetime parameter is sent as that text. Other databases go through SQLAlchemy.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the store cannot be read (SQLite's own errors are
            wrapped the same way).
    """
    if conn.dialect.name != "sqlite":
        # On the statement: Connection.execution_options would stream every later statement
        # of the transaction too (an INSERT through a server-side cursor fails).
        result = conn.execute(query.execution_options(stream_results=True, yield_per=chunk_size))
        for part in result.partitions():
            yield from part
        return
    compiled = query.compile(dialect=conn.dialect)
    params = [_sqlite_param(compiled.params[name]) for name in compiled.positiontup or ()]
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        try:
            cursor.execute(str(compiled), params)
        except Exception as exc:  # sqlite3's errors, as SQLAlchemy would have raised them
            raise sa.exc.OperationalError(str(compiled), params, exc) from exc
        while True:
            part = cursor.fetchmany(chunk_size)
            if not part:
                return
            yield from part
    finally:
        cursor.close()


@contextlib.contextmanager
def bulk_objects() -> Iterator[None]:
    """Pause the cyclic garbage collector while a million small tuples are made: they hold
    no cycles, and the collector's full passes over them cost more than the work itself
    (0.7 s of a 1.4 s read at 200,000 rows)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _sqlite_param(value: Any) -> Any:
    """A parameter as SQLAlchemy stores it on SQLite (datetimes as UTC text)."""
    if isinstance(value, dt.datetime):
        moment = utc(value)
        assert moment is not None
        return moment.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _expand(rows: Iterable[Sequence[Any]]) -> tuple[dict[str, list[Any]],
                                                   dict[str, list[Any]], list[str]]:
    """Column lists from stored records, one entry per predicted row."""
    base: dict[str, list[Any]] = {name: [] for name in BASE_COLUMNS}
    features: dict[str, list[Any]] = {}
    order: list[str] = []
    total = 0
    for request_id, created_at, model, inputs_json, outputs_json, latency, role in rows:
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
        base["role"].extend([role] * count)
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
        "role": pd.Series(base.get("role", []), dtype="str"),
    }
    for name in order:
        values = features[name]
        # Nulls only (say, a float column that was all NaN): float NaN, pandas' missing value.
        columns[name] = (pd.Series(values, dtype="float64")
                         if all(value is None for value in values) else values)
    columns["prediction"] = pd.Series(base.get("prediction", []), dtype="object")
    columns["latency_ms"] = pd.Series(base.get("latency_ms", []), dtype="float64")
    return pd.DataFrame(columns)
