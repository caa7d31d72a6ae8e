"""Loading the workbench into a Jupyter server: one state object, the routes, clean-up.

The settings are read once, from the server's environment and its root directory, never
from a request: the tracking URI a client could send is not one the server would use.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from jupyter_server.extension.application import ExtensionApp

from workbench.config import Settings
from workbench.jobs.background import JobManager

if TYPE_CHECKING:
    from workbench.registry import Registry

#: Where the state object lives in the tornado application's settings.
STATE_KEY = "workbench"


@dataclass
class WorkbenchState:
    """What every handler shares: settings, the server's root, jobs, and a thread pool for
    the blocking MLflow and papermill calls (the event loop never waits on them)."""

    settings: Settings
    root: Path
    jobs: JobManager
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(
        max_workers=4, thread_name_prefix="workbench-api"))
    _registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            from workbench.registry import Registry

            self._registry = Registry(self.settings)
        return self._registry


class WorkbenchExtension(ExtensionApp):
    """The jupyter_server extension app: state at start, routes, jobs cancelled at stop."""

    name = "workbench"
    load_other_extensions = True

    def initialize_settings(self) -> None:
        assert self.serverapp is not None  # set before initialize_settings is called
        root = Path(self.serverapp.root_dir).resolve()
        settings = Settings.from_env(cwd=root)
        self.state = WorkbenchState(settings=settings, root=root, jobs=JobManager(settings))
        self.settings[STATE_KEY] = self.state
        self.log.info("mlops-workbench: routes under /workbench/api/ (tracking: %s)",
                      settings.tracking_uri)

    def initialize_handlers(self) -> None:
        from workbench.jupyter.handlers import routes

        self.handlers.extend(routes())

    async def stop_extension(self) -> None:
        # Jobs run in their own sessions; a stopping server stops them as Ctrl-C would.
        self.state.jobs.shutdown()
        self.state.pool.shutdown(wait=False, cancel_futures=True)
