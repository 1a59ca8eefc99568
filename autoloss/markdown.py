"""Markdown text for reports and notebooks: tables, inline code and math in table cells, percentages.

A ``|`` inside a table cell would end the cell: code writes it as ``\\|`` (GitHub and Jupyter show ``|``), math as
``\\vert``. Scores are fractions in [0, 1], shown as percentages; a missing or non-finite one as ``-``.
"""

from __future__ import annotations

import math


def percent(value, digits: int = 1) -> str:
    """A fraction as a percentage with ``digits`` decimals, or ``-`` when missing or not finite."""
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.{digits}f}"


def signed(value) -> str:
    """A difference of fractions as signed percentage points, or ``-``."""
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:+.1f}"


def mean_std(mean, std) -> str:
    """A mean of fractions as a percentage with ``± std`` (percentage points) when there is a spread, or ``-``."""
    return percent(mean) if std is None or not math.isfinite(std) or percent(mean) == "-" else (
        f"{percent(mean)} ± {100 * std:.1f}")


def code(text: str) -> str:
    """Inline code for a Markdown table cell."""
    return "`" + str(text).replace("|", "\\|") + "`"


def inline_math(latex: str) -> str:
    """Inline LaTeX for a Markdown table cell."""
    return "$" + latex.replace("|", "\\vert ") + "$"


def table(header: list[str], rows: list[list[str]], *, text_columns: tuple[int, ...] = (-1,)) -> list[str]:
    """The lines of a Markdown table: ``text_columns`` left-aligned, the others (numbers) right-aligned."""
    left = {k % len(header) for k in text_columns}
    rule = "|" + "|".join("---" if k in left else "---:" for k in range(len(header))) + "|"
    return ["| " + " | ".join(header) + " |", rule] + ["| " + " | ".join(row) + " |" for row in rows]
