"""Markdown helpers: a ``|`` in a formula cannot break a table; missing scores show as ``-``."""

import math

from autoloss.markdown import code, inline_math, percent, signed, table


def test_table_cells_keep_pipes_inside_formulas():
    assert code("abs(x)|y") == "`abs(x)\\|y`" and "|" not in inline_math(r"\left|x\right|")
    assert table(["n", "formula"], [["1", code("x")]]) == ["| n | formula |", "|---:|---|", "| 1 | `x` |"]
    assert table(["row", "AP"], [], text_columns=(0,))[1] == "|---|---:|"


def test_scores_are_percentages_and_missing_ones_a_dash():
    assert percent(0.3125, 2) == "31.25" and signed(-0.012) == "-1.2" and signed(0.0) == "+0.0"
    assert percent(None) == percent(math.nan) == signed(None) == "-"
