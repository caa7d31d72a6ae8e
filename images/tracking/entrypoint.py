"""The tracking image's entrypoint: write MLflow's auth configuration, then run the command.

MLflow's basic-auth app reads its user store's address only from an ini file
(``MLFLOW_AUTH_CONFIG_PATH``, key ``database_uri``); the compose platform passes it in the
environment (``MLFLOW_AUTH_DATABASE_URI``), like every other setting, so no secret is baked
into the image or put on a command line. The file is created 0600 from its first byte in the
container user's home. Without ``MLFLOW_AUTH_DATABASE_URI`` the command runs as given (the
image also runs one-shot scripts).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

# Everyone but the admin starts with read access; what a user creates it manages.
_TEMPLATE = """[mlflow]
default_permission = READ
database_uri = {database_uri}
admin_username = {admin_username}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
grant_default_workspace_access = false
"""


def write_auth_config(database_uri: str, admin_username: str, path: Path) -> Path:
    """Write the auth ini at ``path`` (mode 0600, replaced if present)."""
    # configparser interpolates '%': a literal one in a password must be doubled.
    text = _TEMPLATE.format(database_uri=database_uri.replace("%", "%%"),
                            admin_username=admin_username.replace("%", "%%"))
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def main(argv: list[str]) -> None:
    database_uri = os.environ.get("MLFLOW_AUTH_DATABASE_URI", "")
    if database_uri:
        path = Path(os.environ.get("MLFLOW_AUTH_CONFIG_PATH") or Path.home() / "basic_auth.ini")
        write_auth_config(database_uri, os.environ.get("MLFLOW_AUTH_ADMIN_USERNAME") or "admin",
                          path)
        os.environ["MLFLOW_AUTH_CONFIG_PATH"] = str(path)
        del os.environ["MLFLOW_AUTH_DATABASE_URI"]  # the server reads it from the file
    if not argv:
        sys.exit("entrypoint: no command given")
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
