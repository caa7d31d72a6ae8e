"""Promotion gates: the checks a model instance passes before an alias moves to it.

Three gates, all on by default (``Settings.promotion_gates``):

``metric``
    A new champion is not worse than the current champion on the primary metric (in the
    direction ``greater_is_better`` says). A candidate without the metric fails when the
    champion has it: nothing shows it is not worse; so does one whose metric is NaN or
    infinite. A champion without a usable metric gives nothing to be worse than. Only
    ``champion`` is gated this way: a challenger is by definition the one to try against
    the champion, often a weaker one.
``drift``
    The candidate's last drift check (the ``drift_status`` model version tag that
    ``workbench monitor drift`` writes) did not find drift. Gates ``champion`` and
    ``challenger``: a model whose inputs drifted is no candidate for either.
``performance``
    The candidate's latest performance on labels that arrived later (the
    ``performance_value`` tag ``workbench monitor performance`` writes, on the primary
    metric) is not worse than ``Settings.performance_threshold``, and, for ``champion``, not
    worse than the current champion's latest performance by more than
    ``Settings.performance_margin``. A candidate never checked passes (nothing shows it is
    worse), as does one measured on another metric; an unset threshold or margin is off.

Re-pointing an alias at the instance that holds it already changes nothing and is not gated.

The metric gate reads each instance's own run metric unless it is given a :class:`SameData`
measurement: both instances scored on the same rows (a retrain proposal's newest labelled
period), which is then what the gate compares: run metrics measured on different test sets
compare apples with oranges.
Pure functions over :class:`~workbench.registry.Instance`; ``Registry.promote`` calls them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from workbench.errors import ConfigError

if TYPE_CHECKING:
    from workbench.config import Settings
    from workbench.registry.types import Instance

METRIC, DRIFT, PERFORMANCE = "metric", "drift", "performance"
GATES = (METRIC, DRIFT, PERFORMANCE)
GATES_BY_ALIAS = {"champion": (METRIC, DRIFT, PERFORMANCE), "challenger": (DRIFT, PERFORMANCE)}
DRIFT_STATUS_TAG = "drift_status"
DRIFT_CHECKED_AT_TAG = "drift_checked_at"
DRIFTED = "drift"
# Written by ``workbench monitor performance`` (workbench.monitoring.performance).
PERFORMANCE_VALUE_TAG = "performance_value"
PERFORMANCE_METRIC_TAG = "performance_metric"
PERFORMANCE_WINDOW_TAG = "performance_window"
PERFORMANCE_CHECKED_AT_TAG = "performance_checked_at"
PERFORMANCE_RUN_TAG = "performance_run_id"


@dataclass(frozen=True)
class GateFailure:
    """One gate that refuses a promotion, and why (one sentence, no hint how to override)."""

    gate: str
    message: str


@dataclass(frozen=True)
class SameData:
    """The primary metric of a candidate and of an alias's holder, measured on the same rows.

    Attributes:
        metric: the metric's name (it counts only when it is the primary metric).
        candidate: the candidate's value on the rows.
        current: the holder's value on the same rows.
        current_number: the MLflow version number of the instance ``current`` belongs to
            (it counts only while that instance still holds the alias).
        rows: how many rows both were scored on.
        data: what the rows are, for the messages (``data/churn_20240430.csv, 1250 held-out rows``).
    """

    metric: str
    candidate: float
    current: float
    current_number: int
    rows: int
    data: str


def configured_gates(settings: Settings) -> tuple[str, ...]:
    """The gates ``settings.promotion_gates`` turns on, in a fixed order.

    Raises:
        ConfigError: it names a gate that does not exist.
    """
    names = {g.strip().lower() for g in settings.promotion_gates.split(",") if g.strip()}
    unknown = sorted(names - set(GATES))
    if unknown:
        raise ConfigError(
            f"promotion_gates names unknown gate(s) {', '.join(unknown)}; "
            f"use a comma-separated subset of {', '.join(GATES)} (empty turns them off)"
        )
    return tuple(g for g in GATES if g in names)


def check_gates(candidate: Instance, current: Instance | None, alias: str,
                settings: Settings, same_data: SameData | None = None) -> list[GateFailure]:
    """The gates that refuse pointing ``alias`` at ``candidate``; empty when it may move.

    Args:
        candidate: the instance to promote, with its run's metrics.
        current: the instance that holds ``alias`` now (None when none does), with metrics.
        alias: ``champion`` or ``challenger``.
        settings: the primary metric, its direction and the configured gates.
        same_data: both instances' metric on the same rows; the metric gate compares these
            instead of the run metrics when they are of ``current`` and the primary metric.

    Raises:
        ConfigError: ``settings.promotion_gates`` names an unknown gate.
    """
    gates = [g for g in configured_gates(settings) if g in GATES_BY_ALIAS.get(alias, ())]
    if current is not None and current.number == candidate.number:
        return []
    failures: list[GateFailure] = []
    if METRIC in gates and current is not None:
        failure = (_same_data_gate(candidate, current, alias, settings, same_data)
                   if _applies(same_data, current, settings)
                   else _metric_gate(candidate, current, alias, settings))
        if failure:
            failures.append(failure)
    if DRIFT in gates and drift_status(candidate) == DRIFTED:
        checked = candidate.tags.get(DRIFT_CHECKED_AT_TAG)
        failures.append(GateFailure(
            DRIFT, f"the last drift check of {candidate.label}"
                   f"{' (' + checked + ')' if checked else ''} found drift",
        ))
    if PERFORMANCE in gates:
        failure = _performance_gate(candidate, current, alias, settings)
        if failure:
            failures.append(failure)
    return failures


def latest_performance(instance: Instance, metric: str) -> tuple[float, str] | None:
    """(value, window) of the instance's last performance check on ``metric``; None when it
    was never checked on it (or the tag holds no finite number)."""
    if instance.tags.get(PERFORMANCE_METRIC_TAG) != metric:
        return None
    try:
        value = float(instance.tags.get(PERFORMANCE_VALUE_TAG, ""))
    except ValueError:
        return None
    if _usable(value) is None:
        return None
    return value, instance.tags.get(PERFORMANCE_WINDOW_TAG) or "?"


def _performance_gate(candidate: Instance, current: Instance | None, alias: str,
                      settings: Settings) -> GateFailure | None:
    metric = settings.primary_metric
    mine = latest_performance(candidate, metric)
    if mine is None:
        return None  # never measured on labels: nothing shows it is worse
    value, window = mine
    sign = 1.0 if settings.greater_is_better else -1.0
    threshold = settings.performance_threshold
    if threshold is not None and sign * (value - threshold) < 0:
        word = "below" if settings.greater_is_better else "above"
        return GateFailure(PERFORMANCE, f"{candidate.label} has {metric} {value:.4f} on labelled "
                                        f"predictions ({window}), {word} the threshold "
                                        f"{threshold:.4f}")
    margin = settings.performance_margin
    if alias != "champion" or margin is None or current is None:
        return None
    theirs = latest_performance(current, metric)
    if theirs is None:
        return None
    drop = sign * (theirs[0] - value)
    if drop <= margin:
        return None
    return GateFailure(PERFORMANCE, f"{candidate.label} has {metric} {value:.4f} on labelled "
                                    f"predictions ({window}), {drop:.4f} worse than the {alias} "
                                    f"{current.label} ({theirs[0]:.4f}, {theirs[1]}; margin "
                                    f"{margin:.4f})")


def _metric_gate(candidate: Instance, current: Instance, alias: str,
                 settings: Settings) -> GateFailure | None:
    metric = settings.primary_metric
    theirs = _usable(current.metrics.get(metric))
    if theirs is None:
        return None  # nothing to be worse than
    mine = candidate.metrics.get(metric)
    if mine is None:
        return GateFailure(METRIC, f"{candidate.label} has no {metric} to compare with the "
                                   f"{alias} {current.label} ({theirs:.4f}); log it in the "
                                   "training run")
    if _usable(mine) is None:
        # NaN compares false both ways, so it would pass as "not worse" if not caught here.
        return GateFailure(METRIC, f"{candidate.label} has {metric} {mine} (not a finite number), "
                                   f"nothing to compare with the {alias} {current.label} "
                                   f"({theirs:.4f}); fix the metric in the training run")
    return _worse(candidate, current, alias, settings, mine, theirs, "")


def _applies(same_data: SameData | None, current: Instance, settings: Settings) -> bool:
    return (same_data is not None and same_data.current_number == current.number
            and same_data.metric == settings.primary_metric)


def _same_data_gate(candidate: Instance, current: Instance, alias: str, settings: Settings,
                    same_data: SameData | None) -> GateFailure | None:
    assert same_data is not None  # _applies said so
    metric, mine, theirs = same_data.metric, same_data.candidate, same_data.current
    where = f"on the same {same_data.rows} rows ({same_data.data})"
    if _usable(mine) is None or _usable(theirs) is None:
        return GateFailure(METRIC, f"{metric} {where} is not a finite number for "
                                   f"{candidate.label} ({mine}) or the {alias} {current.label} "
                                   f"({theirs}); nothing to compare")
    return _worse(candidate, current, alias, settings, mine, theirs, f" {where}")


def _worse(candidate: Instance, current: Instance, alias: str, settings: Settings, mine: float,
           theirs: float, where: str) -> GateFailure | None:
    """The metric gate's refusal when ``mine`` is worse than ``theirs``, else None."""
    worse = mine < theirs if settings.greater_is_better else mine > theirs
    if not worse:
        return None
    direction = "higher" if settings.greater_is_better else "lower"
    return GateFailure(METRIC, f"{candidate.label} has {settings.primary_metric} {mine:.4f}"
                               f"{where}, worse than the {alias} {current.label} ({theirs:.4f}; "
                               f"{direction} is better)")


def _usable(value: float | None) -> float | None:
    """``value`` when it is a finite number, else None (NaN and infinities compare nothing)."""
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return value


def drift_status(instance: Instance) -> str | None:
    """The verdict of the instance's last drift check (``ok``, ``drift``), None if unchecked."""
    return instance.tags.get(DRIFT_STATUS_TAG)
