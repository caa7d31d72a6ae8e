"""``python -m workbench.store prepare --url URL``: create or migrate the prediction store.

Run by the compose platform's one-shot as the database's owner, before the server starts.
Prints one line; exits 0 when the store is current, 1 when it is refused or unreachable, 2 on
bad usage. ``WORKBENCH_DEBUG=1`` adds the traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m workbench.store",
                                     description="The workbench's prediction store.")
    commands = parser.add_subparsers(dest="command", required=True)
    prepare_cmd = commands.add_parser(
        "prepare", help="create the tables, or migrate them to the current schema version")
    prepare_cmd.add_argument("--url", default=os.environ.get("WORKBENCH_PREDICTION_STORE"),
                             help="SQLAlchemy URL of the store (default: "
                                  "$WORKBENCH_PREDICTION_STORE)")
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("--url is required (or set WORKBENCH_PREDICTION_STORE)")

    import sqlalchemy as sa

    from workbench.errors import WorkbenchError
    from workbench.store.engine import one_line, redact
    from workbench.store.schema import SCHEMA_VERSION, prepare

    try:
        where = redact(args.url)
        before, now = prepare(args.url)
    except WorkbenchError as exc:
        return _fail(f"error: {exc}")
    except sa.exc.SQLAlchemyError as exc:
        return _fail(f"error: the prediction store at {where} cannot be reached or "
                     f"changed: {one_line(exc)}")
    if before == now:
        print(f"prediction store {where}: schema version {SCHEMA_VERSION}, current")
    elif before is None:
        print(f"prediction store {where}: created, schema version {now}")
    else:
        print(f"prediction store {where}: migrated from schema version {before} to {now}")
    return 0


def _fail(line: str) -> int:
    if os.environ.get("WORKBENCH_DEBUG") == "1":
        import traceback

        traceback.print_exc()
    print(line, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
