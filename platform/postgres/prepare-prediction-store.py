"""The compose platform's predictions-prepare one-shot: create (or migrate) the prediction
store's tables as their owner, then let the serving role read the store's own small tables.

Runs in the workbench image as ``predictions_owner`` (the database's owner, not the
superuser), with the store's URL in ``PREDICTIONS_OWNER_URL``. The tables it creates get
INSERT for ``predictions_writer`` and SELECT for ``predictions_reader`` from the default
privileges init-databases.sh set; the writer also needs to read the store's schema-version
row, so every table but ``predictions`` gets SELECT for it here.
"""
from __future__ import annotations

import os
import subprocess
import sys

import sqlalchemy as sa

WRITER = "predictions_writer"


def prepare(url: str) -> None:
    """Run the store's own entry, which creates or migrates its schema (the tables and the
    schema version) and says what it did; its exit status ends this one-shot on failure."""
    done = subprocess.run([sys.executable, "-m", "workbench.store", "prepare", "--url", url],
                          check=False)
    if done.returncode != 0:
        sys.exit(done.returncode)


def grant_writer_reads(url: str) -> list[str]:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        tables = [name for name in sa.inspect(conn).get_table_names(schema="public")
                  if name != "predictions"]
        for name in tables:
            conn.execute(sa.text(f'GRANT SELECT ON TABLE public."{name}" TO {WRITER}'))
    engine.dispose()
    return tables


def main() -> None:
    url = os.environ["PREDICTIONS_OWNER_URL"]
    prepare(url)
    granted = grant_writer_reads(url)
    print(f"prediction store ready; {WRITER} reads: {', '.join(granted) or '(no other table)'}")


if __name__ == "__main__":
    main()
