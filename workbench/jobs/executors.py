"""Executors: where a prepared job's notebook runs. A registry maps names to executors so
that a new one plugs in without touching callers, like papermill's engines.

Executors are registered by factory or by dotted name (``package.module:Class``), and other
packages add theirs through the ``workbench.executors`` entry point group; a dotted name or
an entry point is imported only when that executor is asked for, so importing
``workbench.jobs`` never imports the docker SDK. The contract an executor keeps is
``workbench.jobs.spec.Executor``.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from workbench.errors import ConfigError
from workbench.jobs.spec import Executor, JobSpec, JobTimeout, PreparedJob
from workbench.progress import Progress

if TYPE_CHECKING:
    from workbench.config import Settings

__all__ = ["ENTRY_POINT_GROUP", "Executor", "ExecutorRegistry", "JobTimeout", "LocalExecutor",
           "Progress", "executors"]

ENTRY_POINT_GROUP = "workbench.executors"
Factory = Callable[[], Executor]


class ExecutorRegistry:
    """Name -> executor factory: ``executors.register("k8s", "my_pkg.k8s:K8sExecutor")``."""

    def __init__(self, entry_point_group: str | None = None) -> None:
        self._factories: dict[str, Factory | str] = {}
        self._group = entry_point_group
        self._discovered = entry_point_group is None

    def register(self, name: str, factory: Factory | str) -> None:
        """Register ``factory`` (a callable, or ``module:attribute`` imported on first use)."""
        self._factories[name] = factory

    def get(self, name: str) -> Executor:
        """A new executor of that name.

        Raises:
            ConfigError: no executor has that name, or its dotted name cannot be imported.
        """
        self._discover()
        try:
            factory = self._factories[name]
        except KeyError:
            raise ConfigError(
                f"unknown executor {name!r}; available: {', '.join(self.names())}"
            ) from None
        if isinstance(factory, str):
            factory = _load(name, factory)
        return factory()

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._factories)

    def _discover(self) -> None:
        # Entry points are read once, on first use, and never override a registration.
        if self._discovered:
            return
        self._discovered = True
        from importlib.metadata import entry_points

        for point in entry_points(group=cast(str, self._group)):
            self._factories.setdefault(point.name, point.value)


def _load(name: str, dotted: str) -> Factory:
    module_name, _, attribute = dotted.partition(":")
    try:
        target = importlib.import_module(module_name)
        for part in attribute.split(".") if attribute else ():
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"executor {name!r} ({dotted}) cannot be loaded: {exc}") from exc
    return cast(Factory, target)


class LocalExecutor:
    """papermill in this process, in a fresh kernel on this machine (see ``jobs.kernel``)."""

    name = "local"

    def check(self, spec: JobSpec, settings: Settings) -> dict[str, str]:
        return {}

    def execute(self, job: PreparedJob, progress: Progress, show_progress: bool) -> dict[str, str]:
        from workbench.jobs import kernel

        kernel.execute(job, show_progress)
        return {}


executors = ExecutorRegistry(ENTRY_POINT_GROUP)
executors.register("local", LocalExecutor)
# The docker SDK is an optional extra: its executor is imported when a job asks for it.
executors.register("docker", "workbench.jobs.docker_executor:DockerExecutor")
