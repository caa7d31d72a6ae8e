"""The text a label id is compared by, on both sides of the label join.

The writer stores a one-row record's id this way when it is told the id column (schema version
5), and ``workbench monitor labels`` keys the labels of a file the same way, so an id logged as
``7`` (or as ``7.0``, an integer column with gaps read as float) meets the label keyed ``7``.
"""
from __future__ import annotations

from typing import Any

from workbench.store.schema import ID_VALUE_LEN


def key_text(value: Any) -> str | None:
    """An id as the text both sides are compared by (at most ``ID_VALUE_LEN`` characters, as
    stored: a longer id is known by its start); None for a missing one.

    Integers read back from JSON and from CSV print alike; a float that is a whole number
    (an integer column with gaps, read as float) prints as the integer.
    """
    if value is None:
        return None
    if isinstance(value, float):
        if value != value:
            return None
        if value.is_integer():
            return str(int(value))
    if hasattr(value, "item"):  # numpy scalars
        return key_text(value.item())
    return str(value)[:ID_VALUE_LEN]
