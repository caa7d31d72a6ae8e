"""Integration fixtures: a real mlflow server (from workbench.pytest_plugin), real data."""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from _browser import lab, webdriver  # noqa: F401 (the browser tests' fixtures)

from workbench import lineage, tracking
from workbench.config import Settings
from workbench.demo.data import write_demo_data
from workbench.naming import ModelName
from workbench.registry import Instance, Registry

REPO = Path(__file__).resolve().parents[2]
_names = itertools.count(1)


@pytest.fixture(scope="session")
def settings(workbench_platform: Settings) -> Settings:
    return workbench_platform


@pytest.fixture(scope="session")
def docker_client() -> Any:
    """A client of a real Docker engine. Without one the container tests skip, except under
    CI=true, where they fail: CI never passes without having run them (.ci/run starts an
    engine with ../shared/ci/docker-sandbox up)."""
    import os

    from workbench import _docker
    from workbench.errors import DockerError, MissingDependency

    try:
        return _docker.get_client()
    except (DockerError, MissingDependency) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{exc} (CI starts one with ../shared/ci/docker-sandbox up)")
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def demo_data(settings: Settings) -> Path:
    write_demo_data(settings.data_dir, months=("20240131", "20240229", "20240331"), rows=1500)
    return settings.data_dir


@pytest.fixture(scope="session")
def registry(settings: Settings) -> Registry:
    return Registry(settings)


@pytest.fixture
def unique_instance(request: pytest.FixtureRequest) -> str:
    """A registered-model name no other test uses (full names are immutable)."""
    stem = "".join(c for c in request.node.name.lower() if c.isalnum())[:20] or "model"
    return f"t{next(_names)}-{stem}"


@pytest.fixture
def env_for(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Point Settings.from_env() (magics, notebooks) at the test platform."""
    for key, value in settings.as_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WORKBENCH_PORT", str(settings.port))
    return settings


@pytest.fixture
def shell(env_for: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real IPython shell with ``%load_ext workbench`` done, tracking to the test platform."""
    import mlflow
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "workbench")
    yield ip
    while mlflow.active_run() is not None:
        mlflow.end_run()
    InteractiveShell.clear_instance()


@pytest.fixture
def register(registry: Registry) -> Callable[..., Instance]:
    """A function that trains, logs and registers one instance on columns a and b.

    Its run gets ``auc`` as ``roc_auc`` (none when None), ``extra`` metrics, ``params``, and
    a notebook path, as a training notebook's run would.
    """
    def make(name: ModelName, auc: float | None, params: dict[str, str] | None = None,
             extra: dict[str, float] | None = None) -> Instance:
        from sklearn.linear_model import LogisticRegression

        rng = np.random.default_rng(name.version_number)
        X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
        run_id = tracking.start_run(registry.client, name.instance, str(name),
                                    {lineage.NOTEBOOK_PATH: "/project/notebooks/train.ipynb"},
                                    params)
        for metric, value in {**({"roc_auc": auc} if auc is not None else {}),
                              **(extra or {"f1": 0.5})}.items():
            registry.client.log_metric(run_id, metric, value)
        model = LogisticRegression().fit(X, (X.a > 0).astype(int))
        instance = registry.register(model, name, run_id=run_id, input_example=X)
        registry.client.set_terminated(run_id)
        return instance

    return make


# -- Spark ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def spark_ready() -> None:
    """pyspark and Java 17+ are there. Without them the Spark tests skip, except under CI=true,
    where they fail: pyspark is in the test extra and the machine has Java."""
    import os

    from workbench.engines.spark import require_spark
    from workbench.errors import WorkbenchError

    try:
        require_spark()
    except WorkbenchError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def spark_cluster(spark_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real standalone cluster: a master and a worker (2 cores) on 127.0.0.1, stopped by pid."""
    from _spark import StandaloneCluster

    cluster = StandaloneCluster(tmp_path_factory.mktemp("spark-cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session", params=["local[2]", "standalone"])
def spark(request: pytest.FixtureRequest, settings: Settings, spark_ready: None) -> Iterator[Any]:
    """A real Spark session, driver on 127.0.0.1 and UI off: on ``local[2]``, then on the
    standalone cluster (one SparkContext per process: pytest runs every test of one master,
    then of the other)."""
    from workbench.engines.spark import start_session

    master = (request.param if request.param.startswith("local")
              else request.getfixturevalue("spark_cluster").master)
    session = start_session(settings, master)
    yield session
    session.stop()
