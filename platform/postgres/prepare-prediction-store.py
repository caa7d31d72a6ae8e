"""The compose platform's predictions-prepare one-shot: create (or migrate) the prediction
store's tables as their owner, then grant each role exactly what it needs on them.

Runs in the workbench image as ``predictions_owner`` (the database's owner, not the
superuser), with the store's URL in ``PREDICTIONS_OWNER_URL``, at every start of the platform,
so a store created by an older platform gets the same grants:

- ``predictions_writer`` (the serving service): INSERT on ``predictions`` and SELECT on
  ``workbench_store_meta`` (its start-up check of the schema version); nothing else.
- ``predictions_reader`` (Lab and jobs: drift checks, label loads, performance checks): SELECT
  on every table; INSERT on ``label_loads`` and INSERT and DELETE on ``labels`` (``workbench
  monitor labels`` records each load, stores its labels and replaces a waiting label once it
  matches); INSERT on ``performance_windows`` (a performance
  check records the windows it evaluated); TEMPORARY on the database (the label join stages the
  labels in a temporary table). It never writes, updates or deletes a logged prediction.

Whatever else a role holds on a table (from the default privileges, or an older platform's
grants) is revoked first.
"""
from __future__ import annotations

import os
import subprocess
import sys

import sqlalchemy as sa

WRITER = "predictions_writer"
READER = "predictions_reader"
# role -> table -> privileges; a table not named here gets SELECT for the reader alone.
GRANTS = {
    WRITER: {"predictions": "INSERT", "workbench_store_meta": "SELECT"},
    READER: {"labels": "SELECT, INSERT, DELETE", "label_loads": "SELECT, INSERT",
             "performance_windows": "SELECT, INSERT"},
}
READER_DEFAULT = "SELECT"


def prepare(url: str) -> None:
    """Run the store's own entry, which creates or migrates its schema (the tables and the
    schema version) and says what it did; its exit status ends this one-shot on failure."""
    done = subprocess.run([sys.executable, "-m", "workbench.store", "prepare", "--url", url],
                          check=False)
    if done.returncode != 0:
        sys.exit(done.returncode)


def grant(url: str) -> dict[str, dict[str, str]]:
    """Grant the roles their privileges on every table of the store; return what was granted
    (role -> table -> privileges)."""
    granted: dict[str, dict[str, str]] = {WRITER: {}, READER: {}}
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for name in sorted(sa.inspect(conn).get_table_names(schema="public")):
            # Names come from the store's own catalogue, quoted as identifiers.
            table = f'public."{name}"'
            conn.execute(sa.text(f"REVOKE ALL ON TABLE {table} FROM {WRITER}, {READER}"))
            for role in (WRITER, READER):
                privileges = GRANTS[role].get(name, READER_DEFAULT if role == READER else "")
                if privileges:
                    conn.execute(sa.text(f"GRANT {privileges} ON TABLE {table} TO {role}"))
                    granted[role][name] = privileges
        database = conn.execute(sa.text("SELECT current_database()")).scalar_one()
        conn.execute(sa.text(f'GRANT TEMPORARY ON DATABASE "{database}" TO {READER}'))
    engine.dispose()
    return granted


def main() -> None:
    url = os.environ["PREDICTIONS_OWNER_URL"]
    prepare(url)
    granted = grant(url)
    for role, tables in granted.items():
        shown = "; ".join(f"{privileges} on {name}" for name, privileges in tables.items())
        print(f"{role}: {shown or '(nothing)'}")
    print("prediction store ready")


if __name__ == "__main__":
    main()
