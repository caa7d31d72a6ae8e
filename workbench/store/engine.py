"""Store URLs and engines: parse a URL once, in one place, with errors that never echo it.

SQLite gets no connection pool (a new connection per flush notices a store that went away and
reuses one that came back) and WAL, so the server writes while monitoring reads. Server
databases get a pool with pre-ping and a connect timeout, so a store that is down is said in
seconds instead of hanging a start-up or a drift check.
"""
from __future__ import annotations

import datetime as dt
import pathlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from workbench.errors import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 5_000
CONNECT_TIMEOUT_S = 5
MAX_ERROR_CHARS = 200
# Drivers whose connect() takes a ``connect_timeout`` keyword (seconds).
_TIMEOUT_DRIVERS = {("postgresql", "psycopg2"), ("postgresql", "psycopg")}


def sqlite_url(path: pathlib.Path) -> str:
    """The SQLAlchemy URL of an SQLite file, creating its parent folder.

    Raises:
        OSError: the parent folder cannot be created.
    """
    path = pathlib.Path(path).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.as_posix()}"


def parse_url(url: str) -> sa.URL:
    """The parsed store URL.

    Raises:
        ConfigError: the URL cannot be parsed, or names an in-memory SQLite database.
    """
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError, TypeError) as exc:
        # The message never echoes the URL (it may hold a password).
        raise ConfigError("prediction store URL cannot be parsed; write it as "
                          "dialect+driver://user:password@host/database or "
                          "sqlite:////absolute/path.db") from exc
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigError("prediction store: an in-memory SQLite database cannot be shared "
                          "by the writer and readers; use a file (sqlite:////path/to/p.db)")
    return parsed


def redact(url: str) -> str:
    """A store URL without its password, for printing; ``""`` stays ``""``.

    Raises:
        ConfigError: the URL cannot be parsed.
    """
    return parse_url(url).render_as_string(hide_password=True) if url else ""


def create_engine(url: str, *, writer: bool) -> Engine:
    """An engine for the store (see the module docstring).

    Args:
        url: the store's SQLAlchemy URL.
        writer: the engine writes (SQLite: WAL and ``synchronous=NORMAL`` on each connection).

    Raises:
        ConfigError: the URL cannot be used (see ``parse_url``) or its driver is unknown or
            not installed.
    """
    parsed = parse_url(url)
    try:
        if parsed.get_backend_name() != "sqlite":
            connect_args: dict[str, Any] = {}
            if (parsed.get_backend_name(), parsed.get_driver_name()) in _TIMEOUT_DRIVERS:
                connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
            return sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
        engine = sa.create_engine(parsed, poolclass=NullPool)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise ConfigError(
            f"prediction store URL cannot be used: {one_line(exc)}; name an installed "
            "driver, e.g. postgresql+psycopg2://... or sqlite:////path/to/p.db") from exc

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if writer:
                cursor.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL syncs at checkpoints, not at every commit: a power cut can lose
                # the last batches (a killed process cannot), never corrupt the file.
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    return engine


def sqlite_file_missing(url: str) -> bool:
    """Whether ``url`` is an SQLite file that does not exist (reading must not create it).

    Raises:
        ConfigError: the URL cannot be parsed.
    """
    parsed = parse_url(url)
    return parsed.get_backend_name() == "sqlite" and not pathlib.Path(
        str(parsed.database)).exists()


def utc(value: dt.datetime | None) -> dt.datetime | None:
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


def one_line(exc: BaseException) -> str:
    """Class name and first message line: SQLAlchemy puts SQL and parameters on later lines."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    return f"{type(exc).__name__}: {first}"[:MAX_ERROR_CHARS]
