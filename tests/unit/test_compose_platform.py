"""The compose platform's files and checks, without an engine."""
from __future__ import annotations

from pathlib import Path

import pytest

from workbench.config import Settings
from workbench.errors import ConfigError
from workbench.platforms.compose import (
    SECRETS,
    ComposePlatform,
    ComposeStatus,
    ServiceState,
    _parse_env,
    init,
)


def test_init_writes_the_platform_with_fresh_private_secrets(tmp_path: Path) -> None:
    first = _parse_env(init(tmp_path / "a").read_text())
    second = _parse_env(init(tmp_path / "b").read_text())
    for secret in SECRETS:
        assert len(first[secret]) >= 16 and first[secret] != second[secret]
    assert (tmp_path / "a" / ".env").stat().st_mode & 0o077 == 0  # only the owner reads it
    for name in ("compose.yaml", "postgres/init-prediction-store.sh", "pgadmin/servers.json"):
        assert (tmp_path / "a" / name).is_file()


def test_init_keeps_existing_secrets_unless_forced(tmp_path: Path) -> None:
    before = init(tmp_path).read_text()
    assert init(tmp_path).read_text() == before
    assert init(tmp_path, force=True).read_text() != before


def test_a_missing_secret_is_one_line_naming_it(tmp_path: Path) -> None:
    env = init(tmp_path)
    env.write_text(env.read_text().replace("JUPYTER_TOKEN=", "JUPYTER_TOKEN=\n# was: "))
    platform = ComposePlatform(Settings.from_env(environ={}, cwd=tmp_path), tmp_path)
    with pytest.raises(ConfigError, match=r"lacks JUPYTER_TOKEN; run `workbench platform init .* --force`"):
        platform.check()
    with pytest.raises(ConfigError, match="no compose.yaml in"):
        ComposePlatform(Settings.from_env(environ={}, cwd=tmp_path), tmp_path / "empty").check()


def test_project_ports_and_urls_come_from_the_env_file(tmp_path: Path) -> None:
    env = init(tmp_path)
    env.write_text(env.read_text().replace("MLFLOW_PORT=5000", "MLFLOW_PORT=5123")
                   .replace("COMPOSE_PROJECT_NAME=mlops-workbench", "COMPOSE_PROJECT_NAME=teamx"))
    platform = ComposePlatform(Settings.from_env(environ={}, cwd=tmp_path), tmp_path)
    assert platform.project == "teamx"
    assert platform.tracking_uri() == "http://127.0.0.1:5123"
    assert ComposeStatus(tmp_path, "teamx").network == "teamx_default"


@pytest.mark.parametrize(("state", "ready"), [
    (ServiceState("mlflow", "running", "healthy"), True),
    (ServiceState("mlflow", "running", "starting"), False),
    (ServiceState("serving", "running", "none"), True),
    (ServiceState("minio-init", "exited", "none", 0), True),
    (ServiceState("minio-init", "exited", "none", 1), False),
    (ServiceState("postgres", "restarting", "unhealthy"), False),
])
def test_service_readiness(state: ServiceState, ready: bool) -> None:
    assert state.ready is ready


def test_parse_env_ignores_comments_and_keeps_equals_in_values() -> None:
    assert _parse_env("# c\nA=1\n\nB=x=y\n  C = z \n") == {"A": "1", "B": "x=y", "C": "z"}
