"""Schemathesis against the committed OpenAPI document, as every role of a seeded community.

For each operation: a bounded number of generated requests (valid and invalid), sent as a role drawn
from the community's staff and residents (and anonymously), with path ids drawn half the time from
the community's real objects so requests reach the rules and not only the 404s. No 5xx, and every
response matches the document (status code declared, content type and body schema).
"""

from __future__ import annotations

import json
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import World

DOCUMENT = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
ROLES = ["resident", "volunteer", "supervisor", "clerk", "compost_keeper", "committee", "org_admin", "street_viewer", "platform_admin", None]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 6, GenerationMode.NEGATIVE: 3}
# Statuses any route may answer with, declared once in the document's description rather than per route.
UNDECLARED_OK = {413}


def _real_ids(world: World) -> dict[str, int]:
    return {
        "community_id": world.community.id,
        "compound_id": world.compound.id,
        "building_id": world.buildings[0].id,
        "household_id": world.households[0].id,
        "organisation_id": world.organisation.id,
        "street_id": world.street.id,
        "user_id": world.users["committee"],
    }


def _operations():
    schema = schemathesis.openapi.from_path(str(DOCUMENT))
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path.startswith("/api/"):
            yield op


def _as_bytes(value) -> bytes | str:
    return value if isinstance(value, bytes | str) else json.dumps(value)


def _send(client, case, world: World, role: str | None, real: bool, ids: dict[str, int]):
    if real and case.path_parameters:
        case.path_parameters = {k: ids.get(k, v) for k, v in case.path_parameters.items()}
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    headers = {k: v for k, v in kwargs.pop("headers").items() if k.lower() not in ("authorization", "connection")}
    if role:
        headers["Authorization"] = f"Bearer {world.tokens[role]}"
    kwargs.pop("cookies", None)
    method, url = kwargs.pop("method"), kwargs.pop("url")
    if "json" in kwargs:
        # Sent as bytes: NaN, huge integers and odd text go out exactly as generated.
        kwargs["content"] = json.dumps(kwargs.pop("json"), allow_nan=True).encode()
    if "data" in kwargs and isinstance(kwargs["data"], bytes | str):
        kwargs["content"] = kwargs.pop("data")
    if kwargs.get("data") is None:
        kwargs.pop("data", None)
    if "files" in kwargs:
        kwargs["files"] = [(name, (fn, _as_bytes(value))) for name, (fn, value, *_) in kwargs["files"]]
    return client.request(method, url, headers=headers, **kwargs)


def test_schemathesis_finds_no_5xx_and_no_schema_violation(engine, world):
    from fastapi.testclient import TestClient

    from app.main import app

    # Inside the app's lifespan, as it is served: one event loop for every request, its pools closed at
    # the end. (Outside, each request gets a loop of its own, torn down with whatever the asyncio pool
    # is connecting then, and psycopg_pool's connection attempts do not end when cancelled.)
    with TestClient(app, raise_server_exceptions=False) as client:
        _fuzz(client, world)


def _fuzz(client, world) -> None:
    ids = _real_ids(world)
    failures: list[str] = []
    checked = 0
    for op in _operations():
        for mode, n in EXAMPLES.items():

            @settings(
                max_examples=n,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=op.as_strategy(generation_mode=mode), role=st.sampled_from(ROLES), real=st.booleans())
            def run(case, role, real):
                nonlocal checked
                response = _send(client, case, world, role, real, ids)
                response.request.read()  # multipart bodies are streamed; the checks look at the request
                checked += 1
                if response.status_code in UNDECLARED_OK:
                    return
                try:
                    case.validate_response(response, checks=CHECKS)
                except (Exception, BaseExceptionGroup) as exc:  # collected, so one run reports every operation that fails
                    failures.append(f"{case.method} {case.path} as {role} [{case.meta.generation.mode.value if case.meta else ''}]: {str(exc)[:600]}")

            run()
    assert not failures, f"{len(failures)} failures:\n" + "\n\n".join(dict.fromkeys(failures))
    assert checked > 200


def test_routes_taking_a_cursor_declare_its_400():
    """A forged cursor is a 400 (invalid_cursor): every paged route must say so in the contract."""
    from app.main import app

    missing = [
        f"{method.upper()} {path}"
        for path, item in app.openapi()["paths"].items()
        for method, op in item.items()
        if any(p.get("name") == "cursor" for p in op.get("parameters", [])) and "400" not in op["responses"]
    ]
    assert not missing, missing
