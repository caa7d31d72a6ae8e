"""Settings: precedence of defaults, setup.cfg, .env, the environment and overrides."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from workbench.config import Settings, UnknownSetting, find_project_root
from workbench.engines.spark import session_conf
from workbench.errors import ConfigError


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """An empty project folder (a marker so the root search stops here)."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text("")
    return root


def write_cfg(root: Path, body: str) -> None:
    (root / "setup.cfg").write_text("[metadata]\nname = demo\n\n[workbench]\n" + body, encoding="utf-8")


def write_dotenv(root: Path, body: str) -> None:
    (root / ".env").write_text(body, encoding="utf-8")


def test_defaults(project):
    s = Settings.from_env(environ={}, cwd=project)
    assert s.project_root == project.resolve()
    assert s.home == project.resolve() / ".workbench"
    assert s.jobs_dir == s.home / "jobs"
    assert s.data_dir == project.resolve() / "data"
    assert s.host == "127.0.0.1"
    assert s.port == 5000
    assert s.tracking_uri == "http://127.0.0.1:5000"
    assert s.experiment == "workbench"
    assert s.primary_metric == "roc_auc"
    assert s.greater_is_better is True
    assert s.lab_port == 8888
    assert s.job_timeout == 0.0
    assert s.executor == "local"
    assert s.startup_timeout == 90.0


def test_setup_cfg_section_is_read(project):
    write_cfg(project, "experiment = fromcfg\nport = 6001\ngreater_is_better = false\njob_timeout = 12.5\n")
    s = Settings.from_env(environ={}, cwd=project)
    assert s.experiment == "fromcfg"
    assert s.port == 6001 and isinstance(s.port, int)
    assert s.greater_is_better is False
    assert s.job_timeout == 12.5 and isinstance(s.job_timeout, float)
    assert s.tracking_uri == "http://127.0.0.1:6001"


def test_setup_cfg_without_workbench_section_gives_defaults(project):
    (project / "setup.cfg").write_text("[metadata]\nname = demo\n[other]\nport = 1\n")
    s = Settings.from_env(environ={}, cwd=project)
    assert s.port == 5000
    assert s.experiment == "workbench"


def test_dotenv_overrides_setup_cfg(project):
    write_cfg(project, "experiment = fromcfg\nport = 6001\nprimary_metric = f1\n")
    write_dotenv(project, "WORKBENCH_EXPERIMENT=fromdotenv\nWORKBENCH_PORT=6002\n")
    s = Settings.from_env(environ={}, cwd=project)
    assert s.experiment == "fromdotenv"
    assert s.port == 6002
    assert s.primary_metric == "f1"  # only in setup.cfg: still read


def test_environ_overrides_dotenv(project):
    write_cfg(project, "experiment = fromcfg\nexecutor = cfg-exec\n")
    write_dotenv(project, "WORKBENCH_EXPERIMENT=fromdotenv\nWORKBENCH_PORT=6002\n")
    s = Settings.from_env(environ={"WORKBENCH_EXPERIMENT": "fromenv"}, cwd=project)
    assert s.experiment == "fromenv"
    assert s.port == 6002
    assert s.executor == "cfg-exec"


def test_overrides_win_over_everything_and_none_is_ignored(project):
    write_cfg(project, "experiment = fromcfg\nport = 6001\n")
    write_dotenv(project, "WORKBENCH_PORT=6002\nWORKBENCH_PRIMARY_METRIC=f1\n")
    environ = {"WORKBENCH_PORT": "6003", "WORKBENCH_EXPERIMENT": "fromenv"}
    s = Settings.from_env(environ=environ, cwd=project, port=7000, experiment=None, primary_metric="auc")
    assert s.port == 7000
    assert s.experiment == "fromenv"  # None override ignored
    assert s.primary_metric == "auc"
    assert s.tracking_uri == "http://127.0.0.1:7000"


def test_string_override_is_converted(project):
    s = Settings.from_env(environ={}, cwd=project, port="7001", greater_is_better="no")
    assert s.port == 7001
    assert s.greater_is_better is False


def test_environ_names_are_case_sensitive_prefix(project):
    s = Settings.from_env(environ={"workbench_port": "1", "OTHER_PORT": "2"}, cwd=project)
    assert s.port == 5000


