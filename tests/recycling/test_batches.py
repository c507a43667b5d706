"""A recycling day's weigh-ins uploaded at once: record_weigh_in's rules, set-based, all or nothing."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from app.identity.auth import Grant, Principal
from app.identity.models import Role
from app.kit.errors import DomainError
from app.recycling import service as recycling
from app.recycling.models import WeighInCreate
from tests.field import balance, cid, payload
from tests.recycling.test_recycling import _rates, _today_event


def test_a_days_weigh_ins_at_once(client, world):
    _rates(client, world)
    event = _today_event(client, world)
    clerk = Principal(user_id=world.users["clerk"], grants=(Grant(Role.clerk, community_id=world.community.id),))
    paper = WeighInCreate(client_id=cid(), payload=payload(world, 0), category="paper", weight_g=2400)
    batch = [paper, WeighInCreate(client_id=cid(), payload=payload(world, 0), category="milk_carton", count=7),
             WeighInCreate(client_id=cid(), payload=payload(world, 1), category="clothes", weight_g=3000), paper]
    with Session(world.engine) as s:
        out = [w for w, _ in recycling.record_weigh_ins(s, clerk, event["id"], batch)]
        assert [w.points for w in out] == [12, 7, 6, 12] and out[0].id == out[3].id
        assert [w.id for w, _ in recycling.record_weigh_ins(s, clerk, event["id"], batch)] == [w.id for w in out]
    assert balance(client, world, 0) == 19 and balance(client, world, 1) == 6
    single = client.get(f"/api/v1/recycling-events/{event['id']}/weigh-ins", headers=world.h("committee")).json()["items"]
    assert len(single) == 3

    with Session(world.engine) as s, pytest.raises(DomainError) as refused:
        recycling.record_weigh_ins(s, clerk, event["id"], [
            WeighInCreate(client_id=cid(), payload=payload(world, 2), category="paper", weight_g=1000),
            WeighInCreate(client_id=cid(), payload=payload(world, 2), category="glass", weight_g=1000),
        ])
    assert refused.value.code == "unknown_category"
    assert balance(client, world, 2) == 0  # nothing of the refused upload was kept
