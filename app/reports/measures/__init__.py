"""The reports' named measures, each defined once: points (points.py), waste (waste.py), people (people.py)."""

from app.reports.measures.points import PointsMeasures, household_points, points_by, points_measures

__all__ = ["PointsMeasures", "household_points", "points_by", "points_measures"]
