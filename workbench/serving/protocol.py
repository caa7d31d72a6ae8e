"""The MLflow scoring protocol, strictly: request bytes -> validated columns, or a 4xx.

Accepted bodies (as ``mlflow models serve`` accepts them):
  JSON ``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}``
  JSON ``{"dataframe_records": [{...}, ...]}``
  JSON ``{"instances": [{...}, ...]}`` or ``{"inputs": {...columns...} | [{...}, ...]}``
  ``text/csv`` with a header row.

Every rejection is a ``RequestError`` whose message names the offending field (never the
payload, never the whole schema). Free of any web framework, so it is tested directly.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_NAMES_SHOWN = 5
JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv", "application/csv")


class RequestError(Exception):
    """A request the server refuses: HTTP status, MLflow-style error code, one-line message."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def body(self) -> dict[str, str]:
        return {"error_code": self.error_code, "message": self.message}


def bad_request(message: str) -> RequestError:
    return RequestError(400, "BAD_REQUEST", message)


@dataclass(frozen=True)
class Column:
    """One input column of the model's signature.

    Attributes:
        name: column name.
        kind: ``float`` (double/float), ``int`` (long/integer), ``bool``, ``str`` or ``any``.
        nullable: whether null/NaN may appear (floats carry NaN; other kinds cannot).
        required: whether the column must be present.
    """

    name: str
    kind: str
    nullable: bool
    required: bool = True


@dataclass(frozen=True)
class Limits:
    max_rows: int = 10_000
    max_body_bytes: int = 10 * 1024 * 1024


@dataclass
class Batch:
    """Validated input: column name -> values (one list per column), in signature order."""

    columns: list[str]
    values: dict[str, list[Any]]
    rows: int


def _names(names: Sequence[str]) -> str:
    shown = [repr(str(n)[:64]) for n in list(names)[:MAX_NAMES_SHOWN]]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_body(body: bytes, content_type: str | None) -> tuple[list[str] | None, Any, str]:
    """Decode the body into (columns or None, rows-or-columns payload, format name).

    Raises:
        RequestError: 415 for an unsupported content type, 400 for malformed content.
    """
    kind = media_type(content_type)
    if kind in CSV_TYPES:
        return _parse_csv(body)
    if kind not in JSON_TYPES:
        raise RequestError(
            415, "UNSUPPORTED_MEDIA_TYPE",
            f"content type {kind[:64] or '(none)'!r} is not supported; send application/json or text/csv",
        )
    import orjson

    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"body is not valid JSON ({str(exc).split(':', 1)[0][:80]})") from None
    if not isinstance(document, dict):
        raise bad_request("body must be a JSON object with one of the keys dataframe_split, "
                          "dataframe_records, instances or inputs")
    keys = [k for k in document if k != "params"]
    if len(keys) != 1 or keys[0] not in ("dataframe_split", "dataframe_records", "instances", "inputs"):
        raise bad_request(
            "body must have exactly one of the keys dataframe_split, dataframe_records, instances, "
            f"inputs; got {_names(keys) or 'none'}")
    if "params" in document:
        raise bad_request("'params' is not supported: this model takes no inference parameters")
    fmt = keys[0]
    payload = document[fmt]
    if fmt == "dataframe_split":
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            raise bad_request("dataframe_split must be an object with 'columns' and 'data' (a list of rows)")
        columns = payload.get("columns")
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise bad_request("dataframe_split.columns must be a list of column names")
        extra = [k for k in payload if k not in ("columns", "data", "index")]
        if extra:
            raise bad_request(f"dataframe_split has unknown key(s) {_names(extra)}")
        return columns, payload["data"], fmt
    if fmt == "inputs" and isinstance(payload, dict):
        return None, payload, "inputs_columns"
    if not isinstance(payload, list):
        raise bad_request(f"{fmt} must be a list of records")
    return None, payload, fmt


def _parse_csv(body: bytes) -> tuple[list[str], list[list[Any]], str]:
    import csv
    import io

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("CSV body is not UTF-8") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise bad_request("CSV body is empty; send a header row and at least one data row") from None
    except csv.Error as exc:
        raise bad_request(f"CSV body is malformed ({exc})") from None
    try:
        rows = [row for row in reader if row]
    except csv.Error as exc:
        raise bad_request(f"CSV body is malformed ({exc})") from None
    for number, row in enumerate(rows):
        if len(row) != len(header):
            raise bad_request(f"CSV row {number} has {len(row)} fields; the header has {len(header)}")
    # CSV cells are text: empty means missing, numbers are converted per column later.
    return header, [[_csv_cell(v) for v in row] for row in rows], "csv"


def _csv_cell(value: str) -> Any:
    if value == "":
        return None
    return _CsvText(value)


class _CsvText(str):
    """A CSV cell: text that may be read as a number or boolean when the column wants one."""


