"""The compose platform's files and checks, without an engine."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from workbench._version import __version__
from workbench.config import Settings
from workbench.errors import ConfigError, PlatformError
from workbench.platforms.compose import (
    SECRETS,
    TRACKING_CREDENTIALS,
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
    for name in ("compose.yaml", "postgres/init-databases.sh",
                 "postgres/prepare-prediction-store.py", "pgadmin/servers.json"):
        assert (tmp_path / "a" / name).is_file()
    # The workbench's own images by this version's tag, never :latest.
    assert first["TRACKING_IMAGE"] == f"mlops-workbench/tracking:{__version__}"
    assert first["WORKBENCH_IMAGE"] == f"mlops-workbench/workbench:{__version__}"


def test_env_file_is_private_from_its_first_byte(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[tuple[str, int, int]] = []
    real_open = os.open

    def recording_open(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        opened.append((str(path), flags, mode))
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    old_umask = os.umask(0)  # a umask must not be what keeps the file private
    try:
        env_file = init(tmp_path)
    finally:
        os.umask(old_umask)
    created = [entry for entry in opened if ".env" in Path(entry[0]).name]
    assert created, "the .env was not created through os.open"
    for _, flags, mode in created:
        assert flags & os.O_CREAT and flags & os.O_EXCL and mode == 0o600
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob(".env.*.tmp"))


class _Volume:
    def __init__(self, name: str) -> None:
        self.name = name


class _Client:
    """Just enough of docker.DockerClient: ``volumes.list(filters=...)``."""

    def __init__(self, volumes: dict[str, list[str]]) -> None:
        self.by_project = volumes
        self.volumes = self
        self.asked: list[dict] = []

    def list(self, filters: dict) -> list[_Volume]:
        self.asked.append(filters)
        project = filters["label"].split("=", 1)[1]
        return [_Volume(name) for name in self.by_project.get(project, [])]


def test_init_keeps_existing_secrets_and_force_rotates_only_without_data(tmp_path: Path) -> None:
    before = init(tmp_path).read_text()
    assert init(tmp_path).read_text() == before
    empty = _Client({})
    assert init(tmp_path, force=True, client=empty).read_text() != before
    assert empty.asked == [{"label": "com.docker.compose.project=mlops-workbench"}]


def test_force_refuses_while_the_project_keeps_volumes(tmp_path: Path) -> None:
    env = init(tmp_path)
    env.write_text(env.read_text().replace("COMPOSE_PROJECT_NAME=mlops-workbench",
                                           "COMPOSE_PROJECT_NAME=teamx"))
    before = env.read_bytes()
    client = _Client({"teamx": ["teamx_postgres-data", "teamx_minio-data"]})
    with pytest.raises(PlatformError) as refused:
        init(tmp_path, force=True, client=client)
    message = str(refused.value)
    assert "\n" not in message
    assert "teamx_postgres-data" in message
    assert f"workbench platform down --compose --volumes --dir {tmp_path}" in message
    assert env.read_bytes() == before  # the secrets the data was made with are kept


def test_a_missing_secret_is_one_line_naming_it(tmp_path: Path) -> None:
    env = init(tmp_path)
    env.write_text(env.read_text().replace("JUPYTER_TOKEN=", "JUPYTER_TOKEN=\n# was: "))
    platform = ComposePlatform(Settings.from_env(environ={}, cwd=tmp_path), tmp_path)
    with pytest.raises(ConfigError, match=r"lacks JUPYTER_TOKEN; run `workbench platform init .* --force`"):
        platform.check()
    with pytest.raises(ConfigError, match=r"no compose\.yaml in"):
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


REPO = Path(__file__).resolve().parents[2]


def test_every_image_is_pinned_to_a_version() -> None:
    services = yaml.safe_load((REPO / "platform" / "compose.yaml").read_text())["services"]
    example = _parse_env((REPO / "platform" / ".env.example").read_text())
    for name, service in services.items():
        image = service["image"]
        variable = re.fullmatch(r"\$\{(\w+)(?::-([^}]*)|:\?[^}]*)\}", image)
        if variable:  # ${VAR:-default} or ${VAR:?error}: the default and .env.example's value
            candidates = [c for c in (variable.group(2), example.get(variable.group(1))) if c]
        else:
            candidates = [image]
        for ref in candidates:
            if name == "serving":
                continue  # MODEL_IMAGE names a packaged model, tagged by its instance
            assert ":" in ref.rsplit("/", 1)[-1], f"{name}: {ref} has no tag"
            assert not ref.endswith(":latest"), f"{name}: {ref} is not pinned"


def test_lab_and_jobs_get_the_tracking_user_and_no_superuser_secret() -> None:
    services = yaml.safe_load((REPO / "platform" / "compose.yaml").read_text())["services"]
    forbidden = ("POSTGRES_PASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD", "MINIO_ROOT_PASSWORD",
                 "PREDICTIONS_OWNER_PASSWORD", "PREDICTIONS_WRITER_PASSWORD")
    jupyter = " ".join(str(v) for v in services["jupyter"]["environment"].values())
    for secret in forbidden:
        assert "${" + secret not in jupyter, f"jupyter gets {secret}"
    assert set(TRACKING_CREDENTIALS) <= set(services["jupyter"]["environment"])
    serving = " ".join(str(v) for v in services["serving"]["environment"].values())
    assert "predictions_writer:" in serving and "${POSTGRES_PASSWORD" not in serving
    assert services["mlflow"]["command"][-2:] == ["--app-name", "basic-auth"]


def test_the_scheduler_service_runs_the_policy_scheduler_with_its_own_database() -> None:
    services = yaml.safe_load((REPO / "platform" / "compose.yaml").read_text())["services"]
    scheduler = services["scheduler"]
    assert scheduler["command"] == ["python", "-m", "workbench.policy.scheduler"]
    assert scheduler["image"] == services["jupyter"]["image"]  # the workbench image
    environment = scheduler["environment"]
    assert environment["WORKBENCH_SCHEDULER_STORE"].startswith(
        "postgresql+psycopg2://scheduler:${SCHEDULER_DB_PASSWORD")
    assert set(TRACKING_CREDENTIALS) <= set(environment)
    text = " ".join(str(v) for v in environment.values())
    for secret in ("POSTGRES_PASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD", "MINIO_ROOT_PASSWORD",
                   "PREDICTIONS_OWNER_PASSWORD", "PREDICTIONS_WRITER_PASSWORD"):
        assert "${" + secret not in text, f"scheduler gets {secret}"
    assert "ports" not in scheduler  # nothing to publish
    init = (REPO / "platform" / "postgres" / "init-databases.sh").read_text()
    assert "CREATE DATABASE scheduler OWNER scheduler;" in init
