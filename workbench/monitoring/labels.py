"""Ground truth that arrives later, joined with the predictions logged before it.

``ingest_labels`` reads a CSV or Parquet file of labels keyed by an id column, finds every
logged predicted row carrying that id (a column of the logged inputs, such as
``customer_id``, or the logged request id with ``id_column="request_id"``), and stores one row
per (label, predicted row) in the prediction store's ``labels`` table, with a copy of the
model, prediction time, prediction and score that ``workbench monitor performance`` reads.
A label matches the predictions of every model that scored that id: the champion and a
shadow challenger are judged on the same rows.

Nothing is dropped without a count:

- *unmatched*: no logged prediction carries the id (yet). The label is stored all the same
  (prediction columns null) and is matched on a later run, when its prediction is logged.
- *duplicates*: an id given twice in the file (the first label is kept; *conflicting* counts
  those whose label differs), or one already stored by an earlier run (kept as it was).
- *late*: a label whose prediction falls into a window that a performance check has already
  evaluated; the next check of that window counts it.
- *missing*: a row without an id or without a label; it cannot be stored.

The join streams the logged records in chunks and keeps only the predicted rows whose id is
among the labels, so memory follows the labels, not the store.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from workbench.errors import MonitoringError, NoCurrentData, WorkbenchError
from workbench.store.schema import ID_VALUE_LEN

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection, Engine

REQUEST_ID = "request_id"
DEFAULT_LABEL_COLUMN = "label"
_CHUNK = 5_000
_INSERT_CHUNK = 50_000

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LabelIngest:
    """What one ``ingest_labels`` call did; every label in the file is in exactly one count
    of ``new_labels`` (matched + unmatched), ``duplicates`` or ``missing``.

    Attributes:
        source: the file (or ``data frame``).
        id_column: the key labels were joined on (``request_id``: the logged request id).
        rows: rows in the file.
        new_labels: distinct ids stored by this run.
        matched: of those, the ids that matched at least one logged predicted row.
        matched_rows: predicted rows those labels were joined to (an id scored by two models,
            or twice, joins more than one).
        unmatched: ids stored without a prediction (matched on a later run).
        rematched: labels stored unmatched by an earlier run that matched now.
        duplicates: ids given again (in the file, or stored already); the first label stays.
        conflicting: of the duplicates, those whose label differed from the one kept.
        missing: rows without an id or a label (not stored).
        late: predicted rows joined now that fall into a window already evaluated.
        by_model: model name -> predicted rows joined now.
        late_by_model: model name -> late predicted rows joined now.
    """

    source: str
    id_column: str
    rows: int
    new_labels: int
    matched: int
    matched_rows: int
    unmatched: int
    rematched: int
    duplicates: int
    conflicting: int
    missing: int
    late: int
    by_model: dict[str, int] = field(default_factory=dict)
    late_by_model: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary_line(self) -> str:
        return (f"{self.rows} label rows: {self.matched} matched {self.matched_rows} predicted "
                f"rows, {self.unmatched} unmatched (kept for later), {self.duplicates} "
                f"duplicate(s) ({self.conflicting} conflicting), {self.missing} missing an id "
                f"or a label, {self.late} late; {self.rematched} earlier label(s) matched now")


def ingest_labels(source: Path | str | pd.DataFrame, store_url: str, *, id_column: str,
                  label_column: str = DEFAULT_LABEL_COLUMN,
                  received_at: dt.datetime | None = None,
                  progress: Progress | None = None) -> LabelIngest:
    """Join a file of labels with the logged predictions and store them.

    Args:
        source: a CSV/Parquet file, or a DataFrame.
        store_url: the prediction store's SQLAlchemy URL.
        id_column: the file's id column, also a column of the logged inputs; ``request_id``
            joins on the logged request id instead.
        label_column: the file's ground-truth column.
        received_at: when the labels arrived (default: now); a simulated clock sets it.
        progress: called with a line per step.

    Returns:
        The counts (see :class:`LabelIngest`).

    Raises:
        MonitoringError: the file cannot be read, lacks the id or the label column, or the
            store cannot be read or written.
        NoCurrentData: the file has no rows, or the store holds no logged predictions.
    """
    import sqlalchemy as sa

    from workbench.store.engine import one_line
    from workbench.store.reader import bulk_objects

    say = progress or (lambda _line: None)
    frame, where = _read(source)
    _require_columns(frame, where, id_column, label_column)
    received = _utc(received_at or dt.datetime.now(dt.timezone.utc))
    try:
        engine, shown = open_store(store_url, writer=True)
        try:
            with engine.begin() as conn, bulk_objects():
                result = _ingest(conn, frame, where, id_column, label_column, received, shown,
                                 say)
        finally:
            engine.dispose()
    except WorkbenchError as exc:
        if isinstance(exc, MonitoringError):
            raise
        raise MonitoringError(str(exc)) from exc
    except sa.exc.SQLAlchemyError as exc:
        raise MonitoringError(f"cannot read or write the prediction store: "
                              f"{one_line(exc)}") from exc
    say(result.summary_line())
    return result


def open_store(url: str, *, writer: bool) -> tuple[Engine, str]:
    """An engine on the prediction store, and its URL without the password for messages.

    Raises:
        NoCurrentData: the store is an SQLite file that does not exist (reading must not
            create it: a mistyped path would read as an empty store).
        ConfigError: the URL cannot be used.
    """
    from workbench.store.engine import create_engine, redact, sqlite_file_missing

    shown = redact(url)
    if sqlite_file_missing(url):
        raise NoCurrentData(f"no predictions logged in {shown} (the file does not exist); "
                            "check WORKBENCH_PREDICTION_STORE")
    return create_engine(url, writer=writer), shown


def _ingest(conn: Connection, frame: pd.DataFrame, where: str, id_column: str,
            label_column: str, received: dt.datetime, shown: str, say: Progress) -> LabelIngest:
    import sqlalchemy as sa

    from workbench.store import schema

    if not sa.inspect(conn).has_table(schema.TABLE_NAME):
        raise NoCurrentData(f"no predictions logged in {shown}; serve the model or score with "
                            "`workbench predict --log` first")
    schema.ensure(conn)  # version 4 holds the labels table; an older store is migrated
    ids, labels, missing = _keys_and_labels(frame, id_column, label_column)
    first, duplicates, conflicting = _first_of_each(ids, labels)
    stored = _stored_labels(conn, id_column)
    again = [key for key in first if key in stored]
    conflicting += sum(1 for key in again if stored[key] != first[key])
    duplicates += len(again)
    new = {key: label for key, label in first.items() if key not in stored}
    say(f"{len(frame)} rows in {where}: {len(new)} new labels, {duplicates} duplicate(s), "
        f"{missing} missing an id or a label")

    # Labels stored unmatched by an earlier run are looked for again with the new ones.
    waiting = _unmatched_labels(conn, id_column)
    wanted = set(new) | set(waiting)
    say(f"joining on {'the logged request id' if id_column == REQUEST_ID else id_column} "
        f"in {shown}")
    matches = _find_predictions(conn, id_column, wanted)
    windows = _evaluated_windows(conn, {m[2] for rows in matches.values() for m in rows})

    source_name = where[:schema.SOURCE_LEN]
    inserts = _Rows(conn, id_column)
    by_model: dict[str, int] = {}
    late_by_model: dict[str, int] = {}
    matched = matched_rows = late = 0
    # In the order the predictions were logged (the order ``matches`` was filled in), so the
    # labels' time index grows at its end instead of at random places.
    for key, rows in matches.items():
        label = new.get(key)
        if label is None:
            continue  # a waiting label: below
        matched += 1
        for match in rows:
            is_late = _is_late(windows, match[2], match[3], received)
            inserts.add(key, label, received, source_name, match, is_late)
            matched_rows += 1
            late += is_late
            by_model[match[2]] = by_model.get(match[2], 0) + 1
            if is_late:
                late_by_model[match[2]] = late_by_model.get(match[2], 0) + 1
    for key, label in new.items():
        if key not in matches:
            inserts.add(key, label, received, source_name)
    rematched = 0
    for key, (label, label_ids, first_received, first_source) in waiting.items():
        if key not in matches:
            continue
        rows = matches[key]
        rematched += 1
        conn.execute(schema.labels_table.delete().where(schema.labels_table.c.id.in_(label_ids)))
        for match in rows:
            is_late = _is_late(windows, match[2], match[3], first_received)
            inserts.add(key, label, first_received, first_source, match, is_late)
            late += is_late
            by_model[match[2]] = by_model.get(match[2], 0) + 1
            if is_late:
                late_by_model[match[2]] = late_by_model.get(match[2], 0) + 1
    inserts.insert(conn)
    return LabelIngest(
        source=where, id_column=id_column, rows=len(frame), new_labels=len(new),
        matched=matched, matched_rows=matched_rows, unmatched=len(new) - matched,
        rematched=rematched, duplicates=duplicates, conflicting=conflicting, missing=missing,
        late=late, by_model=dict(sorted(by_model.items())),
        late_by_model=dict(sorted(late_by_model.items())))


# -- the file ----------------------------------------------------------------------------------
def _read(source: Path | str | pd.DataFrame) -> tuple[pd.DataFrame, str]:
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        if source.empty:
            raise NoCurrentData("the labels frame has no rows")
        return source, "data frame"
    from workbench.predict import read_table

    path = Path(source)
    try:
        frame = read_table(path)
    except WorkbenchError as exc:
        if "has no rows" in str(exc):
            raise NoCurrentData(f"{path} has no label rows") from exc
        raise MonitoringError(str(exc)) from exc
    except Exception as exc:  # e.g. a Parquet file pyarrow refuses in a way of its own
        raise MonitoringError(f"cannot read {path}: {type(exc).__name__}; fix the file") from exc
    return frame, str(path)


def _require_columns(frame: pd.DataFrame, where: str, id_column: str, label_column: str) -> None:
    """Raises MonitoringError naming the missing column and the file's columns."""
    present = ", ".join(map(str, list(frame.columns)[:12]))
    if id_column not in frame.columns:
        raise MonitoringError(f"{where} has no id column {id_column!r} (it has {present}); "
                              "name it with --id-column")
    if label_column not in frame.columns:
        raise MonitoringError(f"{where} has no label column {label_column!r} (it has "
                              f"{present}); name it with --label-column")
    if id_column == label_column:
        raise MonitoringError(f"the id column and the label column are both {id_column!r}; "
                              "name the label with --label-column")


