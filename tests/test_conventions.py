"""The API's conventions (docs/api.md), read from the contract the service serves and tried through it:
one list shape, one way to name a period, one name for a fact on the way in and out, one way to ask
for a format. A new operation that breaks one fails here."""

from __future__ import annotations

import re

import pytest

from app.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT
from tests.field import cid, local_day, payload, setup_field

# Objects with a list inside that are not lists of the resource: a search's best matches (capped, no
# further page), an activity's attendees with their counts.
NOT_LISTS = {"search", "list_attendees", "add_attendees", "remove_attendee"}
# The one path with an extension: a subscription URL for calendar apps, not part of the JSON API.
CALENDAR_FEED = "/ical/communities/{community_id}/recycling.ics"
# Write operations whose answer is another resource than their body describes: a scan answers its
# result (the check-in keeps scanned_at), an exception to a schedule answers the event it moved.
OTHER_RESOURCE = {"record_checkin", "add_exception"}
TIME_LIKE = re.compile(r"^(start|end|starts|ends|from|to|until|since)(_|$)|_(at|on|time|from|until|date)$")


@pytest.fixture
def spec(client):
    r = client.get("/openapi.json")
    assert r.status_code == 200
    return r.json()


def _resolve(spec, schema):
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].split("/")[-1]]
    return schema


def _properties(spec, schema) -> dict:
    schema = _resolve(spec, schema)
    out = {}
    for part in schema.get("anyOf", []) + schema.get("allOf", []):
        out |= _properties(spec, part)
    return out | schema.get("properties", {})


def _kind(spec, schema) -> str:
    """What a field holds, for comparing a body's field with the answer's: type and format."""
    schema = _resolve(spec, schema)
    kinds = [_kind(spec, s) for s in schema.get("anyOf", []) if _resolve(spec, s).get("type") != "null"]
    return kinds[0] if kinds else f"{schema.get('type')}/{schema.get('format', '')}"


def _operations(spec):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            yield method, path, op


def _json_answer(op):
    for code, answer in op["responses"].items():
        if code.startswith("2"):
            schema = answer.get("content", {}).get("application/json", {}).get("schema")
            if schema:
                return schema
    return None


def _query(op) -> dict:
    return {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}


# --- one list shape -----------------------------------------------------------------------------

def test_every_list_is_a_page_with_one_page_size(spec):
    wrong = []
    for method, _path, op in _operations(spec):
        schema = _json_answer(op)
        if method != "get" or schema is None:
            continue
        name, query = op["operationId"], _query(op)
        if _resolve(spec, schema).get("type") == "array":
            wrong.append(f"{name}: a bare array (answer a Page: items, next_cursor)")
            continue
        fields = _properties(spec, schema)
        if "items" in fields and "next_cursor" not in fields and name not in NOT_LISTS:
            wrong.append(f"{name}: items without next_cursor")
        if "next_cursor" in fields and "cursor" not in query and "`next_cursor` always null" not in op["description"]:
            wrong.append(f"{name}: a page without cursor (or say that next_cursor is always null)")
        if "cursor" in query:
            limit = query.get("limit", {}).get("schema", {})
            if (limit.get("default"), limit.get("maximum")) != (DEFAULT_LIMIT, MAX_LIMIT):
                wrong.append(f"{name}: limit {limit.get('default')}/{limit.get('maximum')}, not {DEFAULT_LIMIT}/{MAX_LIMIT}")
    assert not wrong, "\n".join(wrong)


