"""``ModelBoard``: the instances of one registered model, compared and promoted in a notebook.

State lives in traitlets (``selected``, ``sort_by``, ``descending``, ``pending``) and the
widgets react in ``@observe`` handlers, so a test drives the board without a browser: set
``selected`` (or tick a row's checkbox), ``click()`` a promote button, then the confirm
button. Every registry call goes through :class:`~workbench.registry.Registry`, the engine
under ``workbench models promote``: same gates, same audit trail.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import traitlets

from workbench import lineage, tasks
from workbench.config import Settings
from workbench.errors import PromotionRefused, WorkbenchError
from workbench.naming import PROMOTION_ALIASES
from workbench.promotion import DRIFT_CHECKED_AT_TAG, drift_status
from workbench.registry import HistoryRecord, Instance, Promotion, Registry
from workbench.widgets._html import badge, esc, key_metrics, link, number, table

VERSION_SORT = "MLflow version"
#: How many history records the board shows, newest first (the CLI shows them all).
HISTORY_SHOWN = 10
_HIDDEN, _SHOWN = "none", ""


class ModelBoard(widgets.VBox):
    """Every instance of a registered model, sortable by a metric, with promote buttons.

    Args:
        instance: a registered model name (``churn``), or one instance (full name,
            ``churn@champion``, ``models:/`` URI or an :class:`Instance`) to show with its
            model's other instances, selected.
        registry: the registry to read and promote through (built from ``settings``).
        settings: used when ``registry`` is omitted (``Settings.from_env()`` by default).

    Raises:
        ModelNotFound: the model or instance does not exist.
        InvalidModelName: ``instance`` is malformed.
    """

    selected = traitlets.List(traitlets.Int(), help="MLflow version numbers of the selected rows")
    sort_by = traitlets.Unicode(help="the metric rows are sorted by, or 'MLflow version'")
    descending = traitlets.Bool(True, help="largest first")
    pending = traitlets.Unicode("", help="the alias waiting for confirmation; empty when none")

    def __init__(self, instance: str | Instance, registry: Registry | None = None,
                 settings: Settings | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.registry = registry or Registry(settings or Settings.from_env())
        self.instances: list[Instance] = []
        self.last_promotion: Promotion | None = None
        self.records: list[HistoryRecord] = []
        self.checkboxes: dict[int, widgets.Checkbox] = {}
        self._syncing = False
        focus = _focus(instance, self.registry)
        self.registered_model = focus.registered_model if focus else str(instance)
        self._build()
        self.refresh()
        self.sort_by = self._primary
        self.descending = self._greater(self._primary)
        # Linked once the dropdown has options: a link copies the value across at once.
        widgets.link((self, "sort_by"), (self.sort_dropdown, "value"))
        widgets.link((self, "descending"), (self.descending_box, "value"))
        if focus is not None:
            self.selected = [focus.number]

    # -- building ----------------------------------------------------------------------------
    def _build(self) -> None:
        self.title = _classed(widgets.HTML(), "workbench-board-title")
        self.sort_dropdown = _classed(widgets.Dropdown(description="sort by"), "workbench-sort")
        self.descending_box = _classed(widgets.Checkbox(description="descending", indent=False),
                                       "workbench-descending")
        self.refresh_button = _classed(widgets.Button(description="Refresh", icon="refresh"),
                                       "workbench-refresh")
        self.refresh_button.on_click(self._shown_errors(lambda _: self.refresh()))

        self.grid = _classed(widgets.GridBox(layout=widgets.Layout(grid_gap="2px 14px",
                                                                   align_items="center")),
                             "workbench-instances")
        self.comparison = _classed(widgets.HTML(), "workbench-comparison")
        self.promote_buttons = {
            alias: _classed(widgets.Button(
                description=f"Promote to {alias}", layout=widgets.Layout(width="auto"),
                button_style="success" if alias == "champion" else "info",
            ), f"workbench-promote-{alias}")
            for alias in PROMOTION_ALIASES
        }
        for alias, button in self.promote_buttons.items():
            button.on_click(self._shown_errors(self._asker(alias)))

        self.confirm_text = _classed(widgets.HTML(), "workbench-confirm-text")
        self.reason = _classed(widgets.Text(description="reason",
                                            placeholder="why (kept in the audit trail)",
                                            layout=widgets.Layout(width="60%")),
                               "workbench-reason")
        self.override = _classed(widgets.Checkbox(description="override the failed gate(s)",
                                                  indent=False), "workbench-override")
        self.override.layout.display = _HIDDEN
        self.confirm_button = _classed(
            widgets.Button(description="Confirm", button_style="warning"), "workbench-confirm-button")
        self.cancel_button = _classed(widgets.Button(description="Cancel"),
                                      "workbench-cancel-button")
        self.confirm_button.on_click(self._shown_errors(lambda _: self.confirm()))
        self.cancel_button.on_click(lambda _: self.cancel())
        self.confirm_box = _classed(widgets.VBox(
            [self.confirm_text, self.reason, self.override,
             widgets.HBox([self.confirm_button, self.cancel_button])],
            layout=widgets.Layout(border="1px solid #b26a00", padding="6px", display=_HIDDEN),
        ), "workbench-confirm")
        self.message = _classed(widgets.HTML(), "workbench-message")
        self.history = _classed(widgets.HTML(), "workbench-history")

        self.children = [
            self.title,
            widgets.HBox([self.sort_dropdown, self.descending_box, self.refresh_button]),
            self.grid,
            self.comparison,
            widgets.HBox(list(self.promote_buttons.values())),
            self.confirm_box,
            self.message,
            self.history,
        ]
        self.add_class("workbench-model-board")

    # -- reading the registry ----------------------------------------------------------------
    def refresh(self) -> None:
        """Read the instances again (aliases and drift tags move) and redraw.

        Raises:
            ModelNotFound: the registered model is gone.
        """
        self.instances = self.registry.list_instances(self.registered_model)
        numbers = {i.number for i in self.instances}
        self.checkboxes = {i.number: self._checkbox(i.number) for i in self.instances}
        # A regression model seen from a project whose primary metric is roc_auc ranks by
        # the metric its own registrations recorded (rmse), in that metric's direction.
        self._primary = tasks.primary_metric(self.registry.settings, self.instances)
        metrics = key_metrics((i.metrics for i in self.instances), self._primary)
        self._metric_columns = metrics
        self.sort_dropdown.options = [*metrics, VERSION_SORT]
        if self.sort_by not in self.sort_dropdown.options:
            self.sort_by = self._primary
        champion, challenger = (self.holder(a) for a in PROMOTION_ALIASES)
        self.title.value = (
            f"<b>{esc(self.registered_model)}</b>: {len(self.instances)} instance(s); "
            f"champion {esc(champion.label if champion else '-')}, "
            f"challenger {esc(challenger.label if challenger else '-')}"
        )
        self.selected = [n for n in self.selected if n in numbers]
        self.records = self.registry.history(self.registered_model)
        self.history.value = _history_html(self.records)
        self._draw_rows()
        self._update_selection()

    def holder(self, alias: str) -> Instance | None:
        """The instance ``alias`` points at, as of the last refresh."""
        return next((i for i in self.instances if alias in i.aliases), None)

    def _greater(self, metric: str) -> bool:
        """Whether greater is better for ``metric`` (see :func:`workbench.tasks.greater_is_better`)."""
        return tasks.greater_is_better(metric, self.registry.settings, self.instances)

    def by_number(self, number: int) -> Instance:
        return next(i for i in self.instances if i.number == number)

    @property
    def rows(self) -> list[Instance]:
        """The instances in the order shown."""
        if self.sort_by == VERSION_SORT or not self.sort_by:
            return sorted(self.instances, key=lambda i: i.number, reverse=self.descending)
        metric = self.sort_by
        with_metric = sorted((i for i in self.instances if metric in i.metrics),
                             key=lambda i: (i.metrics[metric], i.number), reverse=self.descending)
        # Instances without the metric go last whatever the direction.
        return with_metric + [i for i in self.instances if metric not in i.metrics]

    # -- drawing -----------------------------------------------------------------------------
    def _checkbox(self, number: int) -> widgets.Checkbox:
        box = widgets.Checkbox(value=number in self.selected, indent=False,
                               layout=widgets.Layout(width="28px"))
        box.add_class("workbench-select")
        box.add_class(f"workbench-select-v{number}")
        box.observe(lambda change, n=number: self._ticked(n, change["new"]), names="value")
        return box

    def _draw_rows(self) -> None:
        metrics = self._metric_columns
        headers = ["", "instance", "MLflow", "data_date", *metrics,
                   "aliases", "drift", "created by"]
        cells: list[widgets.Widget] = [widgets.HTML(self._header(h, h in metrics))
                                       for h in headers]
        for instance in self.rows:
            cells.append(self.checkboxes[instance.number])
            cells.extend(widgets.HTML(value) for value in self._row(instance, metrics))
        self.grid.layout.grid_template_columns = "28px " + " ".join(["auto"] * (len(headers) - 1))
        self.grid.children = cells

    def _header(self, name: str, metric: bool) -> str:
        """A column header in bold; a metric's says which way is better."""
        return f"<b>{self._metric_label(name) if metric else esc(name)}</b>"

    def _metric_label(self, metric: str) -> str:
        """``rmse ↓`` (lower is better, also as a tooltip) or ``roc_auc ↑``."""
        greater = self._greater(metric)
        return (f'<span title="{tasks.direction_word(greater)}">{esc(metric)} '
                f'{"&uarr;" if greater else "&darr;"}</span>')

    def _row(self, instance: Instance, metrics: list[str]) -> list[str]:
        checked = instance.tags.get(DRIFT_CHECKED_AT_TAG, "")
        notebook = instance.tags.get(lineage.NOTEBOOK_PATH, "")
        made_by = notebook.rsplit("/", 1)[-1] if notebook else (instance.run_id or "-")[:8]
        return [
            link(self.registry.ui_url(instance), instance.label),
            f"v{instance.number}",
            esc(instance.data_date or "-"),
            *(number(instance.metrics.get(m)) for m in metrics),
            " ".join(f"<b>{esc(a)}</b>" for a in instance.promotion_aliases) or "-",
            f'<span title="checked {esc(checked)}">{badge(drift_status(instance))}</span>'
            if checked else badge(drift_status(instance)),
            link(self.registry.run_url(instance), made_by,
                 title=f"run {instance.run_id}" + (f", notebook {notebook}" if notebook else "")),
        ]

    # -- selecting ---------------------------------------------------------------------------
    def _ticked(self, number: int, ticked: bool) -> None:
        if self._syncing:
            return
        chosen = [n for n in self.selected if n != number]
        self.selected = [*chosen, number] if ticked else chosen

    @traitlets.observe("selected")
    def _on_selected(self, change: dict[str, Any]) -> None:
        self._update_selection()

    def _update_selection(self) -> None:
        self._syncing = True
        try:
            for number, box in self.checkboxes.items():
                box.value = number in self.selected
        finally:
            self._syncing = False
        one = len(self.selected) == 1
        for button in self.promote_buttons.values():
            button.disabled = not one or bool(self.pending)
        self.comparison.value = self._comparison_html()
        if self.pending and not one:
            self.cancel()

    @traitlets.observe("sort_by")
    def _on_sort_metric(self, change: dict[str, Any]) -> None:
        # Best first whatever the metric: rmse ascending, roc_auc descending. The version
        # order keeps the direction the user chose.
        if change["new"] and change["new"] != VERSION_SORT:
            self.descending = self._greater(change["new"])

    @traitlets.observe("sort_by", "descending")
    def _on_sort(self, change: dict[str, Any]) -> None:
        if self.instances:
            self._draw_rows()

    def _comparison_html(self) -> str:
        if not self.selected:
            return "<i>Select instances to compare them with the champion.</i>"
        champion = self.holder("champion")
        chosen = [self.by_number(n) for n in self.selected]
        others = [i for i in chosen if champion is None or i.number != champion.number]
        if champion is None:
            note = "<i>No champion yet: promoting one makes it the first.</i>"
        elif not others:
            return f"<i>{esc(champion.label)} is the champion.</i>"
        else:
            note = ""
        columns = [champion, *others] if champion else others
        names = key_metrics((i.metrics for i in columns), self._primary, most=12)
        rows = []
        for metric in names:
            base = champion.metrics.get(metric) if champion else None
            greater = self._greater(metric)
            row = [self._metric_label(metric)]
            row += [number(i.metrics.get(metric)) for i in columns]
            if champion:
                directed = metric == self._primary or tasks.direction_known(metric)
                row += [_delta(i.metrics.get(metric), base, directed, greater) for i in others]
            rows.append(row)
        headers = (["metric"] + [("champion " if champion and i is champion else "") + i.label
                                 for i in columns]
                   + ([f"{i.label} vs champion" for i in others] if champion else []))
        return note + table(headers, rows, "workbench-comparison-table")

    # -- promoting ---------------------------------------------------------------------------
    def ask(self, alias: str) -> None:
        """Open the confirmation for pointing ``alias`` at the one selected instance.

        Raises:
            ValueError: not exactly one instance is selected, or ``alias`` is unknown.
        """
        if alias not in PROMOTION_ALIASES:
            raise ValueError(f"alias {alias!r} is not one of {', '.join(PROMOTION_ALIASES)}")
        if len(self.selected) != 1:
            raise ValueError("select exactly one instance to promote")
        self.pending = alias

    @traitlets.observe("pending")
    def _on_pending(self, change: dict[str, Any]) -> None:
        alias = change["new"]
        for button in self.promote_buttons.values():
            button.disabled = bool(alias) or len(self.selected) != 1
        self.override.value = False
        if not alias:
            self.confirm_box.layout.display = _HIDDEN
            self.override.layout.display = _HIDDEN
            return
        candidate = self.by_number(self.selected[0])
        current = self.holder(alias)
        failures = self.registry.check_promotion(candidate, alias)
        change_line = (f"{alias}: {current.label if current else '(none)'} -> {candidate.label}"
                       if not current or current.number != candidate.number
                       else f"{alias}: {candidate.label} already; recorded again in the history")
        warning = "".join(f"<br>&#9888; gate <b>{esc(f.gate)}</b>: {esc(f.message)}"
                          for f in failures)
        self.confirm_text.value = f"<b>{esc(change_line)}</b>{warning}"
        self.override.layout.display = _SHOWN if failures else _HIDDEN
        self.confirm_box.layout.display = _SHOWN
        self._say("")

    def confirm(self) -> Promotion | None:
        """Promote as the confirmation says; a gate's refusal is shown, not raised.

        Returns:
            The promotion, or None when a gate refused it (or nothing was pending).
        """
        if not self.pending or len(self.selected) != 1:
            return None
        alias, candidate = self.pending, self.by_number(self.selected[0])
        try:
            promotion = self.registry.promote(candidate, alias, reason=self.reason.value,
                                              override=self.override.value)
        except PromotionRefused as refused:
            self.override.layout.display = _SHOWN
            self._say(f"Refused: {refused.summary}. To promote anyway, tick 'override the failed "
                      "gate(s)' and give a reason.", error=True)
            return None
        except WorkbenchError as exc:
            self._say(str(exc), error=True)
            return None
        self.last_promotion = promotion
        self.pending = ""
        self.reason.value = ""
        self.refresh()
        was = promotion.previous.label if promotion.previous else "(none)"
        overrode = (f"; overrode the {', '.join(promotion.overridden)} gate"
                    if promotion.overridden else "")
        self._say(f"{alias}: {was} -> {promotion.current.label} (by {promotion.by}{overrode})")
        return promotion

    def _asker(self, alias: str) -> Callable[[Any], None]:
        def ask(_: Any) -> None:
            self.ask(alias)

        return ask

    def cancel(self) -> None:
        self.pending = ""

    def _say(self, text: str, error: bool = False) -> None:
        colour = "#c62828" if error else "#2e7d32"
        self.message.value = f'<span style="color:{colour}">{esc(text)}</span>' if text else ""
        if error:
            self.message.add_class("workbench-error")
        else:
            self.message.remove_class("workbench-error")

    def _shown_errors(self, handler: Callable[[Any], Any]) -> Callable[[Any], None]:
        # A click handler's exception ends in the browser console, where nobody looks.
        def run(button: Any) -> None:
            try:
                handler(button)
            except Exception as exc:
                self._say(f"{exc.__class__.__name__}: {exc}", error=True)

        return run