def key_text(value: Any) -> str | None:
    """An id as the text both sides are compared by; None for a missing one.

    Integers read back from JSON and from CSV print alike; a float that is a whole number
    (an integer column with gaps, read as float) prints as the integer.
    """
    if value is None:
        return None
    if isinstance(value, float):
        if value != value:
            return None
        if value.is_integer():
            return str(int(value))
    if hasattr(value, "item"):  # numpy scalars
        return key_text(value.item())
    return str(value)


def _label_json(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a label column with gaps reads as float: 1.0 is the label 1
    return orjson.dumps(value).decode()


def _keys_and_labels(frame: pd.DataFrame, id_column: str,
                     label_column: str) -> tuple[pd.Series, pd.Series, int]:
    """(ids as text, labels as JSON) of the usable rows, and how many rows lack one or the
    other. Vectorised: a million labels is a common file."""
    usable = frame[id_column].notna() & frame[label_column].notna()
    keys = _as_text(frame.loc[usable, id_column])
    labels = _as_json(frame.loc[usable, label_column])
    named = keys != ""
    return keys[named], labels[named], int(len(frame) - int(named.sum()))


def _as_text(values: pd.Series) -> pd.Series:
    import pandas as pd

    if pd.api.types.is_integer_dtype(values) or (pd.api.types.is_string_dtype(values) and all(
            isinstance(v, str) for v in values.head(1000))):
        return values.astype(str)
    return values.map(key_text).astype(str)


def _as_json(values: pd.Series) -> pd.Series:
    import pandas as pd

    if pd.api.types.is_bool_dtype(values):
        return values.map({True: "true", False: "false"})
    if pd.api.types.is_integer_dtype(values):
        return values.astype("int64").astype(str)
    if pd.api.types.is_float_dtype(values) and bool((values % 1 == 0).all()):
        return values.astype("int64").astype(str)  # a label column with gaps reads as float
    return values.map(_label_json)


def _first_of_each(ids: pd.Series, labels: pd.Series) -> tuple[dict[str, str], int, int]:
    """The first label of each id (dicts keep order), the repeats and how many conflict."""
    repeated = ids.duplicated(keep="first")
    first = dict(zip(ids[~repeated].tolist(), labels[~repeated].tolist()))
    again = ids[repeated]
    conflicting = int((labels[repeated] != again.map(first)).sum()) if len(again) else 0
    return first, int(repeated.sum()), conflicting


# -- the store ---------------------------------------------------------------------------------
def _stored_labels(conn: Connection, id_column: str) -> dict[str, str]:
    """id -> label of every label stored for ``id_column``."""
    import sqlalchemy as sa

    from workbench.store.schema import labels_table as t

    rows = conn.execute(sa.select(t.c.id_value, t.c.label).where(t.c.id_column == id_column)
                        .distinct())
    return dict(rows.all())


def _unmatched_labels(conn: Connection,
                      id_column: str) -> dict[str, tuple[str, list[int], dt.datetime, str]]:
    """id -> (label, row ids, received_at, source) of labels stored without a prediction."""
    import sqlalchemy as sa

    from workbench.store.schema import labels_table as t

    waiting: dict[str, tuple[str, list[int], dt.datetime, str]] = {}
    query = sa.select(t.c.id_value, t.c.label, t.c.id, t.c.received_at, t.c.source).where(
        t.c.id_column == id_column, t.c.prediction_id.is_(None))
    for key, label, row_id, received, source in conn.execute(query):
        entry = waiting.setdefault(key, (label, [], _utc(received), source))
        entry[1].append(row_id)
    return waiting


# (prediction id, row index, model name, predicted at as the driver gave it (text on SQLite),
# prediction JSON, score)
Match = tuple[int, int, str, "dt.datetime | str", str, float | None]


def _find_predictions(conn: Connection, id_column: str,
                      wanted: set[str]) -> dict[str, list[Match]]:
    """id -> the logged predicted rows that carry it, in the order they were logged."""
    import sqlalchemy as sa

    from workbench.store.reader import driver_rows
    from workbench.store.schema import predictions_table as t

    if not wanted:
        return {}
    by_request = id_column == REQUEST_ID
    # The time as the driver gives it (text on SQLite): converted only for the rows that
    # match, not for every logged record.
    columns = [t.c.id, t.c.request_id, sa.type_coerce(t.c.created_at, sa.String),
               t.c.model_name, t.c.outputs, t.c.scores]
    if not by_request:
        columns.append(t.c.inputs)
    # In id order: the table's own order (what was logged first), no sort of the store.
    query = sa.select(*columns).order_by(t.c.id)
    matches: dict[str, list[Match]] = {}
    if by_request:
        for record in driver_rows(conn, query, _CHUNK):
            for key, match in _by_request(record, wanted):
                matches.setdefault(key, []).append(match)
        return matches
    # The hot loop of a join by an input column: one logged record at a time, a million of
    # them in a busy hour, so the one-row case is written out here with locals.
    loads = orjson.loads
    positions: dict[str, int] = {}
    for record in driver_rows(conn, query, _CHUNK):
        inputs_json = record[6]
        # The column list opens the stored text ({"columns":[...],"data":...; a quote inside
        # a name is escaped, so '],"data":' ends the list): the id's position is looked up
        # once per distinct list, not once per record.
        end = inputs_json.find('],"data":')
        if end < 0:
            for key, match in _by_input(record, id_column, wanted):
                matches.setdefault(key, []).append(match)
            continue
        head = inputs_json[:end]
        position = positions.get(head)
        if position is None:
            names = loads(inputs_json).get("columns") or []
            position = positions[head] = names.index(id_column) if id_column in names else -1
        if position < 0:
            continue
        data = loads(inputs_json).get("data") or []
        if len(data) == 1 and position < len(data[0]):
            value = data[0][position]
            one = value if type(value) is str else key_text(value)
            if one is None or one not in wanted:
                continue
            single = _single(record[4], record[5])
            if single is not None:
                match = (record[0], 0, record[3], record[2], single[0], single[1])
                found = matches.get(one)
                if found is None:
                    matches[one] = [match]
                else:
                    found.append(match)
                continue
        for key, match in _by_input(record, id_column, wanted):
            matches.setdefault(key, []).append(match)
    return matches


def _by_request(record: Any, wanted: set[str]) -> list[tuple[str, Match]]:
    pid, request_id, created, model, outputs_json, scores_json = record
    if request_id not in wanted:
        return []
    outputs = orjson.loads(outputs_json)
    scores = orjson.loads(scores_json) if scores_json else None
    return [(request_id, (pid, index, model, created, orjson.dumps(value).decode(),
                          _score(scores, index)))
            for index, value in enumerate(outputs)]


def _by_input(record: Any, id_column: str, wanted: set[str]) -> list[tuple[str, Match]]:
    pid, _request, created, model, outputs_json, scores_json, inputs_json = record
    inputs = orjson.loads(inputs_json)
    names = inputs.get("columns") or []
    try:
        position = names.index(id_column)
    except ValueError:
        return []
    data = inputs.get("data") or []
    if len(data) == 1 and position < len(data[0]):
        # One row (the server's usual record): its one prediction and score are the JSON
        # arrays' only element, so the arrays need no parsing.
        value = data[0][position]
        key = value if type(value) is str else key_text(value)
        if key is None or key not in wanted:
            return []
        single = _single(outputs_json, scores_json)
        if single is not None:
            return [(key, (pid, 0, model, created, *single))]
    found = []
    outputs = scores = None
    for index, row in enumerate(inputs.get("data") or []):
        value = row[position] if position < len(row) else None
        key = value if type(value) is str else key_text(value)
        if key is None or key not in wanted:
            continue
        if outputs is None:  # parsed only for records that match
            outputs = orjson.loads(outputs_json)
            scores = orjson.loads(scores_json) if scores_json else None
        if index >= len(outputs):
            continue
        found.append((key, (pid, index, model, created,
                            orjson.dumps(outputs[index]).decode(), _score(scores, index))))
    return found


def _single(outputs_json: str, scores_json: str | None) -> tuple[str, float | None] | None:
    """(prediction JSON, score) of a one-row record read off the arrays' text; None when the
    text is not a plain one-element array (the caller parses it then)."""
    if not (outputs_json.startswith("[") and outputs_json.endswith("]")):
        return None
    prediction = outputs_json[1:-1]
    if not prediction or ("," in prediction and not prediction.startswith('"')):
        return None  # several outputs, or a list: not one plain value
    if not scores_json or scores_json == "null":
        return prediction, None
    try:
        return prediction, float(scores_json[1:-1])
    except ValueError:
        return None  # per-class probabilities


def _score(scores: Any, index: int) -> float | None:
    if not isinstance(scores, list) or index >= len(scores):
        return None
    value = scores[index]
    if isinstance(value, list):  # per-class probabilities: the last (positive) class
        value = value[-1] if value else None
    return float(value) if isinstance(value, (int, float)) else None


def _evaluated_windows(conn: Connection,
                       models: set[str]) -> dict[str, list[tuple[dt.datetime, dt.datetime,
                                                                 dt.datetime]]]:
    """model -> (start, end, evaluated at) of every window a performance check evaluated."""
    import sqlalchemy as sa

    from workbench.store.schema import windows_table as t

    if not models:
        return {}
    windows: dict[str, list[tuple[dt.datetime, dt.datetime, dt.datetime]]] = {}
    query = sa.select(t.c.model_name, t.c.window_start, t.c.window_end, t.c.evaluated_at).where(
        t.c.model_name.in_(sorted(models)))
    for model, start, end, evaluated in conn.execute(query):
        windows.setdefault(model, []).append((_utc(start), _utc(end), _utc(evaluated)))
    return windows


def _is_late(windows: dict[str, list[tuple[dt.datetime, dt.datetime, dt.datetime]]],
             model: str, predicted_at: dt.datetime | str, received: dt.datetime) -> bool:
    """Whether a window holding this prediction was evaluated before the label arrived."""
    evaluated = windows.get(model)
    if not evaluated:
        return False  # the common case: no time to parse
    at = _utc(predicted_at)
    return any(start <= at < end and when < received for start, end, when in evaluated)


_LABEL_COLUMNS = ("id_column", "id_value", "label", "received_at", "source", "prediction_id",
                  "row_index", "model_name", "predicted_at", "prediction", "score", "late")


class _Rows:
    """The rows to insert into ``labels``, in the form the connection's dialect takes fastest.

    On SQLite they go in as plain tuples through the driver's ``executemany``, the times as the
    text SQLAlchemy stores (the predicted time is the text read from ``predictions``,
    unchanged): SQLAlchemy's per-value processing would cost more than the whole join at a
    million labels. Other databases get SQLAlchemy's insert with real datetimes.
    """

    def __init__(self, conn: Connection, id_column: str) -> None:
        self.id_column = id_column
        self.sqlite = conn.dialect.name == "sqlite"
        self.rows: list[tuple[Any, ...]] = []
        self._last: tuple[Any, Any] = (None, None)

    def _time(self, value: dt.datetime | str) -> dt.datetime | str:
        if value is self._last[0]:
            return self._last[1]  # the received time: the same for every row of a run
        if self.sqlite:
            return value if isinstance(value, str) else _utc(value).replace(
                tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        return _utc(value)

    def add(self, key: str, label: str, received: dt.datetime, source: str,
            match: Match | None = None, late: bool = False) -> None:
        flag = int(late) if self.sqlite else late
        when = self._time(received)
        self._last = (received, when)
        if match is None:
            self.rows.append((self.id_column, key[:ID_VALUE_LEN], label, when, source, None,
                              None, None, None, None, None, flag))
            return
        pid, index, model, at, prediction, score = match
        self.rows.append((self.id_column, key[:ID_VALUE_LEN], label, when, source, pid, index,
                          model, at if self.sqlite and type(at) is str else self._time(at),
                          prediction, score, flag))

    def insert(self, conn: Connection) -> None:
        import sqlalchemy as sa

        from workbench.store.schema import LABELS_TABLE_NAME, labels_table

        if self.sqlite and len(self.rows) > _INSERT_CHUNK:
            # A larger page cache for this connection: the time index of a million new rows
            # is built in memory instead of paging the default 2 MB in and out.
            conn.exec_driver_sql("PRAGMA cache_size = -131072")
        for start in range(0, len(self.rows), _INSERT_CHUNK):
            chunk = self.rows[start:start + _INSERT_CHUNK]
            if self.sqlite:
                # Names from the schema module, not from input.
                conn.exec_driver_sql(
                    f"INSERT INTO {LABELS_TABLE_NAME} ({', '.join(_LABEL_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(_LABEL_COLUMNS))})", chunk)
            else:
                conn.execute(sa.insert(labels_table),
                             [dict(zip(_LABEL_COLUMNS, row)) for row in chunk])


def _utc(value: dt.datetime | str) -> dt.datetime:
    """An aware UTC time from a stored value (a datetime, or SQLite's text)."""
    from workbench.store.engine import utc

    moment = utc(dt.datetime.fromisoformat(value) if isinstance(value, str) else value)
    assert moment is not None  # the columns read here are NOT NULL
    return moment


__all__ = ["DEFAULT_LABEL_COLUMN", "REQUEST_ID", "LabelIngest", "ingest_labels", "key_text",
           "open_store"]