def test_a_list_pages_with_cursor_and_limit_and_refuses_a_forged_cursor(client, world):
    c, h = world.community.id, world.h("committee")
    for name in ("早间", "午间", "晚间"):
        start = {"早间": "07:00", "午间": "11:00", "晚间": "18:00"}[name]
        r = client.post(f"/api/v1/communities/{c}/drop-windows", json={"name": name, "start_time": start, "end_time": start[:2] + ":30"}, headers=h)
        assert r.status_code == 201, r.text
    url = f"/api/v1/communities/{c}/drop-windows"
    first = client.get(url, params={"limit": 2}, headers=h).json()
    assert [w["name"] for w in first["items"]] == ["早间", "午间"] and first["next_cursor"]
    rest = client.get(url, params={"limit": 2, "cursor": first["next_cursor"]}, headers=h).json()
    assert [w["name"] for w in rest["items"]] == ["晚间"] and rest["next_cursor"] is None
    assert len(client.get(url, headers=h).json()["items"]) == 3  # the default page holds them
    # A cursor is the service's own: anything else is a 400 naming the cursor, in Chinese or English.
    for forged in ("bm90LWpzb24", "eyJrIjpbIjI1OjAwIiwxXX0", "eyJrIjpbIjEyOjAwKzA4OjAwIiwxXX0", "eyJrIjpbMSwiYSJdfQ", "%%%"):
        zh = client.get(url, params={"cursor": forged}, headers=h)
        assert zh.status_code == 400 and zh.json()["error"]["code"] == "invalid_cursor" and zh.json()["error"]["field"] == "cursor", forged
        assert zh.json()["error"]["message"] == "分页游标无效"
    en = client.get(url, params={"cursor": "eyJrIjpbIjI1OjAwIiwxXX0"}, headers={**h, "Accept-Language": "en"})
    assert en.json()["error"]["message"] == "Invalid cursor"
    assert client.get(url, params={"limit": MAX_LIMIT + 1}, headers=h).status_code == 422


def test_a_short_fixed_list_is_one_page(client, world):
    r = client.get(f"/api/v1/communities/{world.community.id}/guide/reasons", headers=world.h("resident"))
    assert r.status_code == 200 and r.json()["items"] and r.json()["next_cursor"] is None


# --- one way to name a period ---------------------------------------------------------------------

def test_a_period_is_start_and_end_as_local_dates(spec):
    wrong = []
    for _method, _path, op in _operations(spec):
        for name, param in _query(op).items():
            if name in ("from", "to", "since", "until", "begin", "finish") or name.endswith(("_date", "_from", "_to")):
                wrong.append(f"{op['operationId']}: `{name}` (a period is `start` and `end`)")
            if name in ("start", "end") and _kind(spec, param["schema"]) != "string/date":
                wrong.append(f"{op['operationId']}: `{name}` is {_kind(spec, param['schema'])}, not a local date")
    assert not wrong, "\n".join(wrong)


def test_a_period_includes_its_end_day_and_refuses_an_end_before_its_start(client, world):
    f = setup_field(client, world)
    c, h = world.community.id, world.h("committee")
    day = local_day().isoformat()
    client.patch(f"/api/v1/drop-windows/{f['evening']}", json={"active": False}, headers=h)
    r = client.patch(f"/api/v1/drop-windows/{f['morning']}", json={"start_time": "00:00", "end_time": "23:59:59.999999"}, headers=h)
    assert r.status_code == 200, r.text
    scan = client.post(f"/api/v1/communities/{c}/checkins", json={"client_id": cid(), "payload": payload(world, 0), "station_id": f["station_id"], "result": "correct"}, headers=world.h("volunteer"))
    assert scan.status_code == 201, scan.text
    url = f"/api/v1/communities/{c}/checkins"
    assert len(client.get(url, params={"start": day, "end": day}, headers=h).json()["items"]) == 1
    assert client.get(url, params={"start": f"{day}T09:30:00+08:00"}, headers=h).status_code == 422  # dates, not date-times
    statement = f"/api/v1/households/{world.households[0].id}/statement"
    assert len(client.get(statement, params={"start": day, "end": day}, headers=world.h("resident")).json()["items"]) == 1
    bad = client.get(statement, params={"start": day, "end": local_day(1).isoformat()}, headers=world.h("resident"))
    assert bad.status_code == 400 and (bad.json()["error"]["code"], bad.json()["error"]["field"]) == ("invalid_period", "end")


# --- one name for a fact, in and out ----------------------------------------------------------------

