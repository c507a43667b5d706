"""The committed OpenAPI document is the contract with the mini-program."""

from __future__ import annotations

import json
import re
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


def test_operations_are_named_described_and_list_their_error_codes():
    spec = app.openapi()
    operations = [op for item in spec["paths"].values() for op in item.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids)), "operation ids must be unique"
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", i) for i in ids), [i for i in ids if not re.fullmatch(r"[a-z][a-z0-9_]*", i)]
    assert not [name for name in spec["components"]["schemas"] if name.startswith("Body_")]
    codes = set(spec["components"]["schemas"]["ErrorBody"]["properties"]["code"]["enum"])
    for op in operations:
        assert op["description"].strip(), op["operationId"]
        assert set(op["x-error-codes"]) <= codes, op["operationId"]
    by_id = {op["operationId"]: op for op in operations}
    # Read from the code: the scan lists the refusals its statement decides, the desk the consent checks.
    assert {"forged_code", "own_household", "moved_out", "outside_window"} <= set(by_id["record_checkin"]["x-error-codes"])
    assert {"wrong_pin", "pin_locked", "insufficient_points"} <= set(by_id["counter_spend"]["x-error-codes"])
    assert "wrong_pin" not in by_id["record_checkin"]["x-error-codes"]
    assert "Retry" in by_id["record_checkin"]["description"] and "client_id" in by_id["record_checkin"]["description"]
