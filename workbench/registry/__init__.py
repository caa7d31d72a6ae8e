"""The model registry under the naming convention (see :mod:`workbench.registry.service`).

- :mod:`~workbench.registry.types`: the value types (``Instance``, ``Promotion``,
  ``HistoryRecord``) and the tag names, shared with :mod:`workbench.promotion`;
- :mod:`~workbench.registry.service`: ``Registry``, the engine under every face;
- :mod:`~workbench.registry.model_io`: saving models (skops, cloudpickle where it must).

``from workbench.registry import Registry, Instance`` keeps working for every caller.
"""
from __future__ import annotations

from workbench.registry.service import Registry
from workbench.registry.types import (
    AUDIT_PREFIX,
    DATA_DATE_TAG,
    HISTORY_PREFIX,
    MODEL_NAME_TAG,
    MODEL_VERSION_TAG,
    PROFILE_TAG,
    SERIALIZATION_TAG,
    HistoryRecord,
    Instance,
    Promotion,
)

__all__ = [
    "AUDIT_PREFIX", "DATA_DATE_TAG", "HISTORY_PREFIX", "MODEL_NAME_TAG", "MODEL_VERSION_TAG",
    "PROFILE_TAG", "SERIALIZATION_TAG", "HistoryRecord", "Instance", "Promotion", "Registry",
]
