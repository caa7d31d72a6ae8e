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

The join runs inside the database, one path per dialect (SQLite's JSON functions, Postgres'
``jsonb``): the labels are staged in a temporary table keyed by id, and ``INSERT ... SELECT``
statements read each logged record's id (from the column the writer logged it in, schema
version 5, or else out of its stored inputs), look it up there and store the joined rows, each
naming its load (a row of ``label_loads``); the counts are read off the rows they added. No
logged record is read into Python, and memory follows the labels, not the store. The role needs
the right to create temporary tables.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from workbench.errors import MonitoringError, NoCurrentData, WorkbenchError
from workbench.progress import Progress
from workbench.store.keys import key_text
from workbench.store.schema import ID_VALUE_LEN

if TYPE_CHECKING:
    from concurrent.futures import Future

    import pandas as pd
    from sqlalchemy.engine import Connection, Engine

REQUEST_ID = "request_id"
DEFAULT_LABEL_COLUMN = "label"
_INSERT_CHUNK = 50_000



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
    schema.ensure(conn)  # version 4 holds the labels table, 5 the logged ids; older: migrated
    join = _dialect_join(conn)
    # What the join needs to know of the store (SQLite: its column lists, one pass over every
    # record) is read on a connection of its own meanwhile: the labels' checks and staging
    # below take longer than that pass.
    join.look_ahead(conn, id_column)
    try:
        return _join_labels(conn, join, frame, where, id_column, label_column, received, shown,
                            say)
    finally:
        join.finish()


def _join_labels(conn: Connection, join: _Join, frame: pd.DataFrame, where: str, id_column: str,
                 label_column: str, received: dt.datetime, shown: str,
                 say: Progress) -> LabelIngest:
    from workbench.store import schema

    ids, labels, missing = _keys_and_labels(frame, id_column, label_column)
    new, duplicates, conflicting = _new_labels(ids, labels, _stored_labels(conn, id_column))
    say(f"{len(frame)} rows in {where}: {len(new)} new labels, {duplicates} duplicate(s), "
        f"{missing} missing an id or a label")

    # Labels stored unmatched by an earlier run are looked for again with the new ones.
    waiting = _unmatched_labels(conn, id_column)
    say(f"joining on {'the logged request id' if id_column == REQUEST_ID else id_column} "
        f"in {shown}")
    counts = join.run(conn, id_column, new, received, where[:schema.SOURCE_LEN], waiting)
    return LabelIngest(
        source=where, id_column=id_column, rows=len(frame), new_labels=len(new),
        matched=counts.matched, matched_rows=counts.matched_rows,
        unmatched=len(new) - counts.matched, rematched=counts.rematched,
        duplicates=duplicates, conflicting=conflicting, missing=missing, late=counts.late,
        by_model=counts.by_model, late_by_model=counts.late_by_model)


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
    if bool((keys.str.len() > ID_VALUE_LEN).any()):
        keys = keys.str.slice(0, ID_VALUE_LEN)  # as stored: a longer id is known by its start
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


def _new_labels(ids: pd.Series, labels: pd.Series,
                stored: dict[str, str]) -> tuple[NewLabels, int, int]:
    """The first label of each id not stored yet (id -> label JSON), the duplicates (repeats
    in the file, ids stored already) and how many of them conflict.

    Each id is hashed once, by the dict itself: a million labels is a common file, and
    finding the repeats first cost as much again. Built from the last row back, so the
    first row's label is the one kept."""
    id_list, label_list = ids.tolist(), labels.tolist()
    first = dict(zip(reversed(id_list), reversed(label_list)))
    duplicates = len(id_list) - len(first)
    conflicting = sum(first[key] != label for key, label in zip(id_list, label_list)
                      ) if duplicates else 0
    if stored:
        known = [key for key in first if key in stored]
        conflicting += sum(first[key] != stored[key] for key in known)
        duplicates += len(known)
        for key in known:
            del first[key]
    return first, duplicates, conflicting


