"""Records that carry a weight, made through the HTTP API at chosen times (the application's clock is
set to each act's moment, then put back): recycling days and their weigh-ins (walk-ins and cheques
claimed into a household included), compost drops, check-ins with a weight, and their reversals."""

from __future__ import annotations

import uuid
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta

from tests.field import SHANGHAI, payload, setup_field


class Weighed:
    def __init__(self, client, world, clock):
        self.client, self.world, self.clock = client, world, clock
        self._bin: int | None = None
        self._field: dict | None = None

    @contextmanager
    def at(self, when: datetime):
        back = self.clock.now()
        self.clock.set(when)
        try:
            yield
        finally:
            self.clock.set(back)

    def _ok(self, r, status=(200, 201)):
        assert r.status_code in ((status,) if isinstance(status, int) else status), r.text
        return r.json()

    # --- recycling days ---------------------------------------------------------------------------

    def recycling_day(self, when: datetime, categories: list[tuple[str, str, str, int]]) -> int:
        """A one-off recycling day on `when`'s local day, taking (code, name, unit, points) categories, set up
        on that day (a day closed more than 3 days ago is the committee's to back-date, with a reason)."""
        day = when.astimezone(SHANGHAI).date().isoformat()
        with self.at(when):
            h = self.world.h("committee")  # a token of that day
            event = self._ok(self.client.post(f"/api/v1/communities/{self.world.community.id}/recycling-events", json={
                "occurs_on": day, "start_time": "09:00", "end_time": "11:00", "place": f"广场{uuid.uuid4().hex[:6]}"}, headers=h), 201)
            self._ok(self.client.put(f"/api/v1/recycling-events/{event['id']}/categories", json=[
                {"code": c, "name": n, "unit": u, "points": p} for c, n, u, p in categories], headers=h))
        return event["id"]

    def weigh(self, event_id: int, when: datetime, who: int | None, category: str, grams: int | None = None,
              count: int | None = None) -> dict:
        """A weigh-in by household `who` (index in the world), or a walk-in (None); the clerk records it at `when`."""
        body = {"client_id": uuid.uuid4().hex, "category": category}
        body |= {"walk_in": True} if who is None else {"payload": payload(self.world, who)}
        body |= {k: v for k, v in (("weight_g", grams), ("count", count)) if v is not None}
        with self.at(when):
            return self._ok(self.client.post(f"/api/v1/recycling-events/{event_id}/weigh-ins", json=body,
                                             headers=self.world.h("clerk")), 201)

    def claim(self, code: str, who: int) -> dict:
        hid = self.world.households[who].id
        return self._ok(self.client.post(f"/api/v1/households/{hid}/voucher-claims", json={"code": code},
                                         headers=self.world.h("committee")))

    def reverse_weigh_in(self, weigh_in_id: int, when: datetime | None = None) -> dict:
        """Corrected by the committee now, or at `when` (a correction counts in its own month)."""
        with self.at(when) if when is not None else nullcontext():
            return self._ok(self.client.post(f"/api/v1/weigh-ins/{weigh_in_id}/reverse", json={"reason": "称错了"},
                                             headers=self.world.h("committee")))

    # --- compost ----------------------------------------------------------------------------------

    def bin(self) -> int:
        if self._bin is None:
            keeper = self.world.h("compost_keeper")
            site = self._ok(self.client.post(f"/api/v1/communities/{self.world.community.id}/compost-sites",
                                             json={"name": f"堆肥点{uuid.uuid4().hex[:6]}"}, headers=keeper), 201)
            self._bin = self._ok(self.client.post(f"/api/v1/compost-sites/{site['id']}/bins",
                                                  json={"name": "1号箱", "method": "box", "capacity_l": 200}, headers=keeper), 201)["id"]
        return self._bin

    def drop(self, when: datetime, who: int, grams: int) -> dict:
        body = {"client_id": uuid.uuid4().hex, "payload": payload(self.world, who), "weight_g": grams}
        with self.at(when + timedelta(minutes=1)):
            body["dropped_at"] = when.isoformat()
            return self._ok(self.client.post(f"/api/v1/compost-bins/{self.bin()}/drops", json=body,
                                             headers=self.world.h("volunteer")), 201)

    def reverse_drop(self, drop_id: int, when: datetime | None = None) -> dict:
        """Corrected by the committee now, or at `when` (a correction counts in its own month)."""
        with self.at(when) if when is not None else nullcontext():
            return self._ok(self.client.post(f"/api/v1/compost-drops/{drop_id}/reverse", json={"reason": "重复录入"},
                                             headers=self.world.h("committee")))

    # --- check-ins with a weight ------------------------------------------------------------------

    def checkin(self, when: datetime, who: int, grams: int | None, category: str = "kitchen", result: str = "correct") -> dict:
        """A scan at `when` (inside a drop-off window: 07:00–09:00 or 18:00–21:00 local)."""
        if self._field is None:
            self._field = setup_field(self.client, self.world)
        body = {"client_id": uuid.uuid4().hex, "payload": payload(self.world, who), "station_id": self._field["station_id"],
                "result": result, "category": category, "scanned_at": when.isoformat()}
        if result == "incorrect":
            body["reasons"] = ["mixed"]
        if grams is not None:
            body["weight_g"] = grams
        with self.at(when + timedelta(minutes=1)):
            r = self._ok(self.client.post(f"/api/v1/communities/{self.world.community.id}/checkins", json=body,
                                          headers=self.world.h("volunteer")), 201)
        return r

    def reverse_checkin(self, checkin_id: int, when: datetime | None = None) -> dict:
        """Corrected by the committee now, or at `when` (a correction counts in its own month)."""
        with self.at(when) if when is not None else nullcontext():
            return self._ok(self.client.post(f"/api/v1/checkins/{checkin_id}/reverse", json={"reason": "扫错了"},
                                             headers=self.world.h("committee")))
