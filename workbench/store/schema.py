"""The prediction store's tables, their schema version, and the migrations between versions.

Version 1 (workbench before the meta table): ``predictions`` alone, no version recorded.
Version 2: a ``workbench_store_meta`` table holding ``schema_version``; an index on
``created_at`` for time-window reads across models; on Postgres the id is an identity column,
so a role with INSERT on ``predictions`` alone can write (a ``serial`` needs USAGE on its
sequence too).
Version 3: a ``role`` column on ``predictions`` (``primary``: the model that answered the
request; ``shadow``: a challenger that scored the same request off the response path, logged
under its own name with the primary's request id). The column is NOT NULL with the server
default ``primary``: rows stored before the migration, and inserts that omit it, are primary.
Version 4: ground truth that arrives later. A nullable ``scores`` column on ``predictions``
(JSON, one probability per predicted row: the positive class's for a binary classifier; null
when the writer logged none, as the server does); a ``labels`` table (one row per label joined
to one predicted row, plus one row per label that matched nothing yet, so no label is ever
dropped) holding a copy of what the windowed performance needs (model, prediction time,
prediction, score) so it never parses the logged inputs again; and ``performance_windows``,
the windows a performance check evaluated and when, which is what makes a later label "late".
Version 5: what the label join needs, written once instead of parsed or repeated per row.
Nullable ``id_column``, ``id_value``, ``score`` and ``label_rows`` columns on ``predictions``:
a writer told the id column (``WORKBENCH_LABEL_ID_COLUMN``, e.g. ``customer_id``) stores the
name, and the id of a one-row record as labels are keyed by (see ``keys.key_text``) or, for a
record of more than one row, each row's ``[id, prediction, score]`` in one JSON array; every
writer stores a one-row record's score as a number. The join reads those instead of parsing
every record's inputs and scores (a second and a half of the join at a million one-row
records; at a thousand rows a record, the JSON array saves picking each row's prediction and
score out of the record's arrays, which SQLite does by walking them). Rows stored before, and
records without that column, keep them null and are joined through their JSON, as before.
And ``label_loads``: one row per load of a labels file (id column, arrival time, file), which
each label row names by ``load_id`` instead of repeating the three (half of a label row's
bytes).

``ensure`` is what the writer and ``workbench serve`` call: it reads the version (SELECT on
the meta table is all it needs when the schema is current), creates an empty store, migrates an
older one, and refuses a ``predictions`` table that is not the workbench's, so a foreign table
is one line at start-up rather than a writer retrying forever.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from workbench.errors import ConfigError
from workbench.store.engine import create_engine, one_line

SCHEMA_VERSION = 5
TABLE_NAME = "predictions"
META_TABLE_NAME = "workbench_store_meta"
LABELS_TABLE_NAME = "labels"
LOADS_TABLE_NAME = "label_loads"
WINDOWS_TABLE_NAME = "performance_windows"
VERSION_KEY = "schema_version"
REQUEST_ID_LEN = 64
MODEL_NAME_LEN = 255
ROLE_LEN = 16
ID_COLUMN_LEN = 64
ID_VALUE_LEN = 255
SOURCE_LEN = 255
PRIMARY, SHADOW = "primary", "shadow"
ROLES = (PRIMARY, SHADOW)
PREPARE_HINT = "run `python -m workbench.store prepare --url URL` as the database's owner"

# The columns of ``predictions`` in each version (none was renamed or dropped so far).
V1_COLUMNS = ("id", "request_id", "created_at", "model_name", "n_rows", "inputs", "outputs",
              "latency_ms")
COLUMNS_BY_VERSION = {1: V1_COLUMNS, 2: V1_COLUMNS, 3: (*V1_COLUMNS, "role"),
                      4: (*V1_COLUMNS, "role", "scores"),
                      5: (*V1_COLUMNS, "role", "scores", "id_column", "id_value", "score",
                          "label_rows")}
# The tables each version has besides ``predictions`` and the meta table.
TABLES_BY_VERSION: dict[int, tuple[str, ...]] = {
    1: (), 2: (), 3: (), 4: (LABELS_TABLE_NAME, WINDOWS_TABLE_NAME),
    5: (LABELS_TABLE_NAME, WINDOWS_TABLE_NAME, LOADS_TABLE_NAME)}
COLUMNS = COLUMNS_BY_VERSION[SCHEMA_VERSION]

metadata = sa.MetaData()


def _id() -> sa.Column[int]:
    """An identity primary key. BIGINT on servers: at a few hundred predictions a second a
    32-bit id runs out in months. SQLite only autoincrements an ``INTEGER PRIMARY KEY`` (it
    ignores Identity)."""
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.Identity(),
                     primary_key=True)


predictions_table = sa.Table(
    TABLE_NAME,
    metadata,
    _id(),
    sa.Column("request_id", sa.String(REQUEST_ID_LEN), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("model_name", sa.String(MODEL_NAME_LEN), nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),
    sa.Column("outputs", sa.Text, nullable=False),
    sa.Column("latency_ms", sa.Float),
    sa.Column("role", sa.String(ROLE_LEN), nullable=False, server_default=PRIMARY),
    sa.Column("scores", sa.Text, nullable=True),
    # What the label join reads (version 5): the id column the writer was told, and the id of
    # a one-row record or each row's [id, prediction, score] of a longer one (JSON); a
    # one-row record's score as the join reads it from ``scores``.
    sa.Column("id_column", sa.String(ID_COLUMN_LEN), nullable=True),
    sa.Column("id_value", sa.String(ID_VALUE_LEN), nullable=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("label_rows", sa.Text, nullable=True),
    sa.Index("ix_predictions_model_name_created_at", "model_name", "created_at"),
    sa.Index("ix_predictions_created_at", "created_at"),
)

# One row per load of a labels file: what its labels share.
loads_table = sa.Table(
    LOADS_TABLE_NAME,
    metadata,
    _id(),
    sa.Column("id_column", sa.String(ID_COLUMN_LEN), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source", sa.String(SOURCE_LEN), nullable=False),
)

# One row per label joined to one predicted row; a label that matched no logged prediction is
# one row with the prediction columns null (kept, counted, matched on a later run).
labels_table = sa.Table(
    LABELS_TABLE_NAME,
    metadata,
    _id(),
    # The load it came in (``label_loads.id``); null only where no row could be written
    # with it: the column is added to a version-4 store's rows by ALTER TABLE.
    sa.Column("load_id", sa.BigInteger, nullable=True),
    sa.Column("id_value", sa.String(ID_VALUE_LEN), nullable=False),
    sa.Column("label", sa.Text, nullable=False),  # JSON: 1 and "1" stay apart
    # No foreign key: predictions may be pruned while the labels stay the record.
    sa.Column("prediction_id", sa.BigInteger, nullable=True),
    sa.Column("row_index", sa.Integer, nullable=True),
    sa.Column("model_name", sa.String(MODEL_NAME_LEN), nullable=True),
    sa.Column("predicted_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("prediction", sa.Text, nullable=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("late", sa.Boolean, nullable=False, server_default=sa.false()),
    # What performance reads by. No index on the id: labels are read by id column whole
    # (duplicates, unmatched), and a second index costs every insert of a million labels.
    sa.Index("ix_labels_model_name_predicted_at", "model_name", "predicted_at"),
)

# Each window a performance check evaluated: a label for a prediction in it that arrives
# after ``evaluated_at`` is late.
windows_table = sa.Table(
    WINDOWS_TABLE_NAME,
    metadata,
    _id(),
    sa.Column("model_name", sa.String(MODEL_NAME_LEN), nullable=False),
    sa.Column("metric", sa.String(64), nullable=False),
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("labelled", sa.Integer, nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Index("ix_performance_windows_model_name_window_start", "model_name", "window_start"),
)

# What the writer inserts into: the table without its id. Inserting through the Table would
# fetch each new id (RETURNING, or nextval() first), which needs SELECT on the table or
# USAGE on the sequence; the serving role has INSERT alone, and the database fills the id.
insert_target = sa.table(TABLE_NAME, *(sa.column(column.name, column.type)
                                       for column in predictions_table.c if column.name != "id"))

meta_table = sa.Table(
    META_TABLE_NAME,
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)


class StoreSchemaError(ConfigError):
    """The store holds tables this workbench cannot write to: a foreign ``predictions``
    table, a newer or unreadable schema version, or an older one the role may not migrate."""


@dataclass(frozen=True)
class SchemaState:
    """What a store holds.

    Attributes:
        version: the schema version; None for an empty store (no workbench tables).
        complete: every table of that version exists.
    """

    version: int | None
    complete: bool

    @property
    def current(self) -> bool:
        return self.version == SCHEMA_VERSION and self.complete


def read_state(conn: Connection) -> SchemaState:
    """The store's schema version, read without writing anything.

    Raises:
        StoreSchemaError: the tables are not the workbench's, or the version is unknown.
        sqlalchemy.exc.SQLAlchemyError: the store cannot be read.
    """
    inspector = sa.inspect(conn)
    has_predictions = inspector.has_table(TABLE_NAME)
    columns = ({column["name"] for column in inspector.get_columns(TABLE_NAME)}
               if has_predictions else set())
    if not inspector.has_table(META_TABLE_NAME):
        if not has_predictions:
            return SchemaState(None, False)
        if columns != set(V1_COLUMNS):
            raise StoreSchemaError(
                f"the prediction store holds a '{TABLE_NAME}' table that is not the "
                f"workbench's (columns {', '.join(sorted(columns))}; no schema version); "
                "point --log-url (or WORKBENCH_PREDICTION_STORE) at another database, or "
                "rename that table")
        return SchemaState(1, True)
    raw = conn.execute(sa.select(meta_table.c.value).where(
        meta_table.c.key == VERSION_KEY)).scalar()
    if raw is None or not str(raw).isdigit() or int(raw) < 2:
        raise StoreSchemaError(
            f"the prediction store's {META_TABLE_NAME} table holds no schema version "
            f"this workbench knows ({raw!r}); point --log-url at another database")
    version = int(raw)
    if version > SCHEMA_VERSION:
        raise StoreSchemaError(
            f"the prediction store has schema version {version}, newer than this workbench "
            f"knows ({SCHEMA_VERSION}); upgrade mlops-workbench to write to it")
    expected = set(COLUMNS_BY_VERSION[version])
    if has_predictions and not expected <= columns:
        missing = ", ".join(sorted(expected - columns))
        raise StoreSchemaError(
            f"the prediction store's '{TABLE_NAME}' table lacks column(s) {missing} of "
            f"schema version {version}; point --log-url at another database")
    others = all(inspector.has_table(name) for name in TABLES_BY_VERSION[version])
    return SchemaState(version, has_predictions and others)


def ensure(conn: Connection, *, create: bool = True) -> SchemaState:
    """Make the store current: create an empty one, migrate an older one, refuse a foreign one.

    Run it inside a transaction (``engine.begin()``): a migration is all or nothing where the
    database has transactional DDL (SQLite and Postgres do).

    Args:
        conn: a connection in a transaction.
        create: allowed to create or migrate; when False an old or empty store is refused.

    Returns:
        The state found before any change.

    Raises:
        StoreSchemaError: foreign tables or an unknown version; or the store needs creating or
            migrating and ``create`` is False or the role lacks the privilege.
        sqlalchemy.exc.SQLAlchemyError: the store cannot be reached or read.
    """
    state = read_state(conn)
    if state.current:
        return state
    if not create:
        raise StoreSchemaError(
            f"the prediction store has schema version {state.version or 'none'}, this "
            f"workbench writes version {SCHEMA_VERSION}; {PREPARE_HINT}")
    try:
        for step in _steps_from(state):
            step(conn)
        metadata.create_all(conn, checkfirst=True)
        conn.execute(meta_table.delete().where(meta_table.c.key == VERSION_KEY))
        conn.execute(meta_table.insert().values(key=VERSION_KEY, value=str(SCHEMA_VERSION)))
    except sa.exc.ProgrammingError as exc:  # Postgres' "permission denied" lands here
        raise StoreSchemaError(
            f"the prediction store needs schema version {SCHEMA_VERSION} (it has "
            f"{state.version or 'none'}) and this role cannot change it "
            f"({one_line(exc)}); {PREPARE_HINT}") from exc
    return state


def prepare(url: str) -> tuple[int | None, int]:
    """Create or migrate the store at ``url`` (run as the database's owner).

    Returns:
        (version found, or None for an empty store; version now).

    Raises:
        ConfigError: the URL cannot be used.
        StoreSchemaError: see ``ensure``.
        sqlalchemy.exc.SQLAlchemyError: the store cannot be reached.
    """
    engine = create_engine(url, writer=True)
    try:
        with engine.begin() as conn:
            before = ensure(conn, create=True)
    finally:
        engine.dispose()
    return before.version, SCHEMA_VERSION


def check_at_start(url: str) -> bool:
    """At server start: make the store current, or refuse it; a store that is down is no
    error (the writer keeps predictions in its bounded backlog until it is back).

    Returns:
        True when the store answered and is current; False when it could not be reached.

    Raises:
        ConfigError: the URL cannot be used.
        StoreSchemaError: see ``ensure``.
    """
    engine = create_engine(url, writer=True)
    try:
        with engine.begin() as conn:
            ensure(conn, create=True)
    except (sa.exc.OperationalError, sa.exc.InterfaceError):
        return False
    finally:
        engine.dispose()
    return True


# ---------------------------------------------------------------------- migrations


def _steps_from(state: SchemaState) -> list[Callable[[Connection], None]]:
    """The migration steps from ``state`` to the current version, in order."""
    if state.version is None:
        return []  # create_all makes the current tables
    steps: dict[int, Callable[[Connection], None]] = {1: _v1_to_v2, 2: _v2_to_v3,
                                                      3: _v3_to_v4, 4: _v4_to_v5}
    return [steps[version] for version in range(state.version, SCHEMA_VERSION)]


def _v1_to_v2(conn: Connection) -> None:
    """Version 1 -> 2: the ``created_at`` index; Postgres' serial id becomes an identity
    column (so INSERT alone is enough to write). The meta table comes from create_all."""
    for index in predictions_table.indexes:
        if index.name == "ix_predictions_created_at":
            index.create(conn, checkfirst=True)
    if conn.dialect.name != "postgresql":
        return
    sequence = conn.execute(sa.text(
        f"SELECT pg_get_serial_sequence('{TABLE_NAME}', 'id')")).scalar()
    is_identity = conn.execute(sa.text(
        "SELECT is_identity FROM information_schema.columns "
        f"WHERE table_name = '{TABLE_NAME}' AND column_name = 'id' "
        "AND table_schema = current_schema()")).scalar()
    if is_identity == "YES":
        return
    conn.execute(sa.text(f"ALTER TABLE {TABLE_NAME} ALTER COLUMN id DROP DEFAULT"))
    if sequence:
        # The name comes from the catalog, not from input.
        conn.execute(sa.text(f"DROP SEQUENCE IF EXISTS {sequence}"))
    conn.execute(sa.text(
        f"ALTER TABLE {TABLE_NAME} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY"))
    conn.execute(sa.text(
        f"SELECT setval(pg_get_serial_sequence('{TABLE_NAME}', 'id'), "
        f"COALESCE(MAX(id), 0) + 1, false) FROM {TABLE_NAME}"))


def _v2_to_v3(conn: Connection) -> None:
    """Version 2 -> 3: the ``role`` column, NOT NULL with the server default, so the rows
    already stored read as ``primary`` (they were all logged by the model that answered)."""
    if "role" in {column["name"] for column in sa.inspect(conn).get_columns(TABLE_NAME)}:
        return
    conn.execute(sa.text(
        f"ALTER TABLE {TABLE_NAME} ADD COLUMN role VARCHAR({ROLE_LEN}) NOT NULL "
        f"DEFAULT '{PRIMARY}'"))


def _v3_to_v4(conn: Connection) -> None:
    """Version 3 -> 4: the nullable ``scores`` column (rows stored before it have none, as
    the server logs none); the ``labels`` and ``performance_windows`` tables come from
    create_all."""
    if "scores" in {column["name"] for column in sa.inspect(conn).get_columns(TABLE_NAME)}:
        return
    conn.execute(sa.text(f"ALTER TABLE {TABLE_NAME} ADD COLUMN scores TEXT"))


def _v4_to_v5(conn: Connection) -> None:
    """Version 4 -> 5: the nullable ``id_column``, ``id_value``, ``score`` and ``label_rows``
    columns (rows stored before have none and are joined through their JSON); ``label_loads``,
    one row per distinct (id column, arrival time, file) of the labels stored, which each
    label row then names by ``load_id`` in place of the three columns."""
    inspector = sa.inspect(conn)
    present = {column["name"] for column in inspector.get_columns(TABLE_NAME)}
    for name, sql_type in (("id_column", f"VARCHAR({ID_COLUMN_LEN})"),
                           ("id_value", f"VARCHAR({ID_VALUE_LEN})"),
                           ("score", "DOUBLE PRECISION" if conn.dialect.name == "postgresql"
                            else "FLOAT"), ("label_rows", "TEXT")):
        if name not in present:
            conn.execute(sa.text(f"ALTER TABLE {TABLE_NAME} ADD COLUMN {name} {sql_type}"))
    if not inspector.has_table(LABELS_TABLE_NAME):
        return  # create_all makes it
    shared = ("id_column", "received_at", "source")
    if not set(shared) <= {c["name"] for c in inspector.get_columns(LABELS_TABLE_NAME)}:
        return
    loads_table.create(conn, checkfirst=True)
    conn.execute(sa.text(f"ALTER TABLE {LABELS_TABLE_NAME} ADD COLUMN load_id BIGINT"))
    conn.execute(sa.text(
        f"INSERT INTO {LOADS_TABLE_NAME} (id_column, received_at, source) SELECT id_column, "
        f"received_at, source FROM {LABELS_TABLE_NAME} GROUP BY id_column, received_at, "
        "source ORDER BY MIN(id)"))
    conn.execute(sa.text(
        f"UPDATE {LABELS_TABLE_NAME} SET load_id = (SELECT d.id FROM {LOADS_TABLE_NAME} d "
        f"WHERE d.id_column = {LABELS_TABLE_NAME}.id_column AND d.received_at = "
        f"{LABELS_TABLE_NAME}.received_at AND d.source = {LABELS_TABLE_NAME}.source)"))
    for name in shared:
        conn.execute(sa.text(f"ALTER TABLE {LABELS_TABLE_NAME} DROP COLUMN {name}"))
