"""A bin's queue of drops and a harvest's collections at once: the single-drop rules, set-based."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from app.compost import service as compost
from app.compost.models import CompostDropCreate
from app.identity.auth import Grant, Principal
from app.identity.models import Role
from app.kit.errors import DomainError
from tests.compost.test_compost import _bin
from tests.field import balance, cid, payload, yesterday_at


def _staff(world, role: str, grant: Role) -> Principal:
    return Principal(user_id=world.users[role], grants=(Grant(grant, community_id=world.community.id),))


def test_a_queue_of_drops_credits_like_single_drops_and_replays(client, world):
    b = _bin(client, world)
    volunteer = _staff(world, "volunteer", Role.volunteer)
    keeper = _staff(world, "compost_keeper", Role.compost_keeper)
    first = CompostDropCreate(client_id=cid(), payload=payload(world, 0), weight_g=2300, dropped_at=yesterday_at(8, 10))
    queue = [first, CompostDropCreate(client_id=cid(), payload=payload(world, 1), weight_g=1200, dropped_at=yesterday_at(8, 20)),
             first, CompostDropCreate(client_id=cid(), payload=payload(world, 0), weight_g=500, dropped_at=yesterday_at(8, 30))]
    with Session(world.engine, expire_on_commit=False) as s:
        out = compost.record_drops(s, volunteer, b["id"], queue)
        assert [d.points for d, _ in out] == [23, 12, 23, 5] and out[0][0].id == out[2][0].id
        assert [created for _, created in out] == [True, True, False, True]
        again = compost.record_drops(s, volunteer, b["id"], queue)  # the phone uploads its queue twice
        assert [d.id for d, _ in again] == [d.id for d, _ in out] and not any(created for _, created in again)
    assert balance(client, world, 0) == 28 and balance(client, world, 1) == 12

    forged = CompostDropCreate(client_id=cid(), payload=payload(world, 2)[:-2] + "xx", weight_g=900, dropped_at=yesterday_at(9))
    with Session(world.engine) as s, pytest.raises(DomainError) as refused:
        compost.record_drops(s, volunteer, b["id"], [CompostDropCreate(client_id=cid(), payload=payload(world, 2), weight_g=900), forged])
    assert refused.value.code == "forged_code"
    assert balance(client, world, 2) == 0  # all or nothing

    with Session(world.engine, expire_on_commit=False) as s:
        compost.close_bin(s, keeper, b["id"])
        compost.mark_ready(s, keeper, b["id"])
        harvest = compost.harvest(s, keeper, b["id"], compost_g=1000)
        ids = [c.id for c in harvest.claims]
        collected = compost.collect_claims(s, volunteer, harvest.id, ids)
        assert len(collected) == 2 and all(c.collected_at is not None for c in collected)
        with pytest.raises(DomainError) as twice:
            compost.collect_claims(s, volunteer, harvest.id, ids[:1])
        assert twice.value.code == "already_collected"
        with pytest.raises(DomainError):
            compost.record_drops(s, volunteer, b["id"], [CompostDropCreate(client_id=cid(), payload=payload(world, 3), weight_g=900)])