# -- the store ---------------------------------------------------------------------------------
def _stored_labels(conn: Connection, id_column: str) -> dict[str, str]:
    """id -> label of every label stored for ``id_column``."""
    import sqlalchemy as sa

    from workbench.store.schema import labels_table as t
    from workbench.store.schema import loads_table as d

    rows = conn.execute(sa.select(t.c.id_value, t.c.label).where(t.c.load_id.in_(
        sa.select(d.c.id).where(d.c.id_column == id_column))).distinct())
    return dict(rows.all())


def _unmatched_labels(conn: Connection, id_column: str) -> Waiting:
    """id -> (label, its load, received_at) of labels stored without a prediction."""
    import sqlalchemy as sa

    from workbench.store.schema import labels_table as t
    from workbench.store.schema import loads_table as d

    query = sa.select(t.c.id_value, t.c.label, t.c.load_id, d.c.received_at).join(
        d, d.c.id == t.c.load_id).where(d.c.id_column == id_column, t.c.prediction_id.is_(None))
    return {key: (label, load, _utc(received))
            for key, label, load, received in conn.execute(query)}


# -- the join, inside the database -------------------------------------------------------------
# The labels to look for, staged in a temporary table keyed by id so the join is one lookup per
# logged row, and the joined rows inserted into ``labels`` by one INSERT ... SELECT; the counts
# are read off the rows it added. Nothing of a logged record crosses into Python: at a
# million records a Python loop over them cost three times the 5 s the whole check may take.
_KEYS = "wb_label_keys"
_HEADS = "wb_label_heads"
_SCORES = "wb_label_scores"
# The end of the column list in the writer's stored inputs ({"columns":[...],"data":[...]}; a
# quote inside a name is escaped, so the first '],"data":' ends the list).
_COLUMNS_END = '],"data":'
_LABEL_COLUMNS = ("load_id, id_value, label, prediction_id, row_index, model_name, predicted_at, "
                  "prediction, score, late")

# id -> label JSON of the labels a load stores (first seen in its file, not stored before)
NewLabels = dict[str, str]
# (label JSON, its load's id, received at) of a label stored unmatched by an earlier run
Waiting = dict[str, tuple[str, int, dt.datetime]]
# a column list (the stored inputs' start) -> the id's position in it (None: not there) and
# whether records of more than one row have it
ColumnLists = dict[str, tuple["int | None", bool]]


@dataclass(frozen=True)
class _StoreShape:
    """What the join needs to know of an SQLite store: whether records of one row, and of
    more, have the id logged beside them (``id_column``, schema version 5), and the column
    lists of those that do not, whose id is read from their inputs."""

    logged_one_row: bool
    logged_many_rows: bool
    lists: ColumnLists


@dataclass(frozen=True)
class _Counts:
    matched: int
    matched_rows: int
    rematched: int
    late: int
    by_model: dict[str, int]
    late_by_model: dict[str, int]


# Where a joined row's prediction and score are read (see ``_Join.predicted``).
ScoreSource = Literal["json", "column", "rows", "staged"]


@dataclass(frozen=True)
class _Part:
    """One INSERT ... SELECT of the join: its FROM clause (``p``: predictions, ``k``: the
    keys) and WHERE clause, the SQL of the predicted row's index, whether every row it joins
    has a prediction (a one-row record's one output, a logged row's own; else the rows past a
    record's outputs are deleted after), and where the prediction and score are read (see
    :meth:`_Join.predicted`)."""

    joined: str
    where: str
    index: str
    all_predicted: bool = False
    score: ScoreSource = "json"


