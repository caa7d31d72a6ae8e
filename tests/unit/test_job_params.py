"""Job parameters are checked and converted against the notebook's ``parameters`` cell."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from workbench.errors import ParameterError
from workbench.jobs.params import check_parameters, declared_parameters, parse_literal

PARAMETERS = '''name = "churn"
data_date = "20240131"
n = 3
rate = 0.5
flag = False
items = [1, 2]
opts = {}
anything = None
count: int = 1
'''
DECLARED = ["name", "data_date", "n", "rate", "flag", "items", "opts", "anything", "count"]


def write_notebook(path: Path, source: str = PARAMETERS, tagged: bool = True) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    params = nbformat.v4.new_code_cell(source)
    if tagged:
        params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Train"),
        params,
        nbformat.v4.new_code_cell("print(name, data_date, n)"),
    ]
    nbformat.write(nb, str(path))
    return path


@pytest.fixture()
def notebook(tmp_path: Path) -> Path:
    return write_notebook(tmp_path / "train.ipynb")


def test_declared_parameters_lists_every_name(notebook):
    assert list(declared_parameters(notebook)) == DECLARED


# ------------------------------------------------------------------ command-line strings


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("name", "fraud", "fraud"),
        ("name", "123", "123"),  # str default: stays a string
        ("data_date", "20240131", "20240131"),  # papermill alone would make an int
        ("data_date", "20240229", "20240229"),
        ("n", "3", 3),
        ("n", "-7", -7),
        ("count", "4", 4),  # annotated int
        ("rate", "2", 2.0),
        ("rate", "0.25", 0.25),
        ("rate", "1e-3", 0.001),
        ("flag", "true", True),
        ("flag", "True", True),
        ("flag", "yes", True),
        ("flag", "1", True),
        ("flag", "false", False),
        ("flag", "0", False),
        ("flag", "no", False),
        ("items", "[3]", [3]),
        ("items", "[]", []),
        ("items", "(1, 2)", [1, 2]),  # tuple text becomes a list
        ("opts", "{'a': 1}", {"a": 1}),
        ("opts", '{"k": [1, 2]}', {"k": [1, 2]}),
        ("anything", "5", 5),  # None default: a literal when the text is one
        ("anything", "[1, 'x']", [1, "x"]),
        ("anything", "hello world", "hello world"),  # ...else the raw text
        ("anything", "None", None),
    ],
)
def test_command_line_strings_are_converted_to_the_default_type(notebook, name, text, expected):
    result = check_parameters(notebook, {name: text})
    assert result == {name: expected}
    assert type(result[name]) is type(expected)


def test_several_parameters_at_once(notebook):
    result = check_parameters(notebook, {"data_date": "20240229", "n": "10", "rate": "1", "flag": "0"})
    assert result == {"data_date": "20240229", "n": 10, "rate": 1.0, "flag": False}
    assert isinstance(result["rate"], float)


def test_no_parameters_given_is_fine(notebook):
    assert check_parameters(notebook, {}) == {}


# ------------------------------------------------------------------ python values from the API


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("name", "fraud", "fraud"),
        ("n", 5, 5),
        ("count", 0, 0),
        ("rate", 2, 2.0),  # an int is fine for a float
        ("rate", 0.75, 0.75),
        ("flag", True, True),
        ("items", [4, 5], [4, 5]),
        ("items", (4, 5), [4, 5]),
        ("opts", {"x": 1}, {"x": 1}),
        ("anything", object, object),
        ("anything", 3.5, 3.5),
    ],
)
def test_python_values_of_the_right_type_are_accepted(notebook, name, value, expected):
    result = check_parameters(notebook, {name: value})
    assert result == {name: expected}
    assert type(result[name]) is type(expected)


@pytest.mark.parametrize(
    ("name", "value", "type_name"),
    [
        ("n", True, "int"),  # bool is an int subclass but not an int parameter
        ("count", False, "int"),
        ("rate", True, "float"),
        ("n", 2.5, "int"),
        ("n", "2.5", "int"),
        ("n", "three", "int"),
        ("count", "x", "int"),
        ("rate", "fast", "float"),
        ("rate", "nan", "float"),
        ("rate", float("nan"), "float"),
        ("name", 5, "str"),
        ("data_date", 20240131, "str"),
        ("flag", 1, "bool"),
        ("flag", "maybe", "bool"),
        ("items", "3", "list"),
        ("items", {"a": 1}, "list"),
        ("opts", "[1]", "dict"),
        ("opts", [1], "dict"),
    ],
)
def test_wrong_types_are_refused_naming_parameter_and_type(notebook, name, value, type_name):
    with pytest.raises(ParameterError) as info:
        check_parameters(notebook, {name: value})
    message = str(info.value)
    assert repr(name) in message
    assert f"expects {type_name}" in message


def test_unknown_names_are_refused_listing_declared_names(notebook):
    with pytest.raises(ParameterError) as info:
        check_parameters(notebook, {"n": "3", "nn": "4", "datadate": "20240131"})
    message = str(info.value)
    assert "'datadate'" in message and "'nn'" in message
    for declared in DECLARED:
        assert declared in message


def test_notebook_without_parameters_tag_is_refused(tmp_path):
    nb = write_notebook(tmp_path / "untagged.ipynb", tagged=False)
    with pytest.raises(ParameterError, match="parameters"):
        check_parameters(nb, {"n": "3"})


def test_notebook_with_other_tags_only_is_refused(tmp_path):
    path = write_notebook(tmp_path / "other.ipynb", tagged=False)
    nb = nbformat.read(str(path), as_version=4)
    nb.cells[1].metadata["tags"] = ["injected-parameters", "setup"]
    nbformat.write(nb, str(path))
    with pytest.raises(ParameterError, match="'parameters'"):
        check_parameters(path, {})


def test_missing_notebook_is_refused(tmp_path):
    with pytest.raises(ParameterError, match="does not exist"):
        check_parameters(tmp_path / "nope.ipynb", {"n": "3"})


def test_directory_instead_of_notebook_is_refused(tmp_path):
    with pytest.raises(ParameterError):
        check_parameters(tmp_path, {})


def test_unreadable_notebook_is_refused(tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{ not json", encoding="utf-8")
    with pytest.raises(ParameterError, match="not a readable notebook"):
        check_parameters(bad, {})


def test_expression_default_takes_the_value_as_given(tmp_path):
    nb = write_notebook(tmp_path / "expr.ipynb", source="size = 2 ** 10\nlabel = str(1)\n")
    assert check_parameters(nb, {"size": "64"}) == {"size": 64}
    assert check_parameters(nb, {"label": "abc"}) == {"label": "abc"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3),
        (" 0.5 ", 0.5),
        ("[1, 2]", [1, 2]),
        ("True", True),
        ("'x'", "x"),
        ("not a literal", "not a literal"),
        ("f(1)", "f(1)"),
        ("[1,", "[1,"),
    ],
)
def test_parse_literal(text, expected):
    assert parse_literal(text) == expected
