"""A pytest plugin: a throwaway embedded platform for tests and for notebooks under nbval.

Enable it with ``-p workbench.pytest_plugin``. It gives the session fixture
``workbench_platform`` (Settings pointing at a real ``mlflow server`` in a temporary state
directory) and, when nbval collected notebooks, starts that server before any kernel does
and exports its address, so notebooks that ``%mlops_track`` need no running platform.
Notebooks run in pipeline order: explore, train, batch_predict, monitor, then the rest.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from workbench.config import Settings
from workbench.platforms import EmbeddedPlatform
from workbench.platforms.embedded import free_port

__all__ = ["free_port", "workbench_platform"]

NOTEBOOK_ORDER = ("explore", "train", "batch_predict", "monitor")
_KEY = pytest.StashKey["_SessionPlatform"]()


class _SessionPlatform:
    """One embedded platform per test session, started on first use."""

    def __init__(self, home: Path, project_root: Path) -> None:
        self.home, self.project_root = home, project_root
        self.platform: EmbeddedPlatform | None = None

    def settings(self) -> Settings:
        if self.platform is None:
            settings = Settings.from_env(
                environ={}, cwd=self.project_root, home=str(self.home), port=free_port(),
                data_dir=str(self.home / "data"),
            )
            # No scheduler: the project's policy files are not the tests' business.
            self.platform = EmbeddedPlatform(settings, workers=1, scheduler=False)
            self.platform.up()
        return self.platform.settings

    def stop(self) -> None:
        if self.platform is not None:
            self.platform.down()


def pytest_configure(config: pytest.Config) -> None:
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="workbench-test-"))
    config.stash[_KEY] = _SessionPlatform(home, Path(str(config.rootpath)))


def pytest_unconfigure(config: pytest.Config) -> None:
    holder = config.stash.get(_KEY, None)
    if holder is not None:
        holder.stop()


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    notebooks = [i for i in items if str(i.fspath).endswith(".ipynb")]
    if not notebooks:
        return
    # Kernels inherit the environment when nbval starts them, after collection.
    settings = config.stash[_KEY].settings()
    os.environ.update(settings.as_env())
    os.environ["WORKBENCH_PORT"] = str(settings.port)

    def rank(item: pytest.Item) -> tuple[int, str]:
        stem = Path(str(item.fspath)).stem
        return (NOTEBOOK_ORDER.index(stem) if stem in NOTEBOOK_ORDER else len(NOTEBOOK_ORDER), stem)

    # Stable sort: cells keep their order within a notebook, notebooks follow the pipeline.
    order = {id(item): n for n, item in enumerate(items)}
    items.sort(key=lambda i: (0, rank(i), order[id(i)]) if i in notebooks else (1, ("", ""), order[id(i)]))


@pytest.fixture(scope="session")
def workbench_platform(pytestconfig: pytest.Config) -> Settings:
    """Settings for a real embedded platform shared by the session."""
    return pytestconfig.stash[_KEY].settings()