class _Join:
    """The join as SQL. What differs between databases (JSON functions, types, bulk loading) is
    in :class:`_SqliteJoin` and :class:`_PostgresJoin`; the statements around it are here.

    Every statement's table and column names come from this module, never from input; the id
    column's name and all values are bound parameters.
    """

    flag_type = "BOOLEAN"
    time_type = "TIMESTAMP WITH TIME ZONE"
    keys_suffix = ""

    def run(self, conn: Connection, id_column: str, new: NewLabels, received: dt.datetime,
            source: str, waiting: Waiting) -> _Counts:
        """Join the ``new`` labels (label JSON by id, received now from ``source``) and the
        ``waiting`` ones with the logged predictions, and store every label.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the store cannot be read or written.
        """
        import sqlalchemy as sa

        from workbench.store.schema import LABELS_TABLE_NAME, WINDOWS_TABLE_NAME, loads_table

        if not new and not waiting:
            return _Counts(0, 0, 0, 0, {}, {})
        self._drop(conn)
        # This load's id column, time and file are one row of ``label_loads`` that its new
        # labels name (a waiting label keeps the load it came in: with no new label, no row).
        # A new key's load and time are this run's, bound once, not staged per key.
        load = conn.execute(sa.insert(loads_table).values(
            id_column=id_column, received_at=received, source=source).returning(
                loads_table.c.id)).scalar_one() if new else None
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {_KEYS} (id_value TEXT PRIMARY KEY, label TEXT NOT NULL, "
            f"waiting {self.flag_type} NOT NULL, load_id BIGINT, received_at {self.time_type})"
            f"{self.keys_suffix}")
        self.load(conn, new, waiting)
        params = {"id_column": id_column, "received": self.time(received), "load": load}
        # A label is late when a check evaluated its prediction's window before it arrived;
        # with no window evaluated yet (the first load) there is nothing to look up per row.
        evaluated = conn.execute(sa.text(f"SELECT 1 FROM {WINDOWS_TABLE_NAME} LIMIT 1")).first()
        late = (f"EXISTS (SELECT 1 FROM {WINDOWS_TABLE_NAME} pw WHERE pw.model_name = "
                "p.model_name AND pw.window_start <= p.created_at AND p.created_at < "
                "pw.window_end AND pw.evaluated_at < coalesce(k.received_at, :received))"
                ) if evaluated else "1 = 0"
        parts = ([self.by_request()] if id_column == REQUEST_ID
                 else self.by_input(conn, id_column))
        # Straight into ``labels``, in the order the predictions were logged (the labels' time
        # index grows at its end); the rows this run added are those past ``before``, so no
        # other load may add rows meanwhile.
        self.lock(conn)
        before = conn.execute(sa.text(
            f"SELECT COALESCE(MAX(id), 0) FROM {LABELS_TABLE_NAME}")).scalar_one()
        params["before"] = before
        for part in parts:
            params["part"] = conn.execute(sa.text(
                f"SELECT COALESCE(MAX(id), 0) FROM {LABELS_TABLE_NAME}")).scalar_one()
            predicted, scores = self.predicted(part.index, part.score)
            conn.execute(sa.text(
                f"INSERT INTO {LABELS_TABLE_NAME} ({_LABEL_COLUMNS}) SELECT coalesce(k.load_id, "
                f":load), k.id_value, k.label, p.id, {part.index}, p.model_name, p.created_at, "
                f"{predicted}, {late} FROM {part.joined}{scores} WHERE {part.where}"), params)
            if not part.all_predicted:
                # A row index past the record's outputs has no prediction to judge (a one-row
                # record always has its one output).
                conn.execute(sa.text(
                    f"DELETE FROM {LABELS_TABLE_NAME} WHERE id > :part AND prediction_id IS NOT "
                    "NULL AND prediction IS NULL"), params)
        by_model: dict[str, int] = {}
        late_by_model: dict[str, int] = {}
        joined_rows = late_rows = 0
        # Without an evaluated window nothing is late, and the count per model reads the
        # (model, time) index alone instead of every added row.
        late_sum = "SUM(CASE WHEN late THEN 1 ELSE 0 END)" if evaluated else "0"
        for model, rows, late_count in conn.execute(sa.text(
                f"SELECT model_name, COUNT(*), {late_sum} FROM "
                f"{LABELS_TABLE_NAME} WHERE id > :before GROUP BY model_name"), params):
            by_model[model] = rows
            if late_count:
                late_by_model[model] = int(late_count)
            joined_rows += rows
            late_rows += int(late_count or 0)
        # Labels (new or waiting) that matched, and the rows the waiting ones joined: a label
        # that waited is told apart by its key's flag (without any, no lookup is needed).
        if waiting:
            counts = conn.execute(sa.text(
                f"SELECT k.waiting, COUNT(*), COUNT(DISTINCT l.id_value) FROM "
                f"{LABELS_TABLE_NAME} l CROSS JOIN {_KEYS} k WHERE l.id > :before AND "
                "k.id_value = l.id_value GROUP BY k.waiting"), params).all()
        else:
            counts = conn.execute(sa.text(
                f"SELECT 1 = 0, COUNT(*), COUNT(DISTINCT id_value) FROM {LABELS_TABLE_NAME} "
                "WHERE id > :before"), params).all()
        matched = sum(n for is_waiting, _rows, n in counts if not is_waiting)
        rematched = sum(n for is_waiting, _rows, n in counts if is_waiting)
        matched_rows = joined_rows - sum(rows for is_waiting, rows, _n in counts if is_waiting)
        if rematched:
            # Stored unmatched by an earlier run, matched now: the joined rows replace them.
            conn.execute(sa.text(
                f"DELETE FROM {LABELS_TABLE_NAME} WHERE id <= :before AND prediction_id IS NULL "
                f"AND load_id IN (SELECT id FROM {loads_table.name} WHERE id_column = "
                f":id_column) AND id_value IN (SELECT id_value FROM {_KEYS} WHERE waiting) AND "
                f"id_value IN (SELECT id_value FROM {LABELS_TABLE_NAME} WHERE id > :before)"),
                params)
        if matched < len(new):
            # New labels that matched nothing are stored all the same, for a later run.
            conn.execute(sa.text(
                f"INSERT INTO {LABELS_TABLE_NAME} ({_LABEL_COLUMNS}) SELECT :load, id_value, "
                f"label, NULL, NULL, NULL, NULL, NULL, NULL, 1 = 0 FROM {_KEYS} WHERE NOT "
                f"waiting AND id_value NOT IN (SELECT id_value FROM {LABELS_TABLE_NAME} WHERE "
                "id > :before)"), params)
        self._drop(conn)
        return _Counts(matched, matched_rows, rematched, late_rows, dict(sorted(by_model.items())),
                       dict(sorted(late_by_model.items())))

    def look_ahead(self, conn: Connection, id_column: str) -> None:
        """Start reading what :meth:`by_input` will need, if it can be read meanwhile."""

    def finish(self) -> None:
        """Wait for what :meth:`look_ahead` started (the join's or a failure's end)."""

    @staticmethod
    def _drop(conn: Connection) -> None:
        for table in (_KEYS, _HEADS, _SCORES):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")

    def time(self, moment: dt.datetime) -> Any:
        """A time as the dialect's statements take it."""
        return moment

    def lock(self, conn: Connection) -> None:
        """Keep other label loads out of ``labels`` until this transaction ends."""

    def load(self, conn: Connection, new: NewLabels, waiting: Waiting) -> None:
        raise NotImplementedError

    def predicted(self, index: str, score: ScoreSource) -> tuple[str, str]:
        """The ``prediction`` (JSON) and ``score`` columns of row ``index`` of a record ``p``
        (per-class probabilities give the last, positive, class's), and what they need added
        to the FROM clause. ``score`` says where the prediction and score are: ``json`` (the
        record's ``outputs`` and ``scores``), ``column`` (``p.score``, which the writer logs for
        a one-row record, schema version 5), ``rows`` (the row ``t`` of the record's
        ``label_rows``, schema version 5) or ``staged`` (SQLite: the score in a temporary table
        of the records' scores by row, see :meth:`_SqliteJoin.by_input`)."""
        raise NotImplementedError

    def by_request(self) -> _Part:
        """The join when labels are keyed by the logged request id."""
        raise NotImplementedError

    def by_input(self, conn: Connection, id_column: str) -> list[_Part]:
        """The join, in one or more parts, when labels are keyed by a column of the logged
        inputs."""
        raise NotImplementedError


