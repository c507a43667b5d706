"""Operational endpoints: health, readiness, metrics, audit log reading."""
