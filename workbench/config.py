"""Settings: one typed object, read once, passed down explicitly.

Sources, highest precedence first:
  1. overrides given to :meth:`Settings.from_env` (command-line options),
  2. the process environment (``WORKBENCH_<FIELD>``, and ``MLFLOW_TRACKING_URI``,
     ``MLFLOW_TRACKING_USERNAME``, ``MLFLOW_TRACKING_PASSWORD``),
  3. the project's ``.env`` file (same names),
  4. the ``[workbench]`` section of the project's ``setup.cfg`` (field names),
  5. the defaults below.

The values are read and checked by pydantic-settings: each source above is a settings
source, pydantic converts and validates. A value of the wrong type is one
:class:`~workbench.errors.ConfigError` line naming the variable and the type it needs; a
``WORKBENCH_*`` name that is no setting is an :class:`UnknownSetting` warning naming the
closest one (a typo would otherwise be ignored without a word).

The project root is the nearest folder, from the working directory up, that holds a
``setup.cfg``, ``pyproject.toml`` or ``.git``; state lives in ``<root>/.workbench`` unless
``WORKBENCH_HOME`` says otherwise.
"""
from __future__ import annotations

import configparser
import difflib
import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from workbench.errors import ConfigError
from workbench.tasks import default_greater_is_better

ENV_PREFIX = "WORKBENCH_"
#: setup.cfg's section of Spark properties (``spark.executor.memory = 4g``).
SPARK_SECTION = "workbench.spark"
_PROJECT_MARKERS = ("setup.cfg", "pyproject.toml", ".git")

#: ``WORKBENCH_*`` variables that are not settings fields but are read elsewhere: the project
#: root (read before the settings, to find them), the traceback switch of the faces, the
#: notebook a job runs, the compose platform's image, and the serving server's own variables.
KNOWN_VARIABLES = frozenset({"WORKBENCH_PROJECT_ROOT", "WORKBENCH_DEBUG", "WORKBENCH_NOTEBOOK",
                             "WORKBENCH_IMAGE"})
KNOWN_PREFIXES = ("WORKBENCH_SERVE_",)

#: MLflow's own names, read like ``WORKBENCH_<FIELD>`` (and winning over it): MLflow's client
#: reads them too, so one variable configures both.
MLFLOW_ALIASES = {
    "MLFLOW_TRACKING_URI": "tracking_uri",
    "MLFLOW_TRACKING_USERNAME": "tracking_username",
    "MLFLOW_TRACKING_PASSWORD": "tracking_password",
}


class UnknownSetting(UserWarning):
    """A ``WORKBENCH_*`` variable (or a ``setup.cfg`` key) that no setting has."""


