"""Drift reports: one self-contained HTML page with plots, and a JSON summary.

Plots are drawn with matplotlib's object API on the Agg canvas (no pyplot, so no global
backend switch in the caller's notebook) and embedded as base64 PNG: the page needs no
other file and opens from an MLflow run's artifacts as it is.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.monitoring.drift import DRIFT, OK, WARN, DriftResult, FeatureDrift

REPORT_FILE = "drift_report.html"
SUMMARY_FILE = "drift_summary.json"
_COLORS = {OK: "#2e7d32", WARN: "#ef6c00", DRIFT: "#c62828"}
_SEVERITY = {OK: 0, WARN: 1, DRIFT: 2}
_REFERENCE_COLOR = "#90a4ae"
_CURRENT_COLOR = "#1565c0"


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
    drifted features first."""
    e = html.escape
    title = f"Drift report: {context.get('model', 'model')}"
    facts = "".join(
        f"<tr><th>{e(str(key).replace('_', ' '))}</th><td>{_link(value)}</td></tr>"
        for key, value in context.items() if value not in (None, "")
    )
    header = "".join(f"<th>{e(h)}</th>" for h in (
        "feature", "kind", "status", "psi", "test", "statistic", "p-value", "js distance",
        "missing (ref → current)", "why"))
    rows = "".join(_table_row(check) for check in result.checks)
    ordered = sorted(result.checks, key=lambda c: -_SEVERITY[c.status])  # stable: drifted first
    figures = "".join(
        f'<figure id="{e(check.name)}"><img alt="{e(check.name)}: reference against current" '
        f'src="data:image/png;base64,{base64.b64encode(figure_png(check)).decode()}">'
        f"<figcaption>{e(_caption(check))}</figcaption></figure>"
        for check in ordered if check.distribution is not None
    )
    notes = "".join(f"<li>{e(note)}</li>" for note in result.notes)
    thresholds = ", ".join(f"{k} {v:g}" for k, v in result.thresholds.as_dict().items())
    detail = result.summary_line().split(": ", 1)[-1]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; font-size: 14px; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.status {{ color: white; border-radius: 3px; padding: 1px 6px; font-weight: 600; }}
.verdict {{ font-size: 1.4em; }}
figure {{ display: inline-block; margin: 0.5em; vertical-align: top; }}
figcaption {{ font-size: 13px; color: #555; max-width: 520px; }}
</style></head><body>
<h1>{e(title)}</h1>
<p class="verdict">Verdict: {_badge(result.verdict)} {e(detail)}</p>
<table>{facts}<tr><th>reference rows</th><td>{result.reference_rows}</td></tr>
<tr><th>current rows</th><td>{result.current_rows}</td></tr></table>
<h2>Features</h2>
<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>
{f"<ul>{notes}</ul>" if notes else ""}
<p style="font-size:13px;color:#555">Thresholds: {e(thresholds)}. A test counts only when
significant; PSI and missing rates count alone.</p>
<h2>Reference against current</h2>
{figures}
</body></html>
"""


def figure_png(check: FeatureDrift, dpi: int = 80) -> bytes:
    """One feature's reference and current distributions as a PNG.

    Raises:
        ValueError: the check has no distribution (no values on one side).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dist = check.distribution
    if dist is None:
        raise ValueError(f"{check.name} has no distribution to plot")
    figure = Figure(figsize=(6.4, 3.0), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if dist.kind == "histogram":
        axes.stairs(dist.reference, dist.edges, fill=True, color=_REFERENCE_COLOR, alpha=0.6,
                    label="reference")
        axes.stairs(dist.current, dist.edges, color=_CURRENT_COLOR, linewidth=2, label="current")
        axes.set_xlabel(check.name)
    else:
        positions = range(len(dist.labels))
        axes.bar([p - 0.2 for p in positions], dist.reference, width=0.4, color=_REFERENCE_COLOR,
                 label="reference")
        axes.bar([p + 0.2 for p in positions], dist.current, width=0.4, color=_CURRENT_COLOR,
                 label="current")
        crowded = len(dist.labels) > 4
        axes.set_xticks(list(positions), [_short(label) for label in dist.labels],
                        rotation=30 if crowded else 0, ha="right" if crowded else "center")
    axes.set_ylabel("share of rows")
    axes.set_title(f"{check.name}: {check.status}", color=_COLORS[check.status], loc="left",
                   fontweight="bold")
    axes.legend(frameon=False, fontsize=9)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _table_row(check: FeatureDrift) -> str:
    e = html.escape
    cells = [
        f"<td>{e(check.name)}</td>", f"<td>{e(check.kind)}</td>",
        f"<td>{_badge(check.status)}</td>", _num(check.psi, ".3f"), f"<td>{check.test}</td>",
        _num(check.statistic, ".3f" if check.kind == "numeric" else ".1f"),
        _num(check.pvalue, ".2g"), _num(check.js_distance, ".3f"),
        f"<td>{check.reference_missing_rate:.1%} → {check.current_missing_rate:.1%}</td>",
        f"<td>{e('; '.join(check.reasons))}</td>",
    ]
    return f"<tr>{''.join(cells)}</tr>"


def _caption(check: FeatureDrift) -> str:
    parts = [f"{check.kind}, {check.reference_count} reference and "
             f"{check.current_count} current values"]
    parts += list(check.reasons)
    return "; ".join(parts)


def _badge(status: str) -> str:
    return f'<span class="status" style="background:{_COLORS[status]}">{html.escape(status)}</span>'


def _num(value: float | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '<td class="num">-</td>'
    return f'<td class="num">{format(value, spec)}</td>'


def _link(value: Any) -> str:
    text = html.escape(str(value))
    linked = str(value).startswith(("http://", "https://"))
    return f'<a href="{text}">{text}</a>' if linked else text


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
