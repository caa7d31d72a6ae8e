"""The naming convention: a model instance is ``{instance}_{version}_{data_date}``.

- ``instance``: what the model is for, a lowercase slug without underscores (``churn``,
  ``churn-eu``); it is the registered model's name in MLflow.
- ``version``: ``v<N>``, one algorithm + feature set + hyperparameters.
- ``data_date``: the training data's cut-off, a real calendar date written ``YYYYMMDD``.

Retraining a version on newer data gives a new instance name with a new ``data_date``.
A model reference (what commands accept) is a full name, ``instance@alias`` or a
``models:/`` URI. Pure functions, no I/O.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from workbench.errors import InvalidModelName

PROMOTION_ALIASES = ("champion", "challenger")

_INSTANCE = re.compile(r"[a-z][a-z0-9-]*[a-z0-9]|[a-z]")
_VERSION = re.compile(r"v([1-9][0-9]*)")
_DATE = re.compile(r"[0-9]{8}")
_ALIAS = re.compile(r"[A-Za-z0-9_-]+")
_MAX_INSTANCE = 48


@dataclass(frozen=True, order=True)
class ModelName:
    """A full model instance name; ``str()`` gives ``churn_v2_20240131``."""

    instance: str
    version: str
    data_date: str

    def __post_init__(self) -> None:
        check_instance(self.instance)
        check_version(self.version)
        check_data_date(self.data_date)

    def __str__(self) -> str:
        return f"{self.instance}_{self.version}_{self.data_date}"

    @property
    def full_name(self) -> str:
        return str(self)

    @property
    def version_number(self) -> int:
        return int(self.version[1:])

    @property
    def date(self) -> dt.date:
        return dt.datetime.strptime(self.data_date, "%Y%m%d").date()

    @classmethod
    def parse(cls, name: str) -> ModelName:
        """Parse ``instance_version_datadate``.

        Raises:
            InvalidModelName: naming which part is wrong.
        """
        if not isinstance(name, str) or not name:
            raise InvalidModelName("model name is empty; expected {instance}_{version}_{data_date}")
        parts = name.split("_")
        if len(parts) != 3:
            raise InvalidModelName(
                f"model name {name!r} has {len(parts)} part(s); expected "
                "{instance}_{version}_{data_date} with exactly two underscores, "
                "e.g. churn_v2_20240131"
            )
        return cls(*parts)

    def with_data_date(self, data_date: str | dt.date) -> ModelName:
        """The same version retrained on another cut-off (a new instance name)."""
        return ModelName(self.instance, self.version, format_data_date(data_date))


def check_instance(instance: str) -> str:
    if not instance:
        raise InvalidModelName("instance is empty; use a lowercase slug like 'churn'", "instance")
    if "_" in instance:
        raise InvalidModelName(
            f"instance {instance!r} contains '_'; underscores separate the name's parts, "
            f"use '-' instead (e.g. {instance.replace('_', '-')!r})",
            "instance",
        )
    if len(instance) > _MAX_INSTANCE or not _INSTANCE.fullmatch(instance):
        raise InvalidModelName(
            f"instance {instance!r} is not a lowercase slug: start with a letter, use a-z, 0-9 "
            f"and '-', at most {_MAX_INSTANCE} characters (e.g. 'churn')",
            "instance",
        )
    return instance


def check_version(version: str) -> str:
    if not _VERSION.fullmatch(version or ""):
        raise InvalidModelName(
            f"version {version!r} is not v<N> with N a positive integer (e.g. 'v1', 'v2')",
            "version",
        )
    return version


def check_data_date(data_date: str) -> str:
    if not _DATE.fullmatch(data_date or ""):
        raise InvalidModelName(
            f"data_date {data_date!r} is not YYYYMMDD (e.g. '20240131')", "data_date"
        )
    try:
        dt.datetime.strptime(data_date, "%Y%m%d")
    except ValueError:
        raise InvalidModelName(
            f"data_date {data_date!r} is not a real calendar date", "data_date"
        ) from None
    return data_date


def format_data_date(value: str | dt.date | dt.datetime) -> str:
    """``YYYYMMDD`` from a date, or from a string in ``YYYYMMDD`` or ``YYYY-MM-DD`` form."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.strftime("%Y%m%d")
    text = str(value).strip()
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        text = text.replace("-", "")
    return check_data_date(text)


