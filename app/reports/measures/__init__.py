"""Named measures: each figure a report, export, passbook, dashboard or event total shows is defined
once here, from the records it counts, with the records behind it. This package only re-exports;
each side of the measures has its own module (points: issued, redeemed, held, expired; waste:
kilograms and participating households; people: partners, communities active, activities, 人次 and
人, leaflets, media)."""

from app.reports.measures import people, points, waste
from app.reports.measures.points import PointsMeasures, household_points, points_by, points_measures
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
    "PointsMeasures", "household_points", "points_by", "points_measures",
    "people", "points", "waste",
]
