"""The compose platform: Postgres + MinIO + MLflow + pgAdmin + JupyterLab under docker compose.

``init`` writes the shipped compose file and a ``.env`` with random secrets into a folder;
``up`` starts the services and waits until every one is healthy (and the one-shots have
exited 0), saying what it waits for. The workbench's own images it runs are named in
``.env`` (:meth:`ComposePlatform.workbench_images`); building them is packaging's job, done
by the CLI before ``up``. Compose is driven through its CLI (the ``docker compose`` plugin
where present, else ``docker-compose``): the docker SDK has no compose API. Container and
volume state is read with the SDK.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import _docker
from workbench._version import __version__
from workbench.config import Settings
from workbench.errors import ConfigError, DockerError, PlatformError
from workbench.progress import Progress
from workbench.resources import shipped

COMPOSE_FILE = "compose.yaml"
ENV_FILE = ".env"
DEFAULT_PROJECT = "mlops-workbench"
# Secrets `init` generates; compose refuses to start while any is empty.
SECRETS = ("POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "PGADMIN_PASSWORD",
           "JUPYTER_TOKEN", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY",
           "MLFLOW_TRACKING_PASSWORD", "PREDICTIONS_OWNER_PASSWORD",
           "PREDICTIONS_WRITER_PASSWORD", "PREDICTIONS_READER_PASSWORD",
           "SCHEDULER_DB_PASSWORD")
# Only these reach Lab and job containers (and the host's clients): the non-admin tracking user.
TRACKING_CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
# The .env key naming each of the workbench's own images the platform runs -> its image name
# in packaging (``workbench image build NAME``).
IMAGE_KEYS = {"TRACKING_IMAGE": "tracking", "WORKBENCH_IMAGE": "workbench"}
REQUIRED = ("POSTGRES_USER", "PGADMIN_EMAIL", "MLFLOW_AUTH_ADMIN_USERNAME",
            "MLFLOW_TRACKING_USERNAME", *IMAGE_KEYS, *SECRETS)
# Files `init` copies next to the compose file (the compose file mounts them).
_SHIPPED_FILES = (COMPOSE_FILE, ".env.example", "postgres/init-databases.sh",
                  "postgres/prepare-prediction-store.py", "pgadmin/servers.json")
UIS = {"mlflow": ("MLFLOW_PORT", 5000, "MLflow UI"), "pgadmin": ("PGADMIN_PORT", 80, "pgAdmin"),
       "jupyter": ("JUPYTER_PORT", 8000, "JupyterLab")}


@dataclass(frozen=True)
class ServiceState:
    name: str
    state: str  # running, exited, ...
    health: str  # healthy, starting, unhealthy, none
    exit_code: int | None = None

    @property
    def ready(self) -> bool:
        if self.state == "exited":
            return self.exit_code == 0 and self.health == "none"  # a one-shot that succeeded
        return self.state == "running" and self.health in ("healthy", "none")


@dataclass(frozen=True)
class ComposeStatus:
    directory: Path
    project: str
    services: tuple[ServiceState, ...] = ()
    urls: dict[str, str] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return bool(self.services) and all(s.ready for s in self.services)

    @property
    def network(self) -> str:
        return f"{self.project}_default"


def init(directory: Path, *, force: bool = False, progress: Progress = lambda _: None,
         client: Any = None) -> Path:
    """Write the compose platform into ``directory``: the compose file, what it mounts, and a
    ``.env`` with random secrets, created with mode 0600 (never readable by others, not even
    for a moment). An existing ``.env`` is kept unless ``force``.

    Args:
        client: a docker client, to look for the project's volumes (default: a new one).

    Returns:
        The ``.env`` path.

    Raises:
        PlatformError: ``force`` while the compose project's volumes hold data made with the
            current secrets (new ones would lock the platform out of it).
        DockerError, MissingDependency: ``force``, and the engine cannot be asked.
    """
    source = shipped("platform")
    directory.mkdir(parents=True, exist_ok=True)
    env_file = directory / ENV_FILE
    if env_file.exists():
        if not force:
            _copy_shipped(source, directory)
            progress(f"kept the existing {env_file} (pass --force to write new secrets)")
            return env_file
        _refuse_with_volumes(directory, client)
    _copy_shipped(source, directory)
    values = _parse_env((source / ".env.example").read_text(encoding="utf-8"))
    values.update({key: secrets.token_urlsafe(24) for key in SECRETS})
    values["MINIO_ROOT_USER"] = "workbench-" + secrets.token_hex(4)
    for key, name in IMAGE_KEYS.items():
        values[key] = values.get(key) or f"mlops-workbench/{name}:{__version__}"
    text = "".join(f"{key}={value}\n" for key, value in values.items())
    _write_private(env_file, "# Written by `workbench platform init`: random secrets; keep this "
                             "file private.\n" + text)
    progress(f"wrote {directory / COMPOSE_FILE} and {env_file} (random secrets, mode 0600)")
    return env_file


def _copy_shipped(source: Path, directory: Path) -> None:
    for name in _SHIPPED_FILES:
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.resolve() != directory.resolve():
            shutil.copy2(source / name, target)


def _write_private(path: Path, text: str) -> None:
    """Write ``path`` as a new 0600 file, then move it into place (atomic, never wider)."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _refuse_with_volumes(directory: Path, client: Any) -> None:
    """Raise PlatformError when the project of ``directory``'s ``.env`` has volumes."""
    current = _parse_env((directory / ENV_FILE).read_text(encoding="utf-8"))
    project = current.get("COMPOSE_PROJECT_NAME") or DEFAULT_PROJECT
    client = client or _docker.get_client()
    with _docker.api_errors(f"list the volumes of the compose project '{project}'"):
        volumes = client.volumes.list(filters={"label": f"com.docker.compose.project={project}"})
    if volumes:
        names = ", ".join(sorted(v.name for v in volumes))
        raise PlatformError(
            f"the compose project '{project}' keeps data made with the current secrets "
            f"({names}); new secrets would lock the platform out of it: delete it with "
            f"`workbench platform down --compose --volumes --dir {directory}`, then run "
            "init --force again, or keep the current .env"
        )