def debug_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``WORKBENCH_DEBUG`` asks the faces to show tracebacks."""
    value = (os.environ if environ is None else environ).get(ENV_PREFIX + "DEBUG", "")
    return value.strip().lower() in {"1", "true", "yes", "on"}


class Settings(BaseSettings):
    """Everything the workbench can be told, with its defaults.

    Build it with :meth:`from_env`; ``Settings()`` reads the same sources from the working
    directory and ``os.environ``.

    Attributes:
        project_root: the data scientist's project (notebooks, data, setup.cfg).
        home: state directory: the embedded platform's store, job outputs, logs.
        host: interface the embedded platform and ``workbench lab`` bind to.
        port: the embedded tracking server's port.
        tracking_uri: where MLflow is; defaults to the embedded server's address.
        tracking_username: the MLflow user (a server with authentication on, e.g. the
            compose platform); exported as ``MLFLOW_TRACKING_USERNAME``.
        tracking_password: that user's password (never printed); exported as
            ``MLFLOW_TRACKING_PASSWORD``.
        experiment: MLflow experiment used when a run names none.
        primary_metric: the metric ``compare`` sorts by and promotion gates use.
        greater_is_better: direction of ``primary_metric``; when unset, its name decides
            (``rmse``, ``mae``, ``log_loss``... lower is better, see
            :func:`workbench.tasks.default_greater_is_better`; anything else higher).
        promotion_gates: the checks ``promote`` makes before it moves an alias, comma
            separated: ``metric`` (a new champion is not worse than the current one on
            ``primary_metric``) and ``drift`` (the candidate's last drift check did not find
            drift) and ``performance`` (the candidate's latest performance on labels is not
            below ``performance_threshold``, nor, for a champion, worse than the current
            champion's by more than ``performance_margin``); empty turns them off.
        performance_threshold: the lowest latest performance (``primary_metric`` on labelled
            predictions) the performance gate lets through; unset: no floor.
        performance_margin: how much worse than the champion's latest performance a new
            champion's may be; unset: not compared.
        data_dir: where ``workbench demo data`` writes its example tables.
        lab_port: JupyterLab's port for ``workbench lab``.
        job_timeout: default job timeout in seconds (0 means none).
        executor: default job executor name.
        startup_timeout: seconds ``platform up`` waits for the server to answer.
        prediction_store: SQLAlchemy URL where served predictions are logged (default:
            SQLite under ``home``).
        label_id_column: the input column that identifies a prediction for the labels that
            arrive later (``customer_id``): the server and ``predict --log`` log its values
            beside each record, which ``monitor labels`` (whose default ``--id-column`` it is)
            joins on without parsing the logged inputs; empty: none.
        base_image: the image the workbench and serving images are built FROM; it must
            have Python 3.11 (the host's wheels are installed in it).
        docker_network: network job and lab containers join (a compose platform's);
            empty means the host's network when the tracking server is on loopback.
        container_tracking_uri: the tracking URI as containers on ``docker_network`` see
            it (``http://mlflow:5000`` on the compose platform); empty: ``tracking_uri``.
        policies_dir: the folder of the retraining policies (``policies/<instance>.yaml``)
            the scheduler loads.
        scheduler_store: SQLAlchemy URL of the scheduler's job store and history (default:
            SQLite under ``home``; the compose platform's Postgres there).
        webhook_url: where a retrain proposal is announced (POST, JSON); empty: nowhere.
        webhook_secret: the key of the body's HMAC-SHA256 signature (never printed); a
            proposal is not sent unsigned.
        spark_master: the Spark master the Spark engine uses (``local[*]``,
            ``spark://HOST:PORT``, ``yarn``, ``k8s://...``).
        spark_driver_host: the address the Spark driver binds to and executors reach it at
            (a cluster's executors need one they can reach).
        spark_ui: start Spark's web UI (off: it would listen on a port of its own).
        spark_conf: more Spark properties: ``key=value`` pairs separated by ``;`` (or a
            JSON object) in ``WORKBENCH_SPARK_CONF``, or the ``[workbench.spark]`` section
            of ``setup.cfg``.
        template_source: the folder of the copier template ``workbench new`` renders and
            ``workbench template update`` updates to (default: the one shipped in the
            package, ``workbench/project/template``).
        template_repository: the per-user git repository each version of the template is
            committed and tagged in, which rendered projects record as their source (default:
            ``mlops-workbench/template`` in the user's data directory).
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", str_strip_whitespace=True,
        # Each source decides what "unset" is; no field is read from anywhere by its own name.
        env_ignore_empty=True,
    )

    project_root: Path
    home: Path
    host: str = "127.0.0.1"
    port: int = 5000
    tracking_uri: str = ""
    tracking_username: str = ""
    tracking_password: SecretStr = SecretStr("")
    experiment: str = "workbench"
    primary_metric: str = "roc_auc"
    greater_is_better: bool = True
    promotion_gates: str = "metric,drift,performance"
    performance_threshold: float | None = None
    performance_margin: float | None = 0.02
    data_dir: Path = Field(default=Path("data"))
    lab_port: int = 8888
    job_timeout: float = 0.0
    executor: str = "local"
    startup_timeout: float = 90.0
    prediction_store: str = ""
    label_id_column: str = ""
    base_image: str = "python:3.11-slim"
    docker_network: str = ""
    container_tracking_uri: str = ""
    policies_dir: Path = Field(default=Path("policies"))
    scheduler_store: str = ""
    webhook_url: str = ""
    webhook_secret: SecretStr = SecretStr("")
    spark_master: str = "local[*]"
    spark_driver_host: str = "127.0.0.1"
    spark_ui: bool = False
    spark_conf: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    template_source: Path | None = None
    template_repository: Path | None = None

    def __init__(self, **values: Any) -> None:
        build = _BUILD.get() or _Build(os.environ, find_project_root())
        with _building(build):
            try:
                super().__init__(**values)
            except ValidationError as error:
                raise ConfigError(_one_line(error, build)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest precedence first. The environment and .env are read from the mappings of
        # the build in progress (from_env's arguments), not straight from os.environ.
        build = _current_build()
        return (
            init_settings,
            _MappingSource(settings_cls, build.environ, "the environment"),
            _MappingSource(settings_cls, _read_dotenv(build.root / ".env"), build.root / ".env"),
            _SetupCfgSource(settings_cls, build.root / "setup.cfg"),
        )

    @field_validator("spark_conf", mode="before")
    @classmethod
    def _spark_properties(cls, value: Any) -> Any:
        return parse_properties(value) if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _paths_from_project_root(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        root = Path(data.get("project_root") or _current_build().root)
        data["project_root"] = root
        for name, default in (("home", ".workbench"), ("data_dir", "data"),
                              ("policies_dir", "policies")):
            given = data.get(name)
            path = Path(given).expanduser() if given else Path(default)
            data[name] = path if path.is_absolute() else root / path
        for name in ("template_source", "template_repository"):
            if data.get(name):  # unset means the default, decided where it is used
                path = Path(data[name]).expanduser()
                data[name] = path if path.is_absolute() else root / path
        return data

    @model_validator(mode="before")
    @classmethod
    def _direction_from_metric(cls, data: Any) -> Any:
        # Setting primary_metric = rmse alone must not leave the gate preferring larger errors.
        if isinstance(data, dict) and data.get("greater_is_better") in (None, ""):
            data["greater_is_better"] = default_greater_is_better(
                str(data.get("primary_metric") or cls.model_fields["primary_metric"].default))
        return data

    @model_validator(mode="after")
    def _default_tracking_uri(self) -> Settings:
        if not self.tracking_uri:
            # The model is frozen; this is its construction, not a change.
            object.__setattr__(self, "tracking_uri", self.embedded_tracking_uri)
        return self

    @property
    def jobs_dir(self) -> Path:
        """Where executed job notebooks are kept."""
        return self.home / "jobs"

    @property
    def prediction_store_url(self) -> str:
        return self.prediction_store or f"sqlite:///{self.home / 'predictions.db'}"

    @property
    def scheduler_store_url(self) -> str:
        return self.scheduler_store or f"sqlite:///{self.home / 'scheduler.db'}"

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
            ConfigError: a value cannot be converted to its field's type, an override names
                no setting, or ``setup.cfg`` cannot be parsed.

        Warns:
            UnknownSetting: a ``WORKBENCH_*`` variable or ``setup.cfg`` key names no setting.
        """
        environ = os.environ if environ is None else environ
        given_root = environ.get(ENV_PREFIX + "PROJECT_ROOT")
        root = (cwd or Path.cwd()) / given_root if given_root else find_project_root(cwd)
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = sorted(set(given) - set(cls.model_fields) - {"project_root"})
        if unknown:
            raise ConfigError(f"no setting named {', '.join(map(repr, unknown))}; "
                              f"settings: {', '.join(cls.model_fields)}")
        with _building(_Build(environ, root.resolve(), frozenset(given))):
            return cls(**given)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (port changes move the default tracking URI)."""
        if "port" in changes and self.tracking_uri == self.embedded_tracking_uri:
            changes.setdefault("tracking_uri", f"http://{self.host}:{changes['port']}")
        for secret in ("tracking_password", "webhook_secret"):
            if isinstance(changes.get(secret), str):
                changes[secret] = SecretStr(changes[secret])
        return self.model_copy(update=changes)

    def as_env(self) -> dict[str, str]:
        """The variables that hand these settings to a child process (a kernel, a job)."""
        password = self.tracking_password.get_secret_value()
        return {
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            ENV_PREFIX + "HOME": str(self.home),
            ENV_PREFIX + "PROJECT_ROOT": str(self.project_root),
            ENV_PREFIX + "EXPERIMENT": self.experiment,
            ENV_PREFIX + "PRIMARY_METRIC": self.primary_metric,
            # Only a direction the metric's name does not imply: a child given another
            # primary metric on top of these variables then derives that one's direction.
            **({ENV_PREFIX + "GREATER_IS_BETTER": "true" if self.greater_is_better else "false"}
               if self.greater_is_better != default_greater_is_better(self.primary_metric)
               else {}),
            ENV_PREFIX + "DATA_DIR": str(self.data_dir),
            **({ENV_PREFIX + "PREDICTION_STORE": self.prediction_store} if self.prediction_store else {}),
            **({ENV_PREFIX + "LABEL_ID_COLUMN": self.label_id_column}
               if self.label_id_column else {}),
            # MLflow's client reads these itself (basic auth on the compose platform).
            **({"MLFLOW_TRACKING_USERNAME": self.tracking_username} if self.tracking_username else {}),
            **({"MLFLOW_TRACKING_PASSWORD": password} if password else {}),
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


def parse_properties(text: str) -> dict[str, str]:
    """``key=value`` pairs separated by ``;`` or new lines, or a JSON object, as a dict.

    Raises:
        ValueError: a pair without ``=``, or JSON that is not an object (pydantic turns it
            into the settings' one-line error).
    """
    text = text.strip()
    if text.startswith("{"):
        import json

        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a JSON object of Spark properties is needed")
        return {str(k): str(v) for k, v in data.items()}
    properties: dict[str, str] = {}
    for pair in (p.strip() for p in text.replace("\n", ";").split(";")):
        if not pair:
            continue
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise ValueError(f"{pair!r} is not key=value")
        properties[key.strip()] = value.strip()
    return properties


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder from ``start`` up that looks like a project, else ``start``."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if any((folder / marker).exists() for marker in _PROJECT_MARKERS):
            return folder
    return start


# -- the build in progress: what from_env was given, and where each value came from ----------
@dataclass
class _Build:
    environ: Mapping[str, str | None]
    root: Path
    overridden: frozenset[str] = frozenset()
    #: field -> where its value came from, filled by the sources (highest precedence last).
    origins: dict[str, str] = field(default_factory=dict)


_BUILD: ContextVar[_Build | None] = ContextVar("workbench_settings_build", default=None)


def _current_build() -> _Build:
    build = _BUILD.get()
    # Settings.__init__ always sets one; outside a construction the defaults are read.
    return build if build is not None else _Build(os.environ, find_project_root())


@contextmanager
def _building(build: _Build) -> Iterator[None]:
    token = _BUILD.set(build)
    try:
        yield
    finally:
        _BUILD.reset(token)


class _MappingSource(EnvSettingsSource):
    """``WORKBENCH_<FIELD>`` (and MLflow's names) from a mapping: the environment or ``.env``.

    The prefix is matched exactly (``workbench_port`` is not read); the rest of the name
    ignores case, as it always has.
    """

    def __init__(self, settings_cls: type[BaseSettings], mapping: Mapping[str, str | None],
                 where: str | Path) -> None:
        self._mapping, self._where = mapping, str(where)
        super().__init__(settings_cls, case_sensitive=False, env_prefix=ENV_PREFIX,
                         env_ignore_empty=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        fields = set(self.settings_cls.model_fields) - {"project_root"}
        found: dict[str, str] = {}
        for key, value in self._mapping.items():
            if not key.startswith(ENV_PREFIX) or value is None or value == "":
                continue
            name = key[len(ENV_PREFIX):].lower()
            if name in fields:
                # Stray spaces around a value are never meant (a password's excepted).
                found[name] = value if name == "tracking_password" else value.strip()
            elif key not in KNOWN_VARIABLES and not key.startswith(KNOWN_PREFIXES):
                _warn_unknown(key, f"in {self._where}", fields, upper=True)
        for key, name in MLFLOW_ALIASES.items():
            if self._mapping.get(key):
                found[name] = self._mapping[key]  # type: ignore[assignment]
        build = _current_build()
        for name in found:
            variable = next((k for k, v in MLFLOW_ALIASES.items() if v == name and self._mapping.get(k)),
                            ENV_PREFIX + name.upper())
            build.origins.setdefault(name, f"{variable} in {self._where}")
        return {ENV_PREFIX.lower() + name: value for name, value in found.items()}


class _SetupCfgSource(PydanticBaseSettingsSource):
    """The ``[workbench]`` section of ``setup.cfg``, keys named as the fields."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self._values: dict[str, Any] = dict(_read_setup_cfg(path))
        fields = set(settings_cls.model_fields) - {"project_root"}
        build = _current_build()
        for key in list(self._values):
            if key not in fields:
                _warn_unknown(key, f"in the [workbench] section of {path}", fields, upper=False)
                del self._values[key]
            else:
                build.origins.setdefault(key, f"{key} in {path} [workbench]")
        spark = _read_setup_cfg(path, SPARK_SECTION)
        if spark and "spark_conf" not in self._values:
            # Spark's own property names, as in spark-defaults.conf.
            self._values["spark_conf"] = spark
            build.origins.setdefault("spark_conf", f"{path} [{SPARK_SECTION}]")

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


def _warn_unknown(name: str, where: str, fields: set[str], *, upper: bool) -> None:
    stem = name[len(ENV_PREFIX):].lower() if upper else name.lower()
    close = difflib.get_close_matches(stem, sorted(fields), n=1, cutoff=0.6)
    spell = (lambda f: ENV_PREFIX + f.upper()) if upper else (lambda f: f)
    hint = f"; did you mean {spell(close[0])}?" if close else "; it is ignored"
    warnings.warn(f"{name} {where} is not a workbench setting{hint}", UnknownSetting, stacklevel=2)


def _read_dotenv(path: Path) -> dict[str, str | None]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return dict(dotenv_values(path))


def _read_setup_cfg(path: Path, section: str = "workbench") -> dict[str, str]:
    if not path.is_file():
        return {}
    # No interpolation: a URL with %20 in it is a value, not a template.
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        raise ConfigError(f"{path}: cannot be parsed ({exc.__class__.__name__}); fix the file") from exc
    if not parser.has_section(section):
        return {}
    if section == SPARK_SECTION:
        # configparser lowercases keys; Spark's property names are case-sensitive.
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read(path, encoding="utf-8")
    return dict(parser[section])


_EXPECTED = {"int": "an integer", "float": "a number", "float | none": "a number",
             "bool": "true or false", "path": "a path", "str": "text", "secretstr": "text",
             "dict": "key=value pairs (k1=v1;k2=v2)"}


def _one_line(error: ValidationError, build: _Build) -> str:
    """The first bad value as one line: the setting, where it came from, what it needs."""
    problem = error.errors(include_url=False)[0]
    name = str(problem["loc"][0]) if problem["loc"] else "?"
    annotation = Settings.model_fields[name].annotation if name in Settings.model_fields else None
    kind = getattr(annotation, "__name__", str(annotation)).lower()
    expected = _EXPECTED.get(kind, kind)
    shown = "'***'" if name in {"tracking_password", "webhook_secret"} else repr(problem.get("input"))
    origin = ("an override" if name in build.overridden
              else build.origins.get(name, f"{ENV_PREFIX}{name.upper()}"))
    variable = ENV_PREFIX + name.upper()
    return (f"setting {name!r} = {shown} (from {origin}) is not {expected}; "
            f"set {variable} to {expected}")