def to_batch(columns: list[str] | None, payload: Any, fmt: str, schema: Sequence[Column] | None,
             limits: Limits) -> Batch:
    """Turn decoded input into validated columns.

    Raises:
        RequestError: empty batch, too many rows, missing/unknown columns, wrong types,
            null where the signature forbids it (413 for too many rows).
    """
    if fmt == "inputs_columns":
        values, rows = _from_columnar(payload)
    elif columns is not None:
        values, rows = _from_split(columns, payload)
    else:
        values, rows = _from_records(payload, fmt)
    if rows == 0:
        raise bad_request("the batch is empty; send at least one row")
    if rows > limits.max_rows:
        raise RequestError(413, "REQUEST_LIMIT_EXCEEDED",
                           f"the batch has {rows} rows; the limit is {limits.max_rows}")
    if schema is None:
        return Batch(list(values), values, rows)
    return _validate(values, rows, schema, csv=fmt == "csv")


def _from_split(columns: list[str], data: list[Any]) -> tuple[dict[str, list[Any]], int]:
    if len(set(columns)) != len(columns):
        raise bad_request("dataframe_split.columns has duplicate names")
    width = len(columns)
    for number, row in enumerate(data):
        if not isinstance(row, list) or len(row) != width:
            raise bad_request(f"dataframe_split.data row {number} must be a list of {width} values")
    return {name: [row[i] for row in data] for i, name in enumerate(columns)}, len(data)


def _from_records(records: list[Any], fmt: str) -> tuple[dict[str, list[Any]], int]:
    if not records:
        return {}, 0
    first = records[0]
    if not isinstance(first, dict):
        raise bad_request(f"{fmt} must be a list of records (objects keyed by column name)")
    names = list(first)
    key_set = set(names)
    for number, record in enumerate(records):
        if not isinstance(record, dict):
            raise bad_request(f"{fmt}[{number}] is not an object keyed by column name")
        if record.keys() != key_set:
            differing = sorted(set(record) ^ key_set)
            raise bad_request(f"{fmt}[{number}] has different columns than the first record: "
                              f"{_names(differing)}")
    return {name: [r[name] for r in records] for name in names}, len(records)


def _from_columnar(columns: dict[str, Any]) -> tuple[dict[str, list[Any]], int]:
    lengths = set()
    for name, values in columns.items():
        if not isinstance(values, list):
            raise bad_request(f"inputs[{str(name)[:64]!r}] must be a list of values")
        lengths.add(len(values))
    if len(lengths) > 1:
        raise bad_request("inputs columns have different lengths")
    return dict(columns), lengths.pop() if lengths else 0


def _validate(values: dict[str, list[Any]], rows: int, schema: Sequence[Column], csv: bool) -> Batch:
    wanted = {c.name for c in schema}
    unknown = [n for n in values if n not in wanted]
    if unknown:
        raise bad_request(f"unknown column(s) {_names(unknown)}; the model takes {len(wanted)} columns "
                          "(GET /metadata lists them)")
    missing = [c.name for c in schema if c.required and c.name not in values]
    if missing:
        raise bad_request(f"missing column(s) {_names(missing)}")
    checked: dict[str, list[Any]] = {}
    for column in schema:
        if column.name in values:
            checked[column.name] = _check_column(column, values[column.name], csv)
    return Batch([c.name for c in schema if c.name in checked], checked, rows)


def _check_column(column: Column, cells: list[Any], csv: bool) -> list[Any]:
    kind = column.kind
    if kind == "any":
        return cells
    out = cells if not csv else [None if c is None else _from_csv_text(column, c, n)
                                 for n, c in enumerate(cells)]
    for number, cell in enumerate(out):
        if cell is None or (kind == "float" and isinstance(cell, float) and math.isnan(cell)):
            if not column.nullable:
                raise bad_request(f"column {column.name[:64]!r} ({kind}) is null at row {number}; "
                                  "the model's signature does not allow missing values there")
            continue
        if not _OK[kind](cell):
            got = type(cell).__name__ if not isinstance(cell, str) else "string"
            raise bad_request(f"column {column.name[:64]!r} expects {kind}, got {got} "
                              f"at row {number}")
    if kind == "float" and column.nullable:
        return [math.nan if c is None else c for c in out]
    return out


_OK = {
    "float": lambda v: (isinstance(v, (int, float))) and not isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
}


def _from_csv_text(column: Column, cell: Any, number: int) -> Any:
    if not isinstance(cell, _CsvText) or column.kind == "str":
        return str(cell) if isinstance(cell, _CsvText) else cell
    text = str(cell).strip()
    try:
        if column.kind == "int":
            return int(text)
        if column.kind == "float":
            return float(text)
        if column.kind == "bool":
            if text.lower() in ("true", "1"):
                return True
            if text.lower() in ("false", "0"):
                return False
    except ValueError:
        pass
    raise bad_request(f"column {column.name[:64]!r} expects {column.kind}, got a non-{column.kind} "
                      f"CSV value at row {number}")