def test_mlflow_tracking_uri_sets_tracking_uri(project):
    s = Settings.from_env(environ={"MLFLOW_TRACKING_URI": "http://remote:9999"}, cwd=project)
    assert s.tracking_uri == "http://remote:9999"
    assert s.port == 5000  # the embedded server's port is unaffected


def test_mlflow_tracking_uri_in_dotenv(project):
    write_dotenv(project, "MLFLOW_TRACKING_URI=http://dotenv:1\n")
    assert Settings.from_env(environ={}, cwd=project).tracking_uri == "http://dotenv:1"
    s = Settings.from_env(environ={"MLFLOW_TRACKING_URI": "http://env:2"}, cwd=project)
    assert s.tracking_uri == "http://env:2"


def test_empty_mlflow_tracking_uri_is_ignored(project):
    s = Settings.from_env(environ={"MLFLOW_TRACKING_URI": ""}, cwd=project)
    assert s.tracking_uri == "http://127.0.0.1:5000"


def test_explicit_tracking_uri_from_setup_cfg(project):
    write_cfg(project, "tracking_uri = http://cfg:1\n")
    assert Settings.from_env(environ={}, cwd=project).tracking_uri == "http://cfg:1"


@pytest.mark.parametrize(
    ("environ", "uri"),
    [
        ({"WORKBENCH_HOST": "0.0.0.0"}, "http://0.0.0.0:5000"),
        ({"WORKBENCH_PORT": "5123"}, "http://127.0.0.1:5123"),
        ({"WORKBENCH_HOST": "localhost", "WORKBENCH_PORT": "8080"}, "http://localhost:8080"),
    ],
)
def test_default_tracking_uri_follows_host_and_port(project, environ, uri):
    s = Settings.from_env(environ=environ, cwd=project)
    assert s.tracking_uri == uri
    assert s.embedded_tracking_uri == uri


def test_relative_home_resolves_against_project_root(project):
    nested = project / "notebooks" / "deep"
    nested.mkdir(parents=True)
    s = Settings.from_env(environ={"WORKBENCH_HOME": "state/wb"}, cwd=nested)
    assert s.home == project.resolve() / "state" / "wb"
    assert s.jobs_dir == project.resolve() / "state" / "wb" / "jobs"


def test_absolute_home_is_kept(project, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    s = Settings.from_env(environ={"WORKBENCH_HOME": str(elsewhere)}, cwd=project)
    assert s.home == elsewhere


def test_relative_data_dir_resolves_against_project_root(project):
    write_dotenv(project, "WORKBENCH_DATA_DIR=tables\n")
    s = Settings.from_env(environ={}, cwd=project)
    assert s.data_dir == project.resolve() / "tables"


def test_project_root_found_by_walking_up_to_setup_cfg(tmp_path):
    root = tmp_path / "repo"
    nested = root / "notebooks" / "2024" / "jan"
    nested.mkdir(parents=True)
    write_cfg(root, "experiment = walked\n")
    assert find_project_root(nested) == root.resolve()
    s = Settings.from_env(environ={}, cwd=nested)
    assert s.project_root == root.resolve()
    assert s.experiment == "walked"
    assert s.home == root.resolve() / ".workbench"


def test_project_root_stops_at_nearest_marker(tmp_path):
    outer = tmp_path / "outer"
    inner = outer / "inner"
    nested = inner / "sub"
    nested.mkdir(parents=True)
    write_cfg(outer, "experiment = outer\n")
    (inner / ".git").mkdir()
    s = Settings.from_env(environ={}, cwd=nested)
    assert s.project_root == inner.resolve()
    assert s.experiment == "workbench"  # outer setup.cfg is not this project's


def test_dotenv_in_nested_cwd_is_not_read(project):
    nested = project / "sub"
    nested.mkdir()
    write_dotenv(nested, "WORKBENCH_PORT=1234\n")
    assert Settings.from_env(environ={}, cwd=nested).port == 5000


def test_workbench_project_root_in_environ_wins(project, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    write_cfg(other, "experiment = other\n")
    s = Settings.from_env(environ={"WORKBENCH_PROJECT_ROOT": str(other)}, cwd=project)
    assert s.project_root == other
    assert s.experiment == "other"
    assert s.home == other / ".workbench"


@pytest.mark.parametrize(
    ("variable", "field", "value"),
    [
        ("WORKBENCH_PORT", "port", "abc"),
        ("WORKBENCH_LAB_PORT", "lab_port", "8888.5"),
        ("WORKBENCH_JOB_TIMEOUT", "job_timeout", "soon"),
        ("WORKBENCH_GREATER_IS_BETTER", "greater_is_better", "maybe"),
    ],
)
def test_bad_value_raises_config_error_naming_the_variable(project, variable, field, value):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(environ={variable: value}, cwd=project)
    message = str(info.value)
    assert variable in message
    assert repr(field) in message
    assert repr(value) in message


def test_bad_value_in_setup_cfg_raises_config_error(project):
    write_cfg(project, "port = fivethousand\n")
    with pytest.raises(ConfigError, match="WORKBENCH_PORT"):
        Settings.from_env(environ={}, cwd=project)


def test_unparsable_setup_cfg_raises_config_error(project):
    (project / "setup.cfg").write_text("[workbench]\nport = 1\nport = 2\n")
    with pytest.raises(ConfigError, match=r"setup\.cfg"):
        Settings.from_env(environ={}, cwd=project)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", True),
        ("true", True),
        ("True", True),
        ("YES", True),
        ("on", True),
        (" true ", True),
        ("0", False),
        ("false", False),
        ("FALSE", False),
        ("no", False),
        ("off", False),
    ],
)
def test_bool_parsing(project, text, expected):
    s = Settings.from_env(environ={"WORKBENCH_GREATER_IS_BETTER": text}, cwd=project)
    assert s.greater_is_better is expected


