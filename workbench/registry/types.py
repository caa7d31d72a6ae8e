"""The registry's value types, shared by the registry service and the promotion gates.

Plain frozen dataclasses and the tag names they are read from; no MLflow import, no I/O.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from workbench import lineage
from workbench.naming import PROMOTION_ALIASES

MODEL_NAME_TAG = "model_name"
MODEL_VERSION_TAG = "model_version"
DATA_DATE_TAG = "data_date"
#: Prefix of the per-version audit tags (the last promotion only; the history is the record).
AUDIT_PREFIX = "workbench.promotion"
#: Prefix of the registered-model tags that hold the append-only promotion history.
HISTORY_PREFIX = "workbench.history."
PROFILE_TAG = "workbench.profile"
#: How a version's model file is stored: ``skops`` (data only) or ``cloudpickle`` (loads code).
SERIALIZATION_TAG = "workbench.serialization"
PROMOTE, ROLLBACK = "promote", "rollback"


@dataclass(frozen=True, repr=False)
class Instance:
    """One model instance: an MLflow model version seen through the naming convention.

    Metadata a model registered outside the convention lacks is ``None``.
    """

    registered_model: str
    number: int
    full_name: str | None
    model_version: str | None
    data_date: str | None
    run_id: str | None
    source: str
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    created_at: dt.datetime | None = None
    experiment_id: str | None = None

    def __repr__(self) -> str:
        aliases = ", ".join(self.promotion_aliases)
        return f"Instance({self.label}, {self.uri}{', ' + aliases if aliases else ''})"

    @property
    def uri(self) -> str:
        """A URI any MLflow loader accepts (``models:/churn/3``)."""
        return f"models:/{self.registered_model}/{self.number}"

    @property
    def label(self) -> str:
        return self.full_name or self.uri

    @property
    def promotion_aliases(self) -> tuple[str, ...]:
        return tuple(a for a in self.aliases if a in PROMOTION_ALIASES)

    @property
    def serialization(self) -> str | None:
        """``skops`` or ``cloudpickle`` (None for versions registered before it was recorded)."""
        return self.tags.get(SERIALIZATION_TAG)

    def as_dict(self) -> dict[str, Any]:
        return {
            "full_name": self.full_name,
            "registered_model": self.registered_model,
            "mlflow_version": self.number,
            "model_version": self.model_version,
            "data_date": self.data_date,
            "run_id": self.run_id,
            "aliases": list(self.aliases),
            "metrics": self.metrics,
            "params": self.params,
            "serialization": self.serialization,
            "lineage": {k: v for k, v in self.tags.items() if k.startswith(lineage.PREFIX)},
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "uri": self.uri,
        }


@dataclass(frozen=True)
class Promotion:
    """What ``promote`` (or ``rollback``) changed: ``alias`` moved from ``previous`` to ``current``.

    ``overridden`` names the gates that refused it and were overridden (usually none);
    ``record`` is the history entry written before the alias moved.
    """

    alias: str
    current: Instance
    previous: Instance | None
    by: str
    reason: str
    overridden: tuple[str, ...] = ()
    record: HistoryRecord | None = None


@dataclass(frozen=True)
class HistoryRecord:
    """One promotion as the append-only history keeps it.

    Attributes:
        id: unique and sortable in time order (UTC timestamp, then a random suffix).
        action: ``promote`` or ``rollback``.
        alias: the alias that moved.
        from_version / from_name: what held it before (None when nothing did).
        to_version / to_name: what it points at after.
        by, at, reason: who, when (ISO 8601, UTC), why.
        overridden: the gates that refused it and were overridden (or bypassed by a rollback).
    """

    id: str
    action: str
    alias: str
    from_version: int | None
    from_name: str | None
    to_version: int
    to_name: str
    by: str
    at: str
    reason: str
    overridden: tuple[str, ...] = ()

    @staticmethod
    def new_id(now: dt.datetime) -> str:
        # A microsecond timestamp orders records; the random part keeps two at once apart.
        return f"{now.astimezone(dt.timezone.utc):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:12]}"

    @property
    def tag_key(self) -> str:
        return f"{HISTORY_PREFIX}{self.id}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "action": self.action, "alias": self.alias,
            "from_version": self.from_version, "from": self.from_name,
            "to_version": self.to_version, "to": self.to_name,
            "by": self.by, "at": self.at, "reason": self.reason,
            "overridden": list(self.overridden),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)

    @classmethod
    def from_tag(cls, key: str, value: str) -> HistoryRecord | None:
        """The record a history tag holds; None for a tag that is not one (never raises)."""
        if not key.startswith(HISTORY_PREFIX):
            return None
        try:
            data = json.loads(value)
            return cls(
                id=key[len(HISTORY_PREFIX):], action=str(data.get("action", PROMOTE)),
                alias=str(data["alias"]),
                from_version=_int_or_none(data.get("from_version")), from_name=data.get("from"),
                to_version=int(data["to_version"]), to_name=str(data["to"]),
                by=str(data.get("by", "")), at=str(data.get("at", "")),
                reason=str(data.get("reason", "")),
                overridden=tuple(str(g) for g in data.get("overridden", ())),
            )
        except (ValueError, KeyError, TypeError):
            return None


def history_from_tags(tags: dict[str, str], alias: str | None = None) -> list[HistoryRecord]:
    """The promotion history held in a registered model's tags, oldest first."""
    records = [r for k, v in tags.items() if (r := HistoryRecord.from_tag(k, v)) is not None]
    if alias is not None:
        records = [r for r in records if r.alias == alias]
    return sorted(records, key=lambda r: r.id)


def rollback_source(history: list[HistoryRecord], alias: str, holder: int | None
                    ) -> HistoryRecord | None:
    """The promotion a rollback of ``alias`` undoes: the last one that gave it to ``holder``.

    Only promotions count, not rollbacks, so rolling back twice walks back twice (C -> B ->
    A after promotions A -> B -> C) instead of undoing the rollback. Re-pointing an alias at
    its own holder replaced nothing and is skipped.

    Returns:
        That record (its ``from_version`` is where the alias goes back to), or None when no
        promotion handed ``alias`` to ``holder`` from another instance.
    """
    if holder is None:
        return None
    for record in reversed(history):
        if (record.alias == alias and record.action == PROMOTE and record.to_version == holder
                and record.from_version is not None and record.from_version != holder):
            return record
    return None


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