def _focus(instance: str | Instance, registry: Registry) -> Instance | None:
    """The instance to select, when ``instance`` names one rather than a registered model."""
    if isinstance(instance, Instance):
        return instance
    if any(mark in instance for mark in ("_", "@", ":")):
        return registry.resolve(instance)
    return None


def _history_html(records: list[HistoryRecord]) -> str:
    """The newest :data:`HISTORY_SHOWN` promotions and rollbacks as a table."""
    if not records:
        return "<i>No promotions yet.</i>"
    newest = list(reversed(records))[:HISTORY_SHOWN]
    rows = [[esc(r.at), esc(r.action), f"<b>{esc(r.alias)}</b>", esc(r.from_name or "-"),
             esc(r.to_name), esc(r.by), esc(", ".join(r.overridden) or "-"), esc(r.reason or "-")]
            for r in newest]
    more = len(records) - len(newest)
    note = (f"<br><i>{more} older record(s): `workbench models history` shows them all.</i>"
            if more else "")
    return ("<b>History</b> (newest first)"
            + table(["when", "action", "alias", "from", "to", "by", "overridden", "reason"],
                    rows, "workbench-history-table") + note)


def _delta(value: float | None, base: float | None, directed: bool, greater_is_better: bool) -> str:
    if value is None or base is None:
        return "-"
    diff = value - base
    text = f"{diff:+.4f}"
    if not directed or diff == 0:
        return text
    better = diff > 0 if greater_is_better else diff < 0
    return f'<span style="color:{"#2e7d32" if better else "#c62828"}">{text}</span>'


def _classed(widget: Any, css_class: str) -> Any:
    widget.add_class(css_class)
    return widget