class _SqliteJoin(_Join):
    """SQLite's JSON functions (3.38+: ``->``, ``->>``). Times are the text SQLAlchemy
    stores, compared as text. CROSS JOIN fixes SQLite's loop order: the store is read once, in
    id order, and each record's id looked up among the keys."""

    flag_type = "INTEGER"
    time_type = "TEXT"
    keys_suffix = " WITHOUT ROWID"  # the key is the table: half the work of loading a million

    def time(self, moment: dt.datetime) -> Any:
        return _utc(moment).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")

    def load(self, conn: Connection, new: NewLabels, waiting: Waiting) -> None:
        if len(new) + len(waiting) > _INSERT_CHUNK:
            # A larger page cache for this connection: the labels' time index and the keys of
            # a million rows are built in memory instead of paging the default 2 MB in and out.
            conn.exec_driver_sql("PRAGMA cache_size = -131072")
        if len(new):
            # One JSON object {id: label's JSON text} that SQLite unnests itself: binding a
            # million pairs one by one cost twice as much. Both sides are strings, so the key
            # and the label's text come back exactly as given.
            conn.exec_driver_sql(
                f"INSERT INTO {_KEYS} (id_value, label, waiting) SELECT key, value, 0 FROM "
                "json_each(?)", (orjson.dumps(new).decode(),))
        if waiting:
            conn.exec_driver_sql(f"INSERT INTO {_KEYS} VALUES (?, ?, 1, ?, ?)", [
                (key, label, load, self.time(at)) for key, (label, load, at) in waiting.items()])

    def predicted(self, index: str, score: ScoreSource) -> tuple[str, str]:
        at = f"('$[' || {index} || ']')"
        if score == "rows":
            return "t.value -> 1 AS prediction, t.value ->> 2 AS score", ""
        if score == "column":
            return f"p.outputs -> {at} AS prediction, p.score", ""
        if score == "staged":
            return (f"p.outputs -> {at} AS prediction, sc.score", f" LEFT JOIN {_SCORES} sc ON "
                    f"sc.prediction_id = p.id AND sc.row_index = {index}")
        # The row's score (s) parsed once, its type with it: asking json_type and then ->>
        # parsed every record's scores twice (a second and a half of the join at a million).
        # A number comes back as one row without a key; per-class probabilities as a row per
        # class, of which the last is kept. LEFT: a record without scores (a regressor's)
        # still joins, its score null.
        return (f"p.outputs -> {at} AS prediction, CASE s.type WHEN 'real' THEN s.value WHEN "
                "'integer' THEN CAST(s.value AS REAL) END AS score",
                f" LEFT JOIN json_each(p.scores, {at}) s ON s.key IS NULL OR s.key = "
                f"json_array_length(p.scores, {at}) - 1")

    def by_request(self) -> _Part:
        from workbench.store.schema import TABLE_NAME

        return _Part(f"{TABLE_NAME} p CROSS JOIN {_KEYS} k CROSS JOIN json_each(p.outputs) o",
                     "k.id_value = p.request_id", "o.key")

    def by_input(self, conn: Connection, id_column: str) -> list[_Part]:
        from workbench.store.schema import TABLE_NAME

        shape = self._shape.result() if self._shape is not None else None
        if shape is None:
            shape = self._read_shape(conn, id_column)
        parts: list[_Part] = []
        if shape.logged_one_row:
            # The id the writer logged beside the record, as the labels are keyed: no JSON is
            # read (a second of the join at a million records).
            parts.append(_Part(f"{TABLE_NAME} p CROSS JOIN {_KEYS} k", "p.id_column = "
                               ":id_column AND p.n_rows = 1 AND k.id_value = p.id_value", "0",
                               all_predicted=True, score="column"))
        if shape.logged_many_rows:
            # Each row's [id, prediction, score] the writer logged in one array: the rows are
            # read in order, none picked out of the record's arrays by its index.
            parts.append(_Part(f"{TABLE_NAME} p CROSS JOIN json_each(p.label_rows) t CROSS JOIN "
                               f"{_KEYS} k", "p.id_column = :id_column AND p.n_rows > 1 AND "
                               "k.id_value = t.value ->> 0", "t.key", all_predicted=True,
                               score="rows"))
        # The other records are read from their inputs below.
        others = (" AND p.id_column IS NOT :id_column"
                  if shape.logged_one_row or shape.logged_many_rows else "")
        lists = shape.lists
        # The value (e) as the text labels are keyed by (see ``key_text``): a whole float is
        # the integer it prints as; an integer meets the text key by the column's affinity.
        key = ("k.id_value = substr(CASE WHEN e.type = 'real' AND e.value = CAST(e.value AS "
               "INTEGER) THEN CAST(CAST(e.value AS INTEGER) AS TEXT) ELSE e.value END, 1, "
               f"{ID_VALUE_LEN})")
        positions = {position for position, _multi in lists.values() if position is not None}
        if not positions:
            return parts  # no other record has the id column among its inputs
        if len(positions) == 1 and all(p is not None for p, _multi in lists.values()):
            # Every record's columns have the id at one place (one signature, the usual
            # store): its path is a constant and no record's column list need be read.
            heads, where, position = "", "TRUE", str(next(iter(positions)))
        else:
            self._stage_heads(conn, lists)
            heads = f" CROSS JOIN {_HEADS} h"
            where, position = f"h.head = {self.HEAD}", "h.position"
        # One-row records (the server's, the common case) read their one value by its path;
        # the others are unnested row by row. Two statements: a single one choosing per record
        # cost a third more at a million records; the second is left out when the store has
        # no record of more than one row.
        parts.append(_Part(f"{TABLE_NAME} p{heads} CROSS JOIN json_each(p.inputs, '$.data[0][' "
                           f"|| {position} || ']') e CROSS JOIN {_KEYS} k",
                           f"p.n_rows = 1{others} AND {where} AND {key}", "0",
                           all_predicted=True))
        if any(multi for _position, multi in lists.values()):
            self._stage_scores(conn)
            parts.append(_Part(
                f"{TABLE_NAME} p{heads} CROSS JOIN json_each(p.inputs, '$.data') r CROSS JOIN "
                f"json_each(r.value, '$[' || {position} || ']') e CROSS JOIN {_KEYS} k",
                f"p.n_rows > 1{others} AND {where} AND {key}", "r.key", score="staged"))
        return parts

    @staticmethod
    def _stage_scores(conn: Connection) -> None:
        """The scores of the records of more than one row, by (record, row), for the join to
        look up. Read by position from the record's JSON, each row's score would cost a parse
        cache check over the whole array (SQLite compares the text) and a walk to its place:
        at a thousand rows a record, 20 s for a million rows against half a second this way."""
        from workbench.store.schema import TABLE_NAME

        last = "'$[#-1]'"  # per-class probabilities: the last (positive) class's
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {_SCORES} (prediction_id INTEGER, row_index INTEGER, "
            "score REAL, PRIMARY KEY (prediction_id, row_index)) WITHOUT ROWID")
        conn.exec_driver_sql(
            f"INSERT INTO {_SCORES} SELECT p.id, s.key, CASE s.type WHEN 'real' THEN s.value "
            "WHEN 'integer' THEN CAST(s.value AS REAL) WHEN 'array' THEN CASE json_type("
            f"s.value, {last}) WHEN 'real' THEN json_extract(s.value, {last}) WHEN 'integer' "
            f"THEN CAST(json_extract(s.value, {last}) AS REAL) END END FROM {TABLE_NAME} p "
            "CROSS JOIN json_each(p.scores) s WHERE p.n_rows > 1 AND p.scores IS NOT NULL")

    #: The SQL of a record's column list (its stored inputs up to the end of the list).
    HEAD = f"substr(p.inputs, 1, instr(p.inputs, '{_COLUMNS_END}'))"

    _shape: Future[_StoreShape | None] | None = None

    def look_ahead(self, conn: Connection, id_column: str) -> None:
        # A file's store only: another connection to an in-memory database is another database.
        database = conn.engine.url.database or ""
        if id_column == REQUEST_ID or database in ("", ":memory:") or "mode=memory" in str(
                conn.engine.url):
            return
        from concurrent.futures import ThreadPoolExecutor

        engine = conn.engine

        def scan() -> _StoreShape | None:
            try:
                with engine.connect() as reader:
                    return self._read_shape(reader, id_column)
            except Exception:  # read again in the join's own transaction, which says why
                return None

        pool = ThreadPoolExecutor(1, thread_name_prefix="workbench-labels")
        self._shape = pool.submit(scan)
        pool.shutdown(wait=False)

    def finish(self) -> None:
        if self._shape is not None:
            self._shape.result()

    def _read_shape(self, conn: Connection, id_column: str) -> _StoreShape:
        """Whether any record has its id logged, and each distinct column list of the others
        (a few: one per model's signature): the id's position in it (None: not there) and
        whether records of more than one row have it. One pass over the store; a record with
        its id logged is not read past that column."""
        from workbench.store.schema import TABLE_NAME

        lists: ColumnLists = {}
        logged: set[bool] = set()
        for text, multi in conn.exec_driver_sql(
                f"SELECT DISTINCT CASE WHEN p.id_column = ? THEN NULL ELSE {self.HEAD} END, "
                f"p.n_rows > 1 FROM {TABLE_NAME} p", (id_column,)):
            if text is None:
                logged.add(bool(multi))
                continue
            try:
                names = orjson.loads(text + "}").get("columns") or []
            except (orjson.JSONDecodeError, AttributeError):
                names = []  # not the writer's form: nothing to join
            position = names.index(id_column) if id_column in names else None
            lists[text] = (position, bool(multi) or lists.get(text, (None, False))[1])
        return _StoreShape(False in logged, True in logged, lists)

    @staticmethod
    def _stage_heads(conn: Connection, lists: ColumnLists) -> None:
        """The column lists that have the id, with its position, for the join to look up."""
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {_HEADS} (head TEXT PRIMARY KEY, "
                             "position INTEGER NOT NULL)")
        conn.exec_driver_sql(f"INSERT INTO {_HEADS} VALUES (?, ?)", [
            (text, position) for text, (position, _multi) in lists.items()
            if position is not None])


