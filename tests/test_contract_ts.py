"""The contract is consumable by a real toolchain: TypeScript types generated from
openapi/openapi.json by openapi-typescript (npm, locked in contract/package-lock.json), a program
written against them (contract/src/flows.ts: the volunteer's scans; the resident's first week: sign in,
bind the phone, the notice board, three guide look-ups, a retried refresh, passbook and compost)
type-checked by tsc, then run by Node against the live service. A change of the contract that breaks
the mini-program's code fails the type-check; a contract that lies about the answers fails the run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

from app.core.db import utcnow
from app.identity.models import Role
from tests.clock import NOON
from tests.field import payload, setup_field
from tests.support import PASSWORD, staff_with_password

CONTRACT = Path(__file__).resolve().parents[1] / "contract"


def _npm(*args: str) -> str:
    npm = shutil.which("npm")
    assert npm, "npm is needed for the contract check (Node 20: see README)"
    done = subprocess.run([npm, *args], cwd=CONTRACT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"npm {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _built() -> None:
    lock = (CONTRACT / "package-lock.json").read_bytes()
    stamp = CONTRACT / "node_modules" / ".lock-copy"
    if not stamp.exists() or stamp.read_bytes() != lock:
        _npm("ci", "--no-audit", "--no-fund")
        stamp.write_bytes(lock)
    _npm("run", "-s", "types")
    _npm("run", "-s", "build")  # tsc: type errors fail here


def test_the_generated_types_carry_the_volunteer_and_the_resident_through_their_flows(client, world, engine, live_server, clock):
    _built()
    clock.set_local(NOON)
    f = setup_field(client, world)
    h = world.h("committee")
    client.patch(f"/api/v1/drop-windows/{f['evening']}", json={"active": False}, headers=h)
    r = client.patch(f"/api/v1/drop-windows/{f['morning']}", json={"start_time": "00:00", "end_time": "23:59:59.999999"}, headers=h)
    assert r.status_code == 200, r.text
    username, password = staff_with_password(engine, Role.volunteer, world.community.id), PASSWORD
    household = world.households[0]
    inputs = {
        "wechatCode": f"code-{uuid.uuid4().hex[:8]}", "phoneCode": f"phone-{world.phones[household.id]}",
        "username": username, "password": password, "payload": payload(world, 0), "communityId": world.community.id,
        "scannedAt": utcnow().isoformat(),  # the phone's clock: the application's, which the test sets
    }
    node = shutil.which("node")
    assert node, "node is needed for the contract check"
    done = subprocess.run(
        [node, str(CONTRACT / "build" / "js" / "src" / "flows.js"), live_server, json.dumps(inputs)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])

    volunteer, resident = out["volunteer"], out["resident"]
    assert volunteer["household"] == household.id
    assert volunteer["first"]["status"] == "accepted" and volunteer["first"]["points"] > 0
    assert volunteer["resent"] == {"replayed": True, "checkin": volunteer["first"]["checkin"]}
    assert volunteer["batch"] == {"duplicate": 1, "first": volunteer["first"]["checkin"]}
    assert volunteer["refused"] == "unknown_code"  # neither a signed payload nor a printed hand-entry code

    assert resident["household"] == household.id and resident["me"] == [household.id]
    assert resident["windows"] >= 1 and resident["stations"] == 1 and resident["rulesCorrect"] == volunteer["first"]["points"]
    assert all(group in ("recyclable", "hazardous", "kitchen", "other") for group in resident["lookups"]), resident["lookups"]
    assert resident["refreshKept"] and resident["unit"] == "积分"
    assert resident["balance"] == volunteer["first"]["points"] == resident["statementBalance"]
    assert resident["statementLines"] == 1 and resident["claims"] == 0
    assert resident["communities"] == [world.community.id]
