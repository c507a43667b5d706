"""Named measures: each figure a report, export, passbook, dashboard or event total shows is defined
once here, from the records it counts (waste: app.reports.measures.waste)."""

from app.reports.measures.waste import (
    DEFINITIONS,
    WASTE_MEASURES,
    WasteMeasure,
    event_totals,
    grams_by_group,
    household_grams,
    participating_households,
)

__all__ = [
    "DEFINITIONS", "WASTE_MEASURES", "WasteMeasure", "event_totals", "grams_by_group", "household_grams", "participating_households",
]