def test_replace_port_moves_default_tracking_uri(project):
    s = Settings.from_env(environ={}, cwd=project)
    moved = s.replace(port=5555)
    assert moved.port == 5555
    assert moved.tracking_uri == "http://127.0.0.1:5555"
    assert s.port == 5000 and s.tracking_uri == "http://127.0.0.1:5000"  # original untouched


def test_replace_port_keeps_explicit_tracking_uri(project):
    s = Settings.from_env(environ={"MLFLOW_TRACKING_URI": "http://remote:9999"}, cwd=project)
    moved = s.replace(port=5555)
    assert moved.port == 5555
    assert moved.tracking_uri == "http://remote:9999"


def test_replace_port_with_explicit_tracking_uri_in_same_call(project):
    s = Settings.from_env(environ={}, cwd=project)
    moved = s.replace(port=5555, tracking_uri="http://given:1")
    assert moved.tracking_uri == "http://given:1"


def test_replace_other_fields(project):
    s = Settings.from_env(environ={}, cwd=project)
    changed = s.replace(experiment="x")
    assert changed.experiment == "x"
    assert changed.tracking_uri == s.tracking_uri


def test_as_env_contents(project):
    write_cfg(project, "experiment = churn\nprimary_metric = f1\n")
    s = Settings.from_env(environ={"WORKBENCH_PORT": "5050"}, cwd=project)
    env = s.as_env()
    root = project.resolve()
    assert env == {
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5050",
        "WORKBENCH_HOME": str(root / ".workbench"),
        "WORKBENCH_PROJECT_ROOT": str(root),
        "WORKBENCH_EXPERIMENT": "churn",
        "WORKBENCH_PRIMARY_METRIC": "f1",
        "WORKBENCH_DATA_DIR": str(root / "data"),
        "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
        "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "false",
    }
    assert all(isinstance(v, str) for v in env.values())
    # A direction the metric's name does not imply travels too; the implied one is derived.
    assert s.replace(greater_is_better=False).as_env()["WORKBENCH_GREATER_IS_BETTER"] == "false"
    rmse = Settings.from_env(environ={"WORKBENCH_PRIMARY_METRIC": "rmse"}, cwd=project)
    assert "WORKBENCH_GREATER_IS_BETTER" not in rmse.as_env()
    assert Settings.from_env(environ=rmse.as_env(), cwd=project).greater_is_better is False
    store = s.replace(prediction_store="postgresql+psycopg2://u:p@db/predictions").as_env()
    assert store["WORKBENCH_PREDICTION_STORE"] == "postgresql+psycopg2://u:p@db/predictions"
    on_network = s.replace(container_tracking_uri="http://mlflow:5000").container_env()
    assert on_network["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert s.container_env()["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5050"


def test_as_env_round_trips_through_from_env(project, tmp_path):
    write_cfg(project, "experiment = churn\n")
    s = Settings.from_env(environ={"WORKBENCH_HOME": "st"}, cwd=project)
    elsewhere = tmp_path / "unrelated"
    elsewhere.mkdir()
    child = Settings.from_env(environ=s.as_env(), cwd=elsewhere)
    assert child.project_root == s.project_root
    assert child.home == s.home
    assert child.data_dir == s.data_dir
    assert child.experiment == s.experiment
    assert child.primary_metric == s.primary_metric
    assert child.tracking_uri == s.tracking_uri


# -- pydantic-settings: unknown names, wrong types in one line, credentials -------------------
def test_unknown_variable_warns_naming_the_closest_setting(project):
    with pytest.warns(UnknownSetting) as caught:
        s = Settings.from_env(environ={"WORKBENCH_PRIMARY_METRC": "f1"}, cwd=project)
    message = str(caught[0].message)
    assert "WORKBENCH_PRIMARY_METRC" in message
    assert "WORKBENCH_PRIMARY_METRIC" in message
    assert s.primary_metric == "roc_auc"  # the typo sets nothing


def test_unknown_name_in_dotenv_and_setup_cfg_warns(project):
    write_dotenv(project, "WORKBENCH_EXPERIMNT=x\n")
    write_cfg(project, "lab_prot = 1\n")
    with pytest.warns(UnknownSetting) as caught:
        Settings.from_env(environ={}, cwd=project)
    messages = " | ".join(str(w.message) for w in caught)
    assert "WORKBENCH_EXPERIMENT" in messages and ".env" in messages
    assert "lab_port" in messages and "setup.cfg" in messages


@pytest.mark.parametrize("variable", [
    "WORKBENCH_PROJECT_ROOT", "WORKBENCH_DEBUG", "WORKBENCH_NOTEBOOK", "WORKBENCH_IMAGE",
    "WORKBENCH_SERVE_MODEL", "WORKBENCH_SERVE_LOG_MAX_BACKLOG", "WORKBENCH_BASE_IMAGE",
    "WORKBENCH_DOCKER_NETWORK", "WORKBENCH_CONTAINER_TRACKING_URI", "WORKBENCH_EXECUTOR",
])
def test_variables_the_workbench_reads_elsewhere_do_not_warn(project, variable, recwarn):
    value = str(project) if variable == "WORKBENCH_PROJECT_ROOT" else "1"
    Settings.from_env(environ={variable: value}, cwd=project)
    assert not [w for w in recwarn if issubclass(w.category, UnknownSetting)]


def test_every_workbench_variable_in_the_package_is_known(project, recwarn):
    """No WORKBENCH_* name the package itself reads or writes triggers the warning."""
    import re

    package = Path(__file__).resolve().parents[2] / "workbench"
    names = {m for f in package.rglob("*.py") for m in re.findall(r"WORKBENCH_[A-Z][A-Z0-9_]*[A-Z0-9]",
                                                                  f.read_text(encoding="utf-8"))}
    names -= {"WORKBENCH_VERSION", "WORKBENCH_SERVE"}  # a tag constant; the serving prefix
    Settings.from_env(environ={n: str(project) for n in names if n != "WORKBENCH_PORT"
                               and not n.endswith(("TIMEOUT", "_PORT", "GREATER_IS_BETTER",
                                                   "SPARK_UI", "SPARK_CONF"))},
                      cwd=project)
    assert not [str(w.message) for w in recwarn if issubclass(w.category, UnknownSetting)]


def test_wrong_type_is_one_line_naming_variable_and_type(project):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(environ={"WORKBENCH_STARTUP_TIMEOUT": "soon"}, cwd=project)
    message = str(info.value)
    assert "\n" not in message
    assert "WORKBENCH_STARTUP_TIMEOUT" in message and "a number" in message


def test_wrong_type_in_dotenv_says_the_file(project):
    write_dotenv(project, "WORKBENCH_PORT=high\n")
    with pytest.raises(ConfigError) as info:
        Settings.from_env(environ={}, cwd=project)
    assert ".env" in str(info.value) and "an integer" in str(info.value)


def test_unknown_override_is_a_config_error(project):
    with pytest.raises(ConfigError, match="primary_metrc"):
        Settings.from_env(environ={}, cwd=project, primary_metrc="f1")


def test_credentials_are_exported_for_mlflow_and_never_shown(project):
    s = Settings.from_env(environ={"WORKBENCH_TRACKING_USERNAME": "lab",
                                   "WORKBENCH_TRACKING_PASSWORD": "s3cret"}, cwd=project)
    env = s.as_env()
    assert env["MLFLOW_TRACKING_USERNAME"] == "lab"
    assert env["MLFLOW_TRACKING_PASSWORD"] == "s3cret"
    assert "s3cret" not in repr(s) and "s3cret" not in str(s)
    # MLflow's own names are read too (and win), so a child process round-trips them.
    child = Settings.from_env(environ={**env, "WORKBENCH_TRACKING_USERNAME": "other"}, cwd=project)
    assert child.tracking_username == "lab"
    assert child.tracking_password.get_secret_value() == "s3cret"
    plain = Settings.from_env(environ={}, cwd=project).as_env()
    assert "MLFLOW_TRACKING_USERNAME" not in plain and "MLFLOW_TRACKING_PASSWORD" not in plain


def test_settings_are_frozen(project):
    s = Settings.from_env(environ={}, cwd=project)
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        s.port = 1  # type: ignore[misc]
    assert s.replace(tracking_password="x").tracking_password.get_secret_value() == "x"


def test_settings_constructed_directly_read_the_working_directory(project, monkeypatch):
    write_cfg(project, "experiment = direct\n")
    monkeypatch.chdir(project)
    monkeypatch.delenv("WORKBENCH_EXPERIMENT", raising=False)
    monkeypatch.delenv("WORKBENCH_PROJECT_ROOT", raising=False)
    assert Settings().experiment == "direct"
    assert Settings().project_root == project.resolve()


# -- the Spark engine's settings ------------------------------------------------------------------
def test_defaults_bind_the_driver_to_loopback_with_the_ui_off(project):
    settings = Settings.from_env(environ={}, cwd=project)
    conf = session_conf(settings)
    assert conf["spark.master"] == "local[*]"
    assert conf["spark.driver.host"] == conf["spark.driver.bindAddress"] == "127.0.0.1"
    assert conf["spark.ui.enabled"] == "false"
    assert conf["spark.pyspark.python"] == sys.executable


def test_properties_come_from_setup_cfg_the_environment_and_the_command_line(project):
    (project / "setup.cfg").write_text(
        "[workbench]\nspark_master = local[2]\n\n"
        "[workbench.spark]\nspark.executor.memory = 3g\nspark.sql.shuffle.partitions = 8\n")
    from_cfg = Settings.from_env(environ={}, cwd=project)
    assert from_cfg.spark_master == "local[2]"
    assert from_cfg.spark_conf == {"spark.executor.memory": "3g",
                                   "spark.sql.shuffle.partitions": "8"}
    from_env = Settings.from_env(
        environ={"WORKBENCH_SPARK_CONF": "spark.executor.memory=5g; spark.foo.Bar=x=y",
                 "WORKBENCH_SPARK_UI": "true"}, cwd=project)
    assert from_env.spark_conf == {"spark.executor.memory": "5g", "spark.foo.Bar": "x=y"}
    conf = session_conf(from_env, "spark://127.0.0.1:7077", {"spark.executor.memory": "6g"})
    assert conf["spark.executor.memory"] == "6g" and conf["spark.ui.enabled"] == "true"
    assert conf["spark.master"] == "spark://127.0.0.1:7077"
    as_json = Settings.from_env(environ={"WORKBENCH_SPARK_CONF": '{"spark.a": 1}'}, cwd=project)
    assert as_json.spark_conf == {"spark.a": "1"}


def test_a_property_without_a_value_is_one_line(project):
    with pytest.raises(ConfigError, match="spark_conf") as raised:
        Settings.from_env(environ={"WORKBENCH_SPARK_CONF": "spark.executor.memory"}, cwd=project)
    assert "\n" not in str(raised.value)
