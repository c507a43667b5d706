"""Spreadsheet cells that must never run: the OWASP CSV-injection rule, in one place.

A CSV cell whose text begins with = + - @, a tab or a carriage return is a formula to Excel, LibreOffice
and WPS (`=HYPERLINK(...)` sends the sheet's data away, `+cmd|' /C calc'!A0` runs a program). Such a cell
is written with a leading apostrophe, which the spreadsheet shows as text and hides: what a person reads
does not change. Numbers are written as numbers and never pass through here. XLSX files write text as
text cells (xlsxwriter with strings_to_formulas off, rustpy-xlsxwriter always), which no spreadsheet
evaluates.
"""

from __future__ import annotations

from sqlalchemy import case, func, literal

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutral(text: str) -> str:
    """A text cell of a CSV written in Python."""
    return "'" + text if text[:1] in FORMULA_START else text


def neutral_sql(column):
    """The same rule in SQL, for CSV lines PostgreSQL writes itself (COPY … TO STDOUT)."""
    return case((func.left(column, 1).in_(FORMULA_START), literal("'").concat(column)), else_=column)
