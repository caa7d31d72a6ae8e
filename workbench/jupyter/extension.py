"""Loading the workbench into a Jupyter server: one state object, the routes, clean-up.

The settings are read once, from the server's environment and its root directory, never
from a request: the tracking URI a client could send is not one the server would use.
"""
from __future__ import annotations

import time
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
#: How old the experiments listing behind the runs route may be (a new experiment shows
#: in "all experiments" within this many seconds; one asked for by name at once).
EXPERIMENTS_TTL_S = 10.0


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
    _experiments: dict[str, str] | None = None
    _experiments_at: float = 0.0

    def experiment_ids(self, names: list[str] | None) -> list[str]:
        """Ids of the named experiments (all when None), from a listing at most
        ``EXPERIMENTS_TTL_S`` old: every runs page would otherwise cost one more call to the
        tracking server. A name the listing lacks is looked up afresh.

        Raises:
            TrackingNotFound: no experiment has one of the names.
        """
        now = time.monotonic()
        if self._experiments is None or now - self._experiments_at > EXPERIMENTS_TTL_S or (
                names and not set(names) <= set(self._experiments)):
            from workbench.tracking import make_client

            client = make_client(self.settings)
            self._experiments = {e.name: e.experiment_id for e in client.search_experiments()}
            self._experiments_at = now
        if names is None:
            return list(self._experiments.values())
        missing = [n for n in names if n not in self._experiments]
        if missing:
            from workbench.errors import TrackingNotFound

            raise TrackingNotFound(
                f"no experiment {missing[0]!r} at {self.settings.tracking_uri}; experiments: "
                f"{', '.join(sorted(self._experiments)) or 'none yet'}")
        return [self._experiments[n] for n in names]

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
