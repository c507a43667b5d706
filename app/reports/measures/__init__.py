"""The named measures every report reads: each figure defined once, computed from the records, with
the records behind it. This package only re-exports; each side of the measures has its own module."""

from app.reports.measures import people

__all__ = ["people"]
