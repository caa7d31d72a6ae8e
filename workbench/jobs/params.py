"""Job parameters checked against the notebook's ``parameters`` cell before anything starts.

Command-line values arrive as strings (papermill's ``-p NAME VALUE``); each is converted to
the type of the default in the notebook, so ``-p data_date 20240131`` stays a string where
the notebook says ``data_date = "20240131"`` (papermill alone would make it an int).
"""
from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from workbench.errors import ParameterError

_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (float, int),
    "str": (str,),
    "bool": (bool,),
    "list": (list, tuple),
    "dict": (dict,),
}


def declared_parameters(notebook: Path) -> dict[str, dict[str, Any]]:
    """Name -> papermill's description (``inferred_type_name``, ``default``) of each parameter.

    Raises:
        ParameterError: the notebook is missing or has no cell tagged ``parameters``.
    """
    import nbformat
    from papermill import inspect_notebook

    if not notebook.is_file():
        raise ParameterError(f"notebook {notebook} does not exist")
    try:
        nb = nbformat.read(str(notebook), as_version=4)
    except Exception as exc:
        raise ParameterError(f"{notebook} is not a readable notebook ({exc.__class__.__name__})") from exc
    if not any("parameters" in cell.get("metadata", {}).get("tags", []) for cell in nb.cells):
        raise ParameterError(
            f"{notebook} has no cell tagged 'parameters'; tag the cell holding the defaults "
            "(JupyterLab: property inspector > cell tags) so jobs can set them"
        )
    if not nb.metadata.get("kernelspec", {}).get("name"):
        raise ParameterError(
            f"{notebook} names no kernel (metadata.kernelspec); open it in JupyterLab, pick a "
            "kernel and save, so jobs know what runs it"
        )
    return {name: dict(p) for name, p in inspect_notebook(str(notebook)).items()}


def check_parameters(notebook: Path, given: Mapping[str, Any],
                     declared: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Convert and check ``given`` against the notebook's declared parameters.

    ``declared`` (from ``declared_parameters``) saves reading the notebook again.

    Returns:
        The parameters with command-line strings converted to the declared types.

    Raises:
        ParameterError: an unknown name, or a value that is not of the declared type.
    """
    declared = declared_parameters(notebook) if declared is None else declared
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ParameterError(
            f"{notebook.name} has no parameter {', '.join(map(repr, unknown))}; "
            f"it declares: {', '.join(declared) or '(none)'}", parameter=unknown[0],
        )
    return {name: _coerce(name, value, declared[name]) for name, value in given.items()}


def _coerce(name: str, value: Any, declared: Mapping[str, Any]) -> Any:
    type_name = declared_type(declared)
    expected = _TYPES.get(type_name)
    if expected is None:  # no default or an expression: take the value as papermill would
        return parse_literal(value) if isinstance(value, str) else value
    if isinstance(value, str) and type_name != "str":
        value = _from_text(name, value, type_name, declared)
    if isinstance(value, bool) and type_name in {"int", "float"}:
        raise _mismatch(name, value, type_name, declared)
    if not isinstance(value, expected):
        raise _mismatch(name, value, type_name, declared)
    if type_name == "float":
        value = float(cast(float, value))  # an int or a float: checked just above
        if math.isnan(value):
            raise _mismatch(name, value, type_name, declared)
    return list(value) if type_name == "list" else value


def declared_type(declared: Mapping[str, Any]) -> str:
    """The parameter's type: its annotation, else the type of its literal default."""
    annotated = declared.get("inferred_type_name", "None")
    if annotated in _TYPES:
        return annotated
    default = declared.get("default")
    if isinstance(default, str):
        value = parse_literal(default)
        if value is not default and not (isinstance(value, str) and value == default):
            return {bool: "bool", int: "int", float: "float", str: "str", list: "list",
                    tuple: "list", dict: "dict"}.get(type(value), "None")
    return "None"


def _from_text(name: str, text: str, type_name: str, declared: Mapping[str, Any]) -> Any:
    if type_name == "bool":
        lowered = text.strip().lower()
        if lowered in {"true", "1", "yes"}:
            return True
        if lowered in {"false", "0", "no"}:
            return False
        raise _mismatch(name, text, type_name, declared)
    value = parse_literal(text)
    if type_name == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def parse_literal(text: str) -> Any:
    """A Python literal from text (``3``, ``0.5``, ``[1, 2]``, ``True``), else the text itself."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _mismatch(name: str, value: Any, type_name: str, declared: Mapping[str, Any]) -> ParameterError:
    return ParameterError(
        f"parameter {name!r} expects {type_name} (default {declared.get('default')}), "
        f"got {value!r}; pass e.g. -p {name} {declared.get('default')}", parameter=name,
    )


def parameter_fields(notebook: Path) -> list[dict[str, Any]]:
    """The notebook's parameters as a form shows them: name, type, default value, help.

    ``default`` is the default's value when it is a literal (``"v2"``, ``0.5``), else its
    source text; ``type`` is ``int``, ``float``, ``str``, ``bool``, ``list``, ``dict`` or
    ``None`` (anything: the value is taken as papermill would).

    Raises:
        ParameterError: the notebook is missing or has no cell tagged ``parameters``.
    """
    fields = []
    for name, declared in declared_parameters(notebook).items():
        source = declared.get("default")
        value = parse_literal(source) if isinstance(source, str) else source
        fields.append({"name": name, "type": declared_type(declared), "default": value,
                       "source": source, "help": declared.get("help") or ""})
    return fields
