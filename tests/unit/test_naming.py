"""The naming convention: full names, building names from parts, and model references."""
from __future__ import annotations

import datetime as dt

import pytest

from workbench.errors import InvalidModelName, WorkbenchError
from workbench.naming import ModelName, ModelRef, build_name, format_data_date, parse_ref

# --------------------------------------------------------------------------- full names


@pytest.mark.parametrize(
    ("name", "instance", "version", "data_date", "number", "date"),
    [
        ("churn_v2_20240131", "churn", "v2", "20240131", 2, dt.date(2024, 1, 31)),
        ("churn-eu_v10_20240229", "churn-eu", "v10", "20240229", 10, dt.date(2024, 2, 29)),
        ("a_v1_20000101", "a", "v1", "20000101", 1, dt.date(2000, 1, 1)),
        ("m2-x9_v123_19991231", "m2-x9", "v123", "19991231", 123, dt.date(1999, 12, 31)),
        ("a" * 48 + "_v1_20240101", "a" * 48, "v1", "20240101", 1, dt.date(2024, 1, 1)),
    ],
)
def test_valid_name_round_trips_and_exposes_parts(name, instance, version, data_date, number, date):
    parsed = ModelName.parse(name)
    assert str(parsed) == name
    assert parsed.full_name == name
    assert (parsed.instance, parsed.version, parsed.data_date) == (instance, version, data_date)
    assert parsed.version_number == number
    assert isinstance(parsed.version_number, int)
    assert parsed.date == date
    assert ModelName(instance, version, data_date) == parsed


@pytest.mark.parametrize(
    ("name", "part", "bad_value"),
    [
        # instance
        ("Churn_v1_20240131", "instance", "Churn"),
        ("cHurn_v1_20240131", "instance", "cHurn"),
        ("1churn_v1_20240131", "instance", "1churn"),
        ("-churn_v1_20240131", "instance", "-churn"),
        ("churn-_v1_20240131", "instance", "churn-"),
        ("ch.urn_v1_20240131", "instance", "ch.urn"),
        ("_v1_20240131", "instance", None),  # empty instance: nothing to quote
        ("a" * 49 + "_v1_20240131", "instance", "a" * 49),
        # version
        ("churn_v0_20240131", "version", "v0"),
        ("churn_V1_20240131", "version", "V1"),
        ("churn_1_20240131", "version", "'1'"),
        ("churn_v01_20240131", "version", "v01"),
        ("churn_vx_20240131", "version", "vx"),
        ("churn_v_20240131", "version", "'v'"),
        ("churn_v-1_20240131", "version", "v-1"),
        # data_date
        ("churn_v1_2024013", "data_date", "2024013"),
        ("churn_v1_202401311", "data_date", "202401311"),
        ("churn_v1_20240230", "data_date", "20240230"),
        ("churn_v1_20230229", "data_date", "20230229"),  # not a leap year
        ("churn_v1_20241301", "data_date", "20241301"),
        ("churn_v1_20240100", "data_date", "20240100"),
        ("churn_v1_abcdefgh", "data_date", "abcdefgh"),
        ("churn_v1_2024-01-31", "data_date", "2024-01-31"),
        # number of parts
        ("churn", "name", "churn"),
        ("churn_v1", "name", "churn_v1"),
        ("churn_eu_v1_20240131", "name", "churn_eu_v1_20240131"),
        ("churn_v1_20240131_", "name", "churn_v1_20240131_"),
        ("", "name", None),
    ],
)
def test_bad_name_names_the_wrong_part(name, part, bad_value):
    with pytest.raises(InvalidModelName) as info:
        ModelName.parse(name)
    assert info.value.part == part
    message = str(info.value)
    if bad_value is not None:
        assert bad_value in message
    if part != "name":
        assert part in message


def test_invalid_model_name_is_a_workbench_error_and_a_value_error():
    with pytest.raises(WorkbenchError):
        ModelName.parse("nope")
    with pytest.raises(ValueError):
        ModelName.parse("nope")


