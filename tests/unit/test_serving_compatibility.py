"""Which new instance may replace the served one (``--follow``) or shadow it."""
from __future__ import annotations

from workbench.serving.model import ServedModel
from workbench.serving.protocol import Column


def _model(*columns: Column | None) -> ServedModel:
    model = object.__new__(ServedModel)
    model.schema = None if columns == (None,) else list(columns)
    return model


A, B = Column("a", "float", True), Column("b", "str", False)


def test_the_same_signature_is_compatible() -> None:
    assert _model(A, B).incompatibility(_model(A, B)) is None
    assert _model(None).incompatibility(_model(None)) is None


def test_a_new_optional_column_is_compatible() -> None:
    assert _model(A).incompatibility(_model(A, Column("c", "int", False, required=False))) is None


def test_a_needed_lacking_or_retyped_column_is_named() -> None:
    assert _model(A).incompatibility(_model(A, B)) == "needs b"
    assert _model(A, B).incompatibility(_model(A)) == "lacks b"
    assert _model(A, B).incompatibility(_model(A, Column("b", "int", False))) == "retypes b"
    assert _model(A).incompatibility(_model(None)) == "signature"