class _PostgresJoin(_Join):
    """Postgres' ``jsonb`` functions: records with their ids logged are joined on those, every
    other record is unnested from its JSON, cast to ``jsonb`` once per record."""

    def lock(self, conn: Connection) -> None:
        # Conflicts with itself, not with readers: a second load waits for this one's commit.
        # (SQLite has one writer at a time already.)
        from workbench.store.schema import LABELS_TABLE_NAME

        conn.exec_driver_sql(f"LOCK TABLE {LABELS_TABLE_NAME} IN SHARE ROW EXCLUSIVE MODE")

    def load(self, conn: Connection, new: NewLabels, waiting: Waiting) -> None:
        import sqlalchemy as sa

        keys = sa.table(_KEYS, *(sa.column(name) for name in (
            "id_value", "label", "waiting", "load_id", "received_at")))
        rows: list[dict[str, Any]] = [
            {"id_value": key, "label": label, "waiting": False, "load_id": None,
             "received_at": None} for key, label in new.items()]
        rows += [{"id_value": key, "label": label, "waiting": True, "load_id": load,
                  "received_at": at} for key, (label, load, at) in waiting.items()]
        for start in range(0, len(rows), _INSERT_CHUNK):
            conn.execute(sa.insert(keys), rows[start:start + _INSERT_CHUNK])

    def predicted(self, index: str, score: ScoreSource) -> tuple[str, str]:
        if score == "rows":
            return "(t.value -> 1)::text AS prediction, (t.value ->> 2)::float8 AS score", ""
        if score == "column":
            return f"(p.outputs::jsonb -> {index})::text AS prediction, p.score", ""
        # ``i``: the record's outputs and scores cast to jsonb once (see ``_cast``).
        element = f"(i.scores -> {index})"
        return (f"(i.outputs -> {index})::text AS prediction, CASE jsonb_typeof({element}) "
                f"WHEN 'array' THEN ({element} ->> -1)::float8 WHEN 'number' THEN ({element} #>> "
                "'{}')::float8 END AS score", "")

    @staticmethod
    def _cast(*columns: str) -> str:
        """``columns`` of a record ``p`` (with its outputs and scores, which
        :meth:`predicted` reads) cast to jsonb once per record as ``i``, not once per row read
        from them (OFFSET 0 keeps the planner from inlining the casts into every use): at a
        thousand rows a record, casting its arrays again for each row cost 14 s for 40,000
        rows."""
        cast = ", ".join(f"p.{name}::jsonb AS {name}" for name in (*columns, "outputs", "scores"))
        return f"CROSS JOIN LATERAL (SELECT {cast} OFFSET 0) i"

    def by_request(self) -> _Part:
        from workbench.store.schema import TABLE_NAME

        return _Part(f"{TABLE_NAME} p JOIN {_KEYS} k ON k.id_value = p.request_id {self._cast()} "
                     "CROSS JOIN LATERAL jsonb_array_elements(i.outputs) WITH ORDINALITY "
                     "o(value, n)", "TRUE", "(o.n - 1)::int")

    def by_input(self, conn: Connection, id_column: str) -> list[_Part]:
        from workbench.store.schema import TABLE_NAME

        value = "(r.value -> c.position)"
        number = f"{value}::numeric"
        # The value as the text labels are keyed by (see ``key_text``).
        key = (f"left(CASE WHEN jsonb_typeof({value}) = 'number' AND {number} = trunc({number}) "
               f"THEN trunc({number})::text ELSE {value} #>> '{{}}' END, {ID_VALUE_LEN})")
        # A record with its id logged beside it (schema version 5) is joined on that, a one-row
        # record's in a column, a longer one's rows in their array; every other record is
        # unnested.
        logged = "p.id_column = :id_column"
        return [_Part(f"{TABLE_NAME} p JOIN {_KEYS} k ON k.id_value = p.id_value",
                      f"{logged} AND p.n_rows = 1", "0", all_predicted=True, score="column"),
                _Part(f"{TABLE_NAME} p CROSS JOIN LATERAL jsonb_array_elements(p.label_rows::jsonb) "
                      f"WITH ORDINALITY t(value, n) JOIN {_KEYS} k ON k.id_value = t.value ->> 0",
                      f"{logged} AND p.n_rows > 1", "(t.n - 1)::int", all_predicted=True,
                      score="rows"), _Part(
            f"{TABLE_NAME} p {self._cast('inputs')} CROSS JOIN LATERAL (SELECT (n.n - 1)::int AS "
            "position FROM jsonb_array_elements_text(i.inputs -> 'columns') WITH ORDINALITY "
            "n(name, n) "
            "WHERE n.name = :id_column LIMIT 1) c CROSS JOIN LATERAL jsonb_array_elements("
            f"i.inputs -> 'data') WITH ORDINALITY r(value, n) JOIN {_KEYS} k ON k.id_value = "
            f"{key}", f"({logged}) IS NOT TRUE", "(r.n - 1)::int")]


