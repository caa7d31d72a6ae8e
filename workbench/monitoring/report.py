"""Drift reports: one self-contained HTML page with plots, and a JSON summary.

Plots are drawn with matplotlib's object API on the Agg canvas (no pyplot, so no global
backend switch in the caller's notebook) and embedded as base64 PNG: the page needs no
other file and opens from an MLflow run's artifacts as it is.
"""
from __future__ import annotations

import base64
import functools
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from workbench.monitoring.drift import DRIFT, OK, WARN, DriftResult, FeatureDrift

REPORT_FILE = "drift_report.html"
SUMMARY_FILE = "drift_summary.json"
TEMPLATE = "drift_report.html.j2"
_COLORS = {OK: "#2e7d32", WARN: "#ef6c00", DRIFT: "#c62828"}
_SEVERITY = {OK: 0, WARN: 1, DRIFT: 2}
_REFERENCE_COLOR = "#90a4ae"
_CURRENT_COLOR = "#1565c0"
# Text properties that draw a string as it is: no mathtext between dollars, no TeX.
_LITERAL: dict[str, Any] = {"parse_math": False, "usetex": False}


def summary(result: DriftResult, context: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON summary: ``context`` (model, source, times, run) and the result."""
    return {**dict(context), **result.as_dict()}


def summary_json(result: DriftResult, context: Mapping[str, Any]) -> str:
    """``summary`` as strict JSON (NaN becomes null)."""
    return json.dumps(_finite(summary(result, context)), indent=2, allow_nan=False)


def write_report(result: DriftResult, context: Mapping[str, Any],
                 directory: Path) -> tuple[Path, Path]:
    """Write ``drift_report.html`` and ``drift_summary.json`` into ``directory``.

    Returns:
        The two paths, HTML first.

    Raises:
        OSError: the folder or a file cannot be written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    report, summary_path = directory / REPORT_FILE, directory / SUMMARY_FILE
    report.write_text(render_html(result, context), encoding="utf-8")
    summary_path.write_text(summary_json(result, context), encoding="utf-8")
    return report, summary_path


def render_html(result: DriftResult, context: Mapping[str, Any]) -> str:
    """The report page: verdict, context, the per-feature table, then one plot per feature,
    drifted features first.

    Names, labels, reasons and context values are text: the template escapes them, and
    the plots draw them literally (see ``figure_png``).

    Raises:
        jinja2.TemplateError: the installed template is broken (a packaging fault).
        ValueError: matplotlib cannot draw a plot.
    """
    ordered = sorted(result.checks, key=lambda c: -_SEVERITY[c.status])  # stable: drifted first
    page = _template().render(
        title=f"Drift report: {context.get('model', 'model')}",
        colors=_COLORS,
        verdict=result.verdict,
        detail=result.summary_line().split(": ", 1)[-1],
        facts=[{"key": str(key).replace("_", " "), "value": str(value),
                "link": str(value).startswith(("http://", "https://"))}
               for key, value in context.items() if value not in (None, "")],
        reference_rows=result.reference_rows,
        current_rows=result.current_rows,
        headings=("feature", "kind", "status", "psi", "test", "statistic", "p-value",
                  "js distance", "missing (ref → current)", "why"),
        rows=[_table_row(check) for check in result.checks],
        notes=list(result.notes),
        thresholds=", ".join(f"{k} {v:g}" for k, v in result.thresholds.as_dict().items()),
        figures=[{"name": check.name, "caption": _caption(check),
                  "png": base64.b64encode(figure_png(check)).decode("ascii")}
                 for check in ordered if check.distribution is not None],
    )
    return page + "\n"


def figure_png(check: FeatureDrift, dpi: int = 80) -> bytes:
    """One feature's reference and current distributions as a PNG.

    Every text from the data (the feature's name, the category labels) is drawn as it is:
    no mathtext (``$...$``) and no LaTeX (``_``, ``^``, ``\\``), whatever the caller's
    matplotlib settings say.

    Raises:
        ValueError: the check has no distribution (no values on one side).
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dist = check.distribution
    if dist is None:
        raise ValueError(f"{check.name} has no distribution to plot")
    # The caller's rcParams may turn on LaTeX (text.usetex) for every text, ticks included;
    # a report must not depend on a TeX installation or on how TeX reads a column name.
    with matplotlib.rc_context({"text.usetex": False, "axes.formatter.use_mathtext": False}):
        figure = Figure(figsize=(6.4, 3.0), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        if dist.kind == "histogram":
            axes.stairs(dist.reference, dist.edges, fill=True, color=_REFERENCE_COLOR,
                        alpha=0.6, label="reference")
            axes.stairs(dist.current, dist.edges, color=_CURRENT_COLOR, linewidth=2,
                        label="current")
            axes.set_xlabel(check.name, **_LITERAL)
        else:
            positions = range(len(dist.labels))
            axes.bar([p - 0.2 for p in positions], dist.reference, width=0.4,
                     color=_REFERENCE_COLOR, label="reference")
            axes.bar([p + 0.2 for p in positions], dist.current, width=0.4,
                     color=_CURRENT_COLOR, label="current")
            crowded = len(dist.labels) > 4
            axes.set_xticks(list(positions), [_short(label) for label in dist.labels],
                            rotation=30 if crowded else 0, ha="right" if crowded else "center",
                            **_LITERAL)
        axes.set_ylabel("share of rows")
        axes.set_title(f"{check.name}: {check.status}", color=_COLORS[check.status], loc="left",
                       fontweight="bold", **_LITERAL)
        axes.legend(frameon=False, fontsize=9)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _table_row(check: FeatureDrift) -> dict[str, str]:
    return {
        "name": check.name, "kind": check.kind, "status": check.status,
        "psi": _num(check.psi, ".3f"), "test": check.test,
        "statistic": _num(check.statistic, ".3f" if check.kind == "numeric" else ".1f"),
        "pvalue": _num(check.pvalue, ".2g"), "js": _num(check.js_distance, ".3f"),
        "missing": f"{check.reference_missing_rate:.1%} → {check.current_missing_rate:.1%}",
        "why": "; ".join(check.reasons),
    }


def _caption(check: FeatureDrift) -> str:
    parts = [f"{check.kind}, {check.reference_count} reference and "
             f"{check.current_count} current values"]
    parts += list(check.reasons)
    return "; ".join(parts)


def _num(value: float | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


@functools.cache
def _template() -> jinja2.Template:
    # Built once per process: loading and compiling the template costs more than rendering.
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("workbench.monitoring", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
    )
    return environment.get_template(TEMPLATE)


def _short(label: str, width: int = 18) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
