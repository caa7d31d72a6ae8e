"""Small HTML helpers shared by the widgets: escaped cells, links, metric values."""
from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

# Muted colours that read on JupyterLab's light and dark themes alike.
STATUS_COLOURS = {
    "ok": "#2e7d32", "FINISHED": "#2e7d32",
    "warn": "#b26a00", "RUNNING": "#1565c0", "SCHEDULED": "#1565c0",
    "drift": "#c62828", "FAILED": "#c62828", "KILLED": "#c62828",
}
TRAINING_PREFIX = "training_"  # autologged metrics on the training set: noise on a board


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value))


def link(href: str | None, text: str, title: str | None = None) -> str:
    if not href:
        return esc(text)
    tip = f' title="{esc(title)}"' if title else ""
    return f'<a href="{esc(href)}" target="_blank" rel="noopener"{tip}>{esc(text)}</a>'


def badge(text: str | None) -> str:
    if not text:
        return '<span style="opacity:.6">-</span>'
    colour = STATUS_COLOURS.get(text, "inherit")
    return f'<span style="color:{colour};font-weight:600">{esc(text)}</span>'


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def key_metrics(metrics: Iterable[Mapping[str, float]], primary: str, most: int = 4) -> list[str]:
    """The primary metric first, then the others (not training-set ones), at most ``most``."""
    names = sorted({m for ms in metrics for m in ms
                    if not m.startswith(TRAINING_PREFIX)} - {primary})
    return [primary, *names][:most]


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], css_class: str) -> str:
    """An HTML table; ``rows`` hold HTML already escaped by the caller."""
    cell = "padding:2px 10px;text-align:left;border-bottom:1px solid rgba(128,128,128,.25)"
    head = "".join(f'<th style="{cell}">{esc(h)}</th>' for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td style="{cell}">{v}</td>' for v in row) + "</tr>" for row in rows
    )
    return (f'<table class="{css_class}" style="border-collapse:collapse">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def lab_link(path: str | None, root: Path) -> str:
    """A link that opens ``path`` in JupyterLab when it lies under ``root``, else the path."""
    if not path:
        return '<span style="opacity:.6">-</span>'
    try:
        relative = Path(path).resolve().relative_to(root.resolve())
    except ValueError:
        return f'<span title="{esc(path)}">{esc(Path(path).name)}</span>'
    return link(f"/lab/tree/{relative.as_posix()}", Path(path).name, title=path)