@pytest.mark.parametrize(
    ("instance", "version", "data_date", "part"),
    [
        ("churn_eu", "v1", "20240131", "instance"),
        ("churn", "v0", "20240131", "version"),
        ("churn", "v1", "20240231", "data_date"),
    ],
)
def test_constructor_checks_parts(instance, version, data_date, part):
    with pytest.raises(InvalidModelName) as info:
        ModelName(instance, version, data_date)
    assert info.value.part == part


def test_underscore_in_instance_suggests_a_dash():
    with pytest.raises(InvalidModelName, match="churn-eu"):
        ModelName("churn_eu", "v1", "20240131")


def test_with_data_date_keeps_instance_and_version():
    name = ModelName.parse("churn_v2_20240131")
    newer = name.with_data_date(dt.date(2024, 2, 29))
    assert str(newer) == "churn_v2_20240229"
    assert str(name) == "churn_v2_20240131"  # frozen, unchanged
    with pytest.raises(InvalidModelName):
        name.with_data_date("20240230")


def test_names_order_by_instance_version_then_date():
    names = [ModelName.parse(n) for n in ("churn_v2_20240229", "churn_v2_20240131", "alpha_v1_20990101")]
    assert [str(n) for n in sorted(names)] == [
        "alpha_v1_20990101",
        "churn_v2_20240131",
        "churn_v2_20240229",
    ]


# --------------------------------------------------------------------------- build_name


@pytest.mark.parametrize(
    ("name", "version", "data_date", "expected"),
    [
        ("churn_v2", None, "20240131", "churn_v2_20240131"),
        ("churn_v2", None, dt.date(2024, 1, 31), "churn_v2_20240131"),
        ("churn_v2", None, "2024-01-31", "churn_v2_20240131"),
        ("churn_v2", "v2", "20240131", "churn_v2_20240131"),  # same version repeated: fine
        ("churn", "v3", "20240131", "churn_v3_20240131"),
        ("churn", "v3", dt.date(2024, 2, 29), "churn_v3_20240229"),
        ("churn", "v3", dt.datetime(2024, 2, 29, 23, 59), "churn_v3_20240229"),
        ("churn_v2_20240131", None, None, "churn_v2_20240131"),
        # agreeing extras on a full name are tolerated
        ("churn_v2_20240131", "v2", None, "churn_v2_20240131"),
        ("churn_v2_20240131", None, "2024-01-31", "churn_v2_20240131"),
    ],
)
def test_build_name_forms(name, version, data_date, expected):
    built = build_name(name, version=version, data_date=data_date)
    assert isinstance(built, ModelName)
    assert str(built) == expected


@pytest.mark.parametrize(
    ("name", "version", "data_date", "part", "fragment"),
    [
        # conflicts with what the name already says
        ("churn_v2_20240131", "v3", None, "name", "full name already"),
        ("churn_v2_20240131", None, "20240201", "name", "full name already"),
        ("churn_v2", "v3", "20240131", "version", "v3"),
        # missing pieces
        ("churn", None, "20240131", "version", "no version"),
        ("churn_v2", None, None, "data_date", "no data_date"),
        ("churn", "v2", None, "data_date", "no data_date"),
        # bad pieces
        ("churn", "2", "20240131", "version", "'2'"),
        ("churn", "v2", "20240230", "data_date", "20240230"),
        ("Churn", "v2", "20240131", "instance", "Churn"),
        ("churn_v2_2024013", None, None, "data_date", "2024013"),
    ],
)
def test_build_name_errors(name, version, data_date, part, fragment):
    with pytest.raises(InvalidModelName) as info:
        build_name(name, version=version, data_date=data_date)
    assert info.value.part == part
    assert fragment in str(info.value)


# --------------------------------------------------------------------------- format_data_date


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.date(2024, 1, 31), "20240131"),
        (dt.date(1999, 12, 1), "19991201"),
        (dt.datetime(2024, 2, 29, 13, 45), "20240229"),
        ("2024-01-31", "20240131"),
        ("20240131", "20240131"),
        (" 2024-01-31 ", "20240131"),
    ],
)
def test_format_data_date(value, expected):
    assert format_data_date(value) == expected


@pytest.mark.parametrize("value", ["2024-02-30", "2024/01/31", "31-01-2024", "2024-1-31", "20241301", ""])
def test_format_data_date_rejects(value):
    with pytest.raises(InvalidModelName) as info:
        format_data_date(value)
    assert info.value.part == "data_date"