def test_a_write_answers_its_times_under_the_names_it_took_them(spec):
    wrong = []
    for method, _path, op in _operations(spec):
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        answer = _json_answer(op)
        if method not in ("post", "put", "patch") or body is None or answer is None or op["operationId"] in OTHER_RESOURCE:
            continue
        fields = _properties(spec, answer)
        if "items" in fields and "next_cursor" in fields:
            fields = _properties(spec, _resolve(spec, fields["items"])["items"])
        for name, field in _properties(spec, body).items():
            if not TIME_LIKE.search(name):
                continue
            if name not in fields:
                wrong.append(f"{op['operationId']}: takes `{name}`, answers {sorted(k for k in fields if TIME_LIKE.search(k))}")
            elif _kind(spec, field) != _kind(spec, fields[name]):
                wrong.append(f"{op['operationId']}: `{name}` is {_kind(spec, field)} in, {_kind(spec, fields[name])} out")
    assert not wrong, "\n".join(wrong)


def test_drop_windows_and_recycling_days_answer_the_times_they_were_given(client, world):
    c, h = world.community.id, world.h("committee")
    window = client.post(f"/api/v1/communities/{c}/drop-windows", json={"name": "午间", "start_time": "11:00", "end_time": "13:00"}, headers=h)
    assert window.status_code == 201, window.text
    assert (window.json()["start_time"], window.json()["end_time"]) == ("11:00:00", "13:00:00")
    moved = client.patch(f"/api/v1/drop-windows/{window.json()['id']}", json={"end_time": "13:30"}, headers=h)
    assert moved.json()["end_time"] == "13:30:00"
    day = local_day().isoformat()
    event = client.post(f"/api/v1/communities/{c}/recycling-events", json={"occurs_on": day, "start_time": "09:00", "end_time": "11:30", "place": "北门广场"}, headers=h)
    assert event.status_code == 201, event.text
    e = event.json()
    assert (e["occurs_on"], e["start_time"], e["end_time"]) == (day, "09:00:00", "11:30:00")
    assert e["starts_at"] == f"{day}T01:00:00Z"  # the instant they make: 09:00 in Shanghai


# --- one way to ask for a format -------------------------------------------------------------------

def test_a_format_is_asked_with_the_format_parameter_never_a_path_extension(spec):
    wrong = []
    for method, path, op in _operations(spec):
        if path == CALENDAR_FEED or not path.startswith("/api/"):
            continue
        if "." in path.rsplit("/", 1)[-1]:
            wrong.append(f"{op['operationId']}: {path} (ask with ?format=)")
        media = {m for code, a in op["responses"].items() if code.startswith("2") for m in a.get("content", {})}
        if method == "get" and media - {"application/json"}:
            fmt = _query(op).get("format")
            if fmt is None:
                wrong.append(f"{op['operationId']}: answers {sorted(media)} without a `format` parameter")
            elif "application/json" in media and _resolve(spec, fmt["schema"]).get("default", fmt["schema"].get("default")) != "json":
                wrong.append(f"{op['operationId']}: json is its default format")
    assert not wrong, "\n".join(wrong)


def test_formats_through_the_api(client, world):
    h, hid = world.h("committee"), world.households[0].id
    svg = client.get(f"/api/v1/households/{hid}/qr", headers=h)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")  # the first, by default
    assert client.get(f"/api/v1/households/{hid}/qr", params={"format": "png"}, headers=h).content[:4] == b"\x89PNG"
    html = client.get(f"/api/v1/households/{hid}/statement", params={"format": "html"}, headers=h)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert client.get(f"/api/v1/households/{hid}/statement", headers=h).json()["items"] == []  # json by default
    refused = client.get(f"/api/v1/households/{hid}/statement", params={"format": "pdf"}, headers=h)
    assert refused.status_code == 422 and refused.json()["error"]["field"].endswith("format")
    assert client.get(f"/api/v1/households/{hid}/statement.html", headers=h).status_code == 404
    assert client.get(f"/api/v1/buildings/{world.buildings[0].id}/labels", params={"format": "pdf"}, headers=h).content[:4] == b"%PDF"
