"""``RunBrowser``: the runs of an experiment, filterable, with links to MLflow and notebooks.

State in traitlets (``filter_text``, ``status``); the table redraws in an ``@observe``
handler, so a test sets the traits (or the text box) and reads ``visible``.
"""
from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import traitlets

from workbench import tracking
from workbench.config import Settings
from workbench.registry import Registry
from workbench.tracking import RunSummary
from workbench.widgets._html import badge, esc, key_metrics, lab_link, link, number, table

ALL = "all"
STATUSES = (ALL, "FINISHED", "RUNNING", "FAILED", "KILLED", "SCHEDULED")


class RunBrowser(widgets.VBox):
    """The runs of one experiment with their parameters, metrics and status.

    ``filter_text`` keeps the runs whose name, id, notebook, or a ``param=value`` /
    ``metric`` name contains it (case-insensitive); ``status`` keeps one status.

    Args:
        experiment: the MLflow experiment's name.
        registry: its client and settings are used to read the runs.
        settings: used when ``registry`` is omitted (``Settings.from_env()`` by default).

    Raises:
        TrackingError: no experiment has that name.
    """

    filter_text = traitlets.Unicode("", help="keep runs whose text contains this")
    status = traitlets.Unicode(ALL, help="keep runs with this status ('all' keeps every one)")

    def __init__(self, experiment: str, registry: Registry | None = None,
                 settings: Settings | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.registry = registry or Registry(settings or Settings.from_env())
        self.experiment = experiment
        self.runs: list[RunSummary] = []
        self.title = widgets.HTML()
        self.filter_box = widgets.Text(description="filter", placeholder="name, param=value, ...",
                                       continuous_update=True)
        self.status_dropdown = widgets.Dropdown(description="status", options=STATUSES)
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.table = widgets.HTML()
        for widget, css in ((self.filter_box, "workbench-run-filter"),
                            (self.status_dropdown, "workbench-run-status"),
                            (self.refresh_button, "workbench-refresh"),
                            (self.table, "workbench-runs")):
            widget.add_class(css)
        widgets.link((self, "filter_text"), (self.filter_box, "value"))
        widgets.link((self, "status"), (self.status_dropdown, "value"))
        self.refresh_button.on_click(lambda _: self.refresh())
        self.children = [self.title,
                         widgets.HBox([self.filter_box, self.status_dropdown, self.refresh_button]),
                         self.table]
        self.add_class("workbench-run-browser")
        self.refresh()

    def refresh(self) -> None:
        """Read the experiment's runs again and redraw.

        Raises:
            TrackingError: the experiment is gone.
        """
        self.runs = tracking.list_runs(self.registry.client, self.registry.settings,
                                       self.experiment)
        self._draw()

    @property
    def visible(self) -> list[RunSummary]:
        """The runs the filters keep, newest first."""
        needle = self.filter_text.strip().lower()
        return [run for run in self.runs
                if (self.status == ALL or run.status == self.status)
                and (not needle or needle in _searchable(run))]

    @traitlets.observe("filter_text", "status")
    def _on_filter(self, change: dict[str, Any]) -> None:
        self._draw()

    def _draw(self) -> None:
        runs = self.visible
        settings = self.registry.settings
        metrics = key_metrics((r.metrics for r in runs), settings.primary_metric, most=5)
        rows = [
            [link(r.url, r.run_name, title=f"run {r.run_id} in the MLflow UI"),
             badge(r.status),
             esc(r.started_at.strftime("%Y-%m-%d %H:%M") if r.started_at else "-"),
             esc(", ".join(f"{k}={v}" for k, v in sorted(r.params.items())) or "-"),
             *(number(r.metrics.get(m)) for m in metrics),
             lab_link(r.output_notebook or r.notebook, settings.project_root)]
            for r in runs
        ]
        self.title.value = (f"<b>{esc(self.experiment)}</b>: {len(runs)} of {len(self.runs)} "
                            f"run(s) at {esc(settings.tracking_uri)}")
        self.table.value = table(["run", "status", "started", "parameters", *metrics, "notebook"],
                                 rows, "workbench-runs-table")


def _searchable(run: RunSummary) -> str:
    parts = [run.run_name, run.run_id, run.status, run.notebook or "", run.output_notebook or "",
             *(f"{k}={v}" for k, v in run.params.items()), *run.metrics]
    return " ".join(parts).lower()