# --------------------------------------------------------------------------- parse_ref


@pytest.mark.parametrize(
    ("ref", "registered_model", "alias", "number", "name", "uri"),
    [
        (
            "churn_v2_20240131",
            "churn",
            "churn_v2_20240131",
            None,
            "churn_v2_20240131",
            "models:/churn@churn_v2_20240131",
        ),
        ("  churn_v2_20240131  ", "churn", "churn_v2_20240131", None, "churn_v2_20240131",
         "models:/churn@churn_v2_20240131"),
        ("churn@champion", "churn", "champion", None, None, "models:/churn@champion"),
        ("churn-eu@challenger", "churn-eu", "challenger", None, None, "models:/churn-eu@challenger"),
        ("churn@churn_v2_20240131", "churn", "churn_v2_20240131", None, "churn_v2_20240131",
         "models:/churn@churn_v2_20240131"),
        ("models:/churn/3", "churn", None, 3, None, "models:/churn/3"),
        ("models:/churn/12", "churn", None, 12, None, "models:/churn/12"),
        ("models:/churn@champion", "churn", "champion", None, None, "models:/churn@champion"),
        # outside the convention: allowed in a models:/ URI
        ("models:/plain_model_name@prod", "plain_model_name", "prod", None, None,
         "models:/plain_model_name@prod"),
        ("models:/Plain_Model/7", "Plain_Model", None, 7, None, "models:/Plain_Model/7"),
    ],
)
def test_parse_ref_accepts(ref, registered_model, alias, number, name, uri):
    parsed = parse_ref(ref)
    assert isinstance(parsed, ModelRef)
    assert parsed.registered_model == registered_model
    assert parsed.alias == alias
    assert parsed.number == number
    if name is None:
        assert parsed.name is None
    else:
        assert parsed.name == ModelName.parse(name)
    assert parsed.uri == uri
    # exactly one of alias / number
    assert (parsed.alias is None) != (parsed.number is None)


def test_parse_ref_number_is_an_int():
    ref = parse_ref("models:/churn/3")
    assert ref.number == 3 and isinstance(ref.number, int)


def test_full_name_ref_alias_equals_full_name():
    ref = parse_ref("churn_v2_20240131")
    assert ref.alias == "churn_v2_20240131"
    assert str(ref) == "churn_v2_20240131"


def test_ref_str_is_uri_without_a_full_name():
    assert str(parse_ref("churn@champion")) == "models:/churn@champion"
    assert str(parse_ref("models:/churn/3")) == "models:/churn/3"


@pytest.mark.parametrize(
    ("ref", "part", "fragment"),
    [
        ("", "name", "empty"),
        ("   ", "name", "empty"),
        ("models:/", "name", "models:/"),
        ("models:/churn", "name", "names no version"),
        ("models:/churn/0", "name", "models:/churn/0"),
        ("models:/churn/-1", "name", "models:/churn/-1"),
        ("models:/churn/x", "name", "models:/churn/x"),
        ("models:/a/b/3", "name", "models:/a/b/3"),
        ("models:/@prod", "name", "empty model name"),
        ("models:/churn@", "alias", "alias"),
        ("churn_v1@champion", "instance", "churn_v1"),
        ("churn_v1_20240131@champion", "instance", "churn_v1_20240131"),
        ("churn@bad alias", "alias", "bad alias"),
        ("churn@", "alias", "alias"),
        ("churn@a/b", "alias", "a/b"),
        ("@champion", "instance", "empty"),
        ("Churn@champion", "instance", "Churn"),
        ("churn", "name", "churn"),
        ("churn_v0_20240131", "version", "v0"),
    ],
)
def test_parse_ref_rejects(ref, part, fragment):
    with pytest.raises(InvalidModelName) as info:
        parse_ref(ref)
    assert info.value.part == part
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("ref", "uri"),
    [
        (ModelRef("churn", number=3), "models:/churn/3"),
        (ModelRef("churn", alias="champion"), "models:/churn@champion"),
        (ModelRef("plain_model", alias="churn_v1_20240131"), "models:/plain_model@churn_v1_20240131"),
    ],
)
def test_model_ref_uri(ref, uri):
    assert ref.uri == uri