class ComposePlatform:
    """Drive the compose platform in ``directory`` (default: ``<project>/platform``).

    Args:
        overrides: extra compose files layered on the main one (``-f``), e.g. the CI stand-ins.
    """

    def __init__(self, settings: Settings, directory: Path | None = None,
                 overrides: Sequence[Path] = ()) -> None:
        self.settings = settings
        self.directory = (directory or settings.project_root / "platform").resolve()
        self.overrides = tuple(Path(p).resolve() for p in overrides)

    # -- configuration --------------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        path = self.directory / ENV_FILE
        return _parse_env(path.read_text(encoding="utf-8")) if path.is_file() else {}

    @property
    def project(self) -> str:
        return self.env.get("COMPOSE_PROJECT_NAME") or DEFAULT_PROJECT

    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.env.get('MLFLOW_PORT') or 5000}"

    def tracking_credentials(self) -> dict[str, str]:
        """``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` of the non-admin tracking user."""
        env = self.env
        return {key: env[key] for key in TRACKING_CREDENTIALS if env.get(key)}

    def workbench_images(self) -> dict[str, str]:
        """The workbench's own images the platform runs: packaging image name -> reference
        (from ``.env``). They must be on the engine before :meth:`up`."""
        env = self.env
        return {name: env[key] for key, name in IMAGE_KEYS.items() if env.get(key)}

    def check(self) -> None:
        """Raises ConfigError when the folder has no compose file or a secret is empty."""
        if not (self.directory / COMPOSE_FILE).is_file():
            raise ConfigError(f"no {COMPOSE_FILE} in {self.directory}; write one with "
                              f"`workbench platform init {self.directory}`")
        missing = [key for key in REQUIRED if not self.env.get(key)]
        if missing:
            raise ConfigError(f"{self.directory / ENV_FILE} lacks {', '.join(missing)}; run "
                              f"`workbench platform init {self.directory} --force` for new secrets")

    # -- commands -----------------------------------------------------------------------------
    def up(self, progress: Progress = lambda _: None, *, timeout: float = 300) -> ComposeStatus:
        """Start the platform and wait until every service is healthy.

        The workbench's own images (:meth:`workbench_images`) must be on the engine already.

        Raises:
            ConfigError: no compose file, or a secret is missing.
            DockerError: no engine.
            PlatformError: compose failed, or a service is not healthy within ``timeout``.
        """
        self.check()
        client = _docker.get_client()
        started = time.monotonic()
        progress(f"starting the compose platform '{self.project}' in {self.directory}")
        self.compose("up", "-d", progress=progress)
        status = self.wait_healthy(progress, timeout=timeout, client=client)
        progress(f"all {len(status.services)} services ready in {time.monotonic() - started:.0f} s")
        return status

    def wait_healthy(self, progress: Progress = lambda _: None, *, timeout: float = 300,
                     client: Any = None) -> ComposeStatus:
        """Wait until every started service is ready; say each change of state."""
        client = client or _docker.get_client()
        deadline = time.monotonic() + timeout
        seen: dict[str, str] = {}
        while True:
            status = self.status(client)
            for service in status.services:
                label = service.health if service.health != "none" else service.state
                if seen.get(service.name) != label:
                    seen[service.name] = label
                    progress(f"  {service.name}: {label}")
                if service.state == "exited" and service.exit_code not in (0, None):
                    raise PlatformError(f"service {service.name} exited with status "
                                        f"{service.exit_code}: {self._last_log(service.name)}")
            if status.healthy:
                return status
            if time.monotonic() > deadline:
                waiting = [s.name for s in status.services if not s.ready]
                first = waiting[0] if waiting else "-"
                raise PlatformError(
                    f"not healthy after {timeout:.0f} s: {', '.join(waiting) or 'no services'}; "
                    f"last log line of {first}: {self._last_log(first) if waiting else '-'}; "
                    "see `workbench platform logs --compose`")
            time.sleep(1)

    def down(self, progress: Progress = lambda _: None, *, volumes: bool = False) -> None:
        """Stop and remove the containers (``volumes``: the data too)."""
        self.check()
        self.compose("down", *(["--volumes"] if volumes else []), progress=progress)

    def status(self, client: Any = None) -> ComposeStatus:
        """Each service's state and health, read from the engine."""
        client = client or _docker.get_client()
        with _docker.api_errors("list the platform's containers"):
            containers = client.containers.list(
                all=True, filters={"label": f"com.docker.compose.project={self.project}"})
        services = []
        for container in containers:
            state = container.attrs["State"]
            name = container.labels.get("com.docker.compose.service", container.name)
            services.append(ServiceState(name, state.get("Status", "unknown"),
                                         state.get("Health", {}).get("Status", "none"),
                                         state.get("ExitCode")))
        env = self.env
        urls = {service: f"http://127.0.0.1:{env.get(key) or default}" for service, (key, default, _)
                in UIS.items()}
        if env.get("JUPYTER_TOKEN"):
            urls["jupyter"] += "/lab?token=" + env["JUPYTER_TOKEN"]
        return ComposeStatus(self.directory, self.project,
                             tuple(sorted(services, key=lambda s: s.name)), urls)

    def logs(self, lines: int = 50, service: str | None = None) -> str:
        return self.compose("logs", "--no-color", "--tail", str(lines),
                            *([service] if service else []), capture=True)

    def compose(self, *args: str, progress: Progress = lambda _: None, capture: bool = False) -> str:
        """Run a compose command for this platform.

        Raises:
            DockerError: neither ``docker compose`` nor ``docker-compose`` is installed.
            PlatformError: the command failed (its last output lines are in the message).
        """
        files: list[str] = []
        for path in (self.directory / COMPOSE_FILE, *self.overrides):
            files += ["-f", str(path)]
        command = [*compose_command(), "--project-directory", str(self.directory),
                   "--env-file", str(self.directory / ENV_FILE), *files, *args]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, cwd=self.directory)
        output: list[str] = []
        assert process.stdout is not None  # PIPE was asked for
        for line in process.stdout:
            output.append(line.rstrip())
            if not capture:
                progress(line.rstrip())
        if process.wait() != 0:
            tail = "; ".join(line for line in output[-5:] if line.strip())
            raise PlatformError(f"`{' '.join(command[:2])} {' '.join(args)}` failed: {tail}")
        return "\n".join(output)

    def _last_log(self, service: str) -> str:
        try:
            text = self.logs(5, service)
        except PlatformError:
            return "(no log)"
        lines = [line for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else "(no log)"


def compose_command() -> list[str]:
    """``docker compose`` (the plugin) where it works, else ``docker-compose``."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 check=False).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    raise DockerError("neither the `docker compose` plugin nor `docker-compose` is installed; "
                      "install one (e.g. apt-get install docker-compose)")


def _parse_env(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values
