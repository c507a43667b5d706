"""The committed OpenAPI document is the contract with the mini-program."""

from __future__ import annotations

import json
from pathlib import Path

from app.main import app

COMMITTED = Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"


def test_committed_openapi_matches_the_app():
    committed = json.loads(COMMITTED.read_text())
    assert committed == app.openapi(), "openapi/openapi.json is stale: run `python -m app.openapi_dump`"


def test_every_route_has_a_summary_and_declared_errors():
    spec = app.openapi()
    missing = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if not op.get("summary"):
                missing.append(f"{method} {path}: no summary")
            if path.startswith("/api/") and not any(code.startswith(("4", "5")) for code in op.get("responses", {})):
                missing.append(f"{method} {path}: no error responses")
    assert not missing, "\n".join(missing)
