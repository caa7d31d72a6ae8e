"""Settings: one typed object, read once, passed down explicitly.

Sources, highest precedence first:
  1. the process environment (``WORKBENCH_<FIELD>``, and ``MLFLOW_TRACKING_URI``),
  2. the project's ``.env`` file (same names),
  3. the ``[workbench]`` section of the project's ``setup.cfg`` (field names),
  4. the defaults below.

The project root is the nearest folder, from the working directory up, that holds a
``setup.cfg``, ``pyproject.toml`` or ``.git``; state lives in ``<root>/.workbench`` unless
``WORKBENCH_HOME`` says otherwise.
"""
from __future__ import annotations

import configparser
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError

ENV_PREFIX = "WORKBENCH_"
_PROJECT_MARKERS = ("setup.cfg", "pyproject.toml", ".git")


@dataclass(frozen=True)
class Settings:
    """Everything the workbench can be told, with its defaults.

    Attributes:
        project_root: the data scientist's project (notebooks, data, setup.cfg).
        home: state directory: the embedded platform's store, job outputs, logs.
        host: interface the embedded platform and ``workbench lab`` bind to.
        port: the embedded tracking server's port.
        tracking_uri: where MLflow is; defaults to the embedded server's address.
        experiment: MLflow experiment used when a run names none.
        primary_metric: the metric ``compare`` sorts by and promotion gates use.
        greater_is_better: direction of ``primary_metric``.
        promotion_gates: the checks ``promote`` makes before it moves an alias, comma
            separated: ``metric`` (a new champion is not worse than the current one on
            ``primary_metric``) and ``drift`` (the candidate's last drift check did not find
            drift); empty turns them off.
        data_dir: where ``workbench demo data`` writes its example tables.
        lab_port: JupyterLab's port for ``workbench lab``.
        job_timeout: default job timeout in seconds (0 means none).
        executor: default job executor name.
        startup_timeout: seconds ``platform up`` waits for the server to answer.
        prediction_store: SQLAlchemy URL where served predictions are logged (default:
            SQLite under ``home``).
        base_image: the image the workbench and serving images are built FROM; it must
            have Python 3.11 (the host's wheels are installed in it).
        docker_network: network job and lab containers join (a compose platform's);
            empty means the host's network when the tracking server is on loopback.
        container_tracking_uri: the tracking URI as containers on ``docker_network`` see
            it (``http://mlflow:5000`` on the compose platform); empty: ``tracking_uri``.
    """

    project_root: Path
    home: Path
    host: str = "127.0.0.1"
    port: int = 5000
    tracking_uri: str = ""
    experiment: str = "workbench"
    primary_metric: str = "roc_auc"
    greater_is_better: bool = True
    promotion_gates: str = "metric,drift"
    data_dir: Path = field(default=Path("data"))
    lab_port: int = 8888
    job_timeout: float = 0.0
    executor: str = "local"
    startup_timeout: float = 90.0
    prediction_store: str = ""
    base_image: str = "python:3.11-slim"
    docker_network: str = ""
    container_tracking_uri: str = ""

    @property
    def jobs_dir(self) -> Path:
        """Where executed job notebooks are kept."""
        return self.home / "jobs"

    @property
    def prediction_store_url(self) -> str:
        return self.prediction_store or f"sqlite:///{self.home / 'predictions.db'}"

    @property
    def embedded_tracking_uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        **overrides: Any,
    ) -> Settings:
        """Read settings from the environment, ``.env`` and ``setup.cfg``.

        Args:
            environ: the environment to read (``os.environ`` when omitted).
            cwd: where to start looking for the project root.
            **overrides: values that win over every source (command-line options);
                ``None`` values are ignored.

        Raises:
            ConfigError: a value cannot be converted to its field's type.
        """
        environ = os.environ if environ is None else environ
        given_root = environ.get(ENV_PREFIX + "PROJECT_ROOT")
        root = (cwd or Path.cwd()) / given_root if given_root else find_project_root(cwd)
        root = root.resolve()
        raw: dict[str, str] = {}
        raw.update(_read_setup_cfg(root / "setup.cfg"))
        raw.update(_from_env_names(_read_dotenv(root / ".env")))
        raw.update(_from_env_names(environ))
        raw.update({k: v for k, v in overrides.items() if v is not None})

        values: dict[str, Any] = {"project_root": root}
        for f in dataclasses.fields(cls):
            if f.name in raw and f.name != "project_root":
                values[f.name] = _convert(f.name, f.type, raw[f.name])
        home = Path(values.get("home") or root / ".workbench")
        values["home"] = home if home.is_absolute() else root / home
        data_dir = Path(values.get("data_dir") or root / "data")
        values["data_dir"] = data_dir if data_dir.is_absolute() else root / data_dir
        settings = cls(**values)
        if not settings.tracking_uri:
            settings = dataclasses.replace(settings, tracking_uri=settings.embedded_tracking_uri)
        return settings

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (port changes move the default tracking URI)."""
        if "port" in changes and self.tracking_uri == self.embedded_tracking_uri:
            changes.setdefault("tracking_uri", f"http://{self.host}:{changes['port']}")
        return dataclasses.replace(self, **changes)

    def as_env(self) -> dict[str, str]:
        """The variables that hand these settings to a child process (a kernel, a job)."""
        return {
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            ENV_PREFIX + "HOME": str(self.home),
            ENV_PREFIX + "PROJECT_ROOT": str(self.project_root),
            ENV_PREFIX + "EXPERIMENT": self.experiment,
            ENV_PREFIX + "PRIMARY_METRIC": self.primary_metric,
            ENV_PREFIX + "DATA_DIR": str(self.data_dir),
            **({ENV_PREFIX + "PREDICTION_STORE": self.prediction_store} if self.prediction_store else {}),
            # Artifacts through the tracking server only (see workbench/__init__.py).
            "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
            "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "false",
        }

    def container_env(self) -> dict[str, str]:
        """``as_env()`` for a container on ``docker_network``: the tracking server by the
        name it has there."""
        env = self.as_env()
        if self.container_tracking_uri:
            env["MLFLOW_TRACKING_URI"] = self.container_tracking_uri
        return env


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder from ``start`` up that looks like a project, else ``start``."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if any((folder / marker).exists() for marker in _PROJECT_MARKERS):
            return folder
    return start


def _from_env_names(environ: Mapping[str, str | None]) -> dict[str, str]:
    out = {
        key[len(ENV_PREFIX):].lower(): value
        for key, value in environ.items()
        if key.startswith(ENV_PREFIX) and value is not None
    }
    out.pop("project_root", None)
    if environ.get("MLFLOW_TRACKING_URI"):
        out["tracking_uri"] = environ["MLFLOW_TRACKING_URI"]  # type: ignore[assignment]
    return out


def _read_dotenv(path: Path) -> dict[str, str | None]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return dict(dotenv_values(path))


def _read_setup_cfg(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    # No interpolation: a URL with %20 in it is a value, not a template.
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        raise ConfigError(f"{path}: cannot be parsed ({exc.__class__.__name__}); fix the file") from exc
    return dict(parser["workbench"]) if parser.has_section("workbench") else {}


def _convert(name: str, type_name: Any, value: Any) -> Any:
    type_name = getattr(type_name, "__name__", type_name)
    if not isinstance(value, str):
        return value
    try:
        if type_name == "int":
            return int(value)
        if type_name == "float":
            return float(value)
        if type_name == "bool":
            lowered = value.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if type_name == "Path":
            return Path(value).expanduser()
    except ValueError:
        raise ConfigError(
            f"setting {name!r} = {value!r} is not a valid {type_name}; "
            f"set {ENV_PREFIX}{name.upper()} to a {type_name} value"
        ) from None
    return value
