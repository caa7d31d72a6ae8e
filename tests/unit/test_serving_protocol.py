"""The scoring protocol without a server: formats in, validated columns or a 4xx out."""
from __future__ import annotations

import json
import math

import pytest

from workbench.serving.protocol import Column, Limits, RequestError, parse_body, to_batch

SCHEMA = [
    Column("age", "int", nullable=False),
    Column("charges", "float", nullable=True),
    Column("plan", "str", nullable=False),
    Column("active", "bool", nullable=False),
]
ROWS = [{"age": 30, "charges": 10.5, "plan": "basic", "active": True},
        {"age": 41, "charges": None, "plan": "pro", "active": False}]


DEFAULT_LIMITS = Limits()


def batch(body: bytes | dict, content_type: str = "application/json",
          limits: Limits = DEFAULT_LIMITS):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return to_batch(*parse_body(raw, content_type), SCHEMA, limits)


@pytest.mark.parametrize("body, content_type", [
    ({"dataframe_split": {"columns": list(ROWS[0]), "data": [list(r.values()) for r in ROWS]}}, "application/json"),
    ({"dataframe_split": {"columns": list(ROWS[0]), "data": [list(r.values()) for r in ROWS], "index": [0, 1]}},
     "application/json; charset=utf-8"),
    ({"dataframe_records": ROWS}, "application/json"),
    ({"instances": ROWS}, "application/json"),
    ({"inputs": ROWS}, "application/json"),
    ({"inputs": {k: [r[k] for r in ROWS] for k in ROWS[0]}}, "application/json"),
    (b"age,charges,plan,active\n30,10.5,basic,true\n41,,pro,false\n", "text/csv"),
])
def test_every_format_gives_the_same_columns(body, content_type):
    result = batch(body, content_type)
    assert result.rows == 2 and result.columns == ["age", "charges", "plan", "active"]
    assert result.values["age"] == [30, 41]
    assert result.values["charges"][0] == 10.5 and math.isnan(result.values["charges"][1])
    assert result.values["plan"] == ["basic", "pro"] and result.values["active"] == [True, False]


def test_columns_come_in_signature_order():
    reordered = [{k: r[k] for k in reversed(list(r))} for r in ROWS]
    assert batch({"dataframe_records": reordered}).columns == ["age", "charges", "plan", "active"]


@pytest.mark.parametrize("body, content_type, status, message", [
    (b"{", "application/json", 400, "not valid JSON"),
    (b"NaN", "application/json", 400, "not valid JSON"),
    (b"[1, 2]", "application/json", 400, "must be a JSON object"),
    ({}, "application/json", 400, "exactly one of the keys"),
    ({"dataframe_records": ROWS, "instances": ROWS}, "application/json", 400, "exactly one of the keys"),
    ({"dataframe_records": ROWS, "params": {"a": 1}}, "application/json", 400, "'params' is not supported"),
    ({"dataframe_split": {"data": []}}, "application/json", 400, "columns must be a list"),
    ({"dataframe_split": {"columns": ["age"], "data": [[1]], "extra": 1}}, "application/json", 400, "unknown key(s) 'extra'"),
    ({"dataframe_split": {"columns": ["age", "age"], "data": [[1, 2]]}}, "application/json", 400, "duplicate names"),
    ({"dataframe_records": [ROWS[0], {"age": 1}]}, "application/json", 400, "different columns"),
    ({"dataframe_records": [1, 2]}, "application/json", 400, "list of records"),
    ({"inputs": {"age": [1], "plan": ["a", "b"]}}, "application/json", 400, "different lengths"),
    ({"dataframe_records": []}, "application/json", 400, "the batch is empty"),
    ({"dataframe_records": [{**ROWS[0], "zip": 1}]}, "application/json", 400, "unknown column(s) 'zip'"),
    ({"dataframe_records": [{k: v for k, v in ROWS[0].items() if k != "plan"}]}, "application/json", 400,
     "missing column(s) 'plan'"),
    ({"dataframe_records": [{**ROWS[0], "age": "thirty"}]}, "application/json", 400, "'age' expects int, got string at row 0"),
    ({"dataframe_records": [{**ROWS[0], "age": 30.5}]}, "application/json", 400, "'age' expects int"),
    ({"dataframe_records": [{**ROWS[0], "age": True}]}, "application/json", 400, "'age' expects int"),
    ({"dataframe_records": [{**ROWS[0], "charges": "x"}]}, "application/json", 400, "'charges' expects float"),
    ({"dataframe_records": [{**ROWS[0], "active": 1}]}, "application/json", 400, "'active' expects bool"),
    ({"dataframe_records": [ROWS[0], {**ROWS[0], "age": None}]}, "application/json", 400, "'age' (int) is null at row 1"),
    ({"dataframe_records": [{**ROWS[0], "plan": None}]}, "application/json", 400, "'plan' (str) is null"),
    (b"age,charges,plan,active\nabc,1,x,true\n", "text/csv", 400, "'age' expects int, got a non-int CSV value"),
    (b"age,charges\n1\n", "text/csv", 400, "CSV row 0 has 1 fields"),
    (b"", "text/csv", 400, "CSV body is empty"),
    (b"\xff\xfe", "text/csv", 400, "not UTF-8"),
    (b"{}", "text/plain", 415, "'text/plain' is not supported"),
    (b"{}", None, 415, "'(none)' is not supported"),
])
def test_bad_input_is_a_4xx_naming_the_problem(body, content_type, status, message):
    with pytest.raises(RequestError) as raised:
        batch(body, content_type)
    assert raised.value.status == status
    assert message in raised.value.message
    assert set(raised.value.body()) == {"error_code", "message"}


def test_row_limit_is_413():
    with pytest.raises(RequestError) as raised:
        batch({"dataframe_records": ROWS * 3}, limits=Limits(max_rows=5))
    assert raised.value.status == 413 and "6 rows; the limit is 5" in raised.value.message


def test_error_messages_never_echo_the_payload():
    secret = "s3cr3t-" + "x" * 500
    for body in ({"dataframe_records": [{**ROWS[0], secret: 1}]},
                 {"dataframe_records": [{**ROWS[0], "plan": 7, "note": secret}]},
                 {secret: ROWS}):
        with pytest.raises(RequestError) as raised:
            batch(body)
        assert secret not in raised.value.message and len(raised.value.message) < 300


def test_many_unknown_columns_are_summarised():
    extra = {f"col{i}": 1 for i in range(40)}
    with pytest.raises(RequestError, match="and 35 more"):
        batch({"dataframe_records": [{**ROWS[0], **extra}]})


def test_without_a_schema_columns_pass_through():
    raw = json.dumps({"dataframe_records": [{"a": 1, "b": "x"}]}).encode()
    result = to_batch(*parse_body(raw, "application/json"), None, Limits())
    assert result.columns == ["a", "b"] and result.values == {"a": [1], "b": ["x"]}