def _dialect_join(conn: Connection) -> _Join:
    """The join for the store's database.

    Raises:
        MonitoringError: a database other than SQLite or Postgres, or an SQLite too old.
    """
    name = conn.dialect.name
    if name == "sqlite":
        import sqlite3

        if sqlite3.sqlite_version_info < (3, 38):
            raise MonitoringError(f"the label join needs SQLite 3.38 or later (JSON operators); "
                                  f"this Python has {sqlite3.sqlite_version}: use a newer Python "
                                  "or a Postgres prediction store")
        return _SqliteJoin()
    if name == "postgresql":
        return _PostgresJoin()
    raise MonitoringError(f"labels can be joined in an SQLite or Postgres prediction store, "
                          f"not {name}; point WORKBENCH_PREDICTION_STORE at one")


def _utc(value: dt.datetime | str) -> dt.datetime:
    """An aware UTC time from a stored value (a datetime, or SQLite's text)."""
    from workbench.store.engine import utc

    moment = utc(dt.datetime.fromisoformat(value) if isinstance(value, str) else value)
    assert moment is not None  # the columns read here are NOT NULL
    return moment


__all__ = ["DEFAULT_LABEL_COLUMN", "REQUEST_ID", "LabelIngest", "ingest_labels", "key_text",
           "open_store"]
