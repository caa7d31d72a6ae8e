"""The drift report draws and prints every name as it is: no math text, no markup."""
from __future__ import annotations

import html

import matplotlib
import matplotlib.mathtext
import numpy as np
import pandas as pd
import pytest

from workbench.monitoring.drift import check_drift
from workbench.monitoring.profile import build_profile
from workbench.monitoring.report import figure_png, render_html

# Dollars that matplotlib would read as math ("$_$" is a ValueError there), TeX's specials,
# and markup.
NUMERIC_NAMES = ("fee $_$", "price_$usd", "x^2 \\alpha", "<b>bold</b>")
CATEGORY = "plan $ <b>"
LABELS = ("$5 plan", "a$b^$c", "\\frac{1}{2}", "<i>x</i>")
UNSEEN = "$new_<b>"


def _result():
    rng = np.random.default_rng(3)
    rows = 400
    reference = pd.DataFrame({name: rng.normal(size=rows) for name in NUMERIC_NAMES})
    reference[CATEGORY] = rng.choice(LABELS, rows)
    current = reference.sample(frac=1.0, random_state=1).reset_index(drop=True)
    current["fee $_$"] = current["fee $_$"] + 1.0
    current.loc[current.index[:80], CATEGORY] = UNSEEN
    return check_drift(build_profile(reference), current)


@pytest.fixture
def no_math_text(monkeypatch):
    """Fail if matplotlib parses any text as math, and turn TeX on for every text (which
    would fail without a TeX installation, or mangle the names with one)."""
    def refuse(self, s, *args, **kwargs):
        raise AssertionError(f"matplotlib parsed {s!r} as math text")

    monkeypatch.setattr(matplotlib.mathtext.MathTextParser, "parse", refuse)
    with matplotlib.rc_context({"text.usetex": True}):
        yield


def test_names_appear_literally_and_escaped_in_the_page(no_math_text):
    result = _result()
    assert "fee $_$" in result.drifted and CATEGORY in result.drifted
    page = render_html(result, {"model": "churn<script>alert(1)</script>",
                                "run": "http://mlflow/#/runs/1?a=1&b=<x>"})
    for name in (*NUMERIC_NAMES, CATEGORY, UNSEEN):
        assert html.escape(name) in page, name
        assert f'<figure id="{html.escape(name)}">' in page or name == UNSEEN
    assert page.count("data:image/png;base64,") == len(NUMERIC_NAMES) + 1
    # No markup from the data: the only tags are the report's own.
    assert "<b>" not in page and "<i>" not in page and "<script>" not in page
    assert html.escape("churn<script>alert(1)</script>") in page
    assert '<a href="http://mlflow/#/runs/1?a=1&amp;b=&lt;x&gt;">' in page


def test_every_plot_draws_with_math_text_and_tex_refused(no_math_text):
    for check in _result().checks:
        png = figure_png(check)
        assert png.startswith(b"\x89PNG")


def test_a_context_value_that_is_no_web_address_is_not_a_link():
    page = render_html(_result(), {"model": "m", "source": "javascript:alert(1)"})
    assert 'href="javascript' not in page and "javascript:alert(1)" in page
