"""Finds the domain packages under app/: each may have `models.py` (tables) and `routes.py` (a `router`).

Adding a domain is adding its package; nothing central needs editing. Order is fixed so the OpenAPI
document is stable: the bin-side check-ins first (routes are matched in order, and a scan is the
request the service answers most), then ops, identity, places, then by name.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

_ROOT = Path(__file__).resolve().parent
_FIRST = ("checkins", "ops", "identity", "places")


def _packages() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules([str(_ROOT)]) if m.ispkg and m.name not in ("core", "kit")]
    return sorted(names, key=lambda n: (_FIRST.index(n) if n in _FIRST else len(_FIRST), n))


def domain_modules(kind: str) -> list[ModuleType]:
    modules = []
    for name in _packages():
        if (_ROOT / name / f"{kind}.py").exists():
            modules.append(importlib.import_module(f"app.{name}.{kind}"))
    return modules