def build_name(
    name: str, version: str | None = None, data_date: str | dt.date | None = None
) -> ModelName:
    """A ModelName from what a user typed: a full name, or ``instance_version`` plus a date,
    or an instance plus version and date.

    Raises:
        InvalidModelName: the parts do not add up to a full name.
    """
    if not name:
        raise InvalidModelName("model name is empty; use a lowercase slug like 'churn'", "instance")
    parts = name.split("_")
    if len(parts) == 3 and version is None and data_date is None:
        return ModelName.parse(name)
    if len(parts) == 3:
        given = ModelName.parse(name)
        if (version and version != given.version) or (
            data_date and format_data_date(data_date) != given.data_date
        ):
            raise InvalidModelName(f"{name!r} is a full name already; do not also pass a version or date")
        return given
    if len(parts) == 2:
        if version and version != parts[1]:
            raise InvalidModelName(f"{name!r} names version {parts[1]} but {version} was given", "version")
        version = parts[1]
        name = parts[0]
    if not version:
        raise InvalidModelName(f"no version for {name!r}; pass it as {name}_v1 or --version v1", "version")
    if data_date is None:
        raise InvalidModelName(
            f"no data_date for {name}_{version}; pass --data-date YYYYMMDD (the training data cut-off)",
            "data_date",
        )
    return ModelName(name, version, format_data_date(data_date))


@dataclass(frozen=True)
class ModelRef:
    """What a user names a model by, parsed but not yet looked up.

    Exactly one of ``alias`` or ``number`` is set: a full name becomes the alias equal to
    itself (every instance carries its full name as an alias).

    Attributes:
        registered_model: the MLflow registered model (the instance).
        alias: an alias such as ``champion`` or a full name.
        number: an MLflow model version number (from ``models:/name/3``).
        name: the parsed full name when the reference was one.
    """

    registered_model: str
    alias: str | None = None
    number: int | None = None
    name: ModelName | None = None

    @property
    def uri(self) -> str:
        if self.number is not None:
            return f"models:/{self.registered_model}/{self.number}"
        return f"models:/{self.registered_model}@{self.alias}"

    def __str__(self) -> str:
        return str(self.name) if self.name else self.uri


def parse_ref(ref: str) -> ModelRef:
    """Parse a full name, ``instance@alias`` or ``models:/name/N`` / ``models:/name@alias``.

    ``models:/`` URIs may name registered models outside the convention (plain MLflow).

    Raises:
        InvalidModelName: the reference is none of the accepted forms.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidModelName(
            "model reference is empty; use a full name (churn_v2_20240131), "
            "instance@alias (churn@champion) or models:/churn/3"
        )
    ref = ref.strip()
    if ref.startswith("models:/"):
        body = ref[len("models:/"):]
        if "@" in body:
            model, alias = body.split("@", 1)
            return _with_alias(model, alias, strict=False)
        if body.count("/") == 1:
            model, number = body.split("/")
            if model and number.isascii() and number.isdigit() and int(number) > 0:
                return ModelRef(model, number=int(number))
        if body == "" or "/" in body:
            raise InvalidModelName(
                f"{ref!r} is not models:/<name>/<version number> or models:/<name>@<alias>"
            )
        raise InvalidModelName(
            f"{ref!r} names no version; use models:/{body}/<number> or models:/{body}@champion"
        )
    if "@" in ref:
        model, alias = ref.split("@", 1)
        return _with_alias(check_instance(model) if "_" not in model else model, alias, strict=True)
    name = ModelName.parse(ref)
    return ModelRef(name.instance, alias=str(name), name=name)


def _with_alias(model: str, alias: str, strict: bool) -> ModelRef:
    if not model:
        raise InvalidModelName("model reference has an empty model name before '@'")
    if strict and "_" in model:
        raise InvalidModelName(
            f"{model!r} before '@' must be an instance (e.g. 'churn@champion'), not a full name",
            "instance",
        )
    if not _ALIAS.fullmatch(alias or ""):
        raise InvalidModelName(
            f"alias {alias!r} is empty or has characters other than letters, digits, '_' and '-'",
            "alias",
        )
    name = None
    if "_" in alias:
        try:
            name = ModelName.parse(alias)
        except InvalidModelName:
            name = None
    return ModelRef(model, alias=alias, name=name)
