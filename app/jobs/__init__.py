"""Scheduled jobs: declared once with their schedule (registry.py), run by the service itself
(scheduler.py) or by `jianfei jobs run`, once per due slot across every instance (service.py)."""
