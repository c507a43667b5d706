"""A handover (交接): an organisation's communities pass, with its staff and its reports, in one audited
transaction.

What passes: the organisation's links to its communities (in one street when the street office takes
over), so the receiving organisation's admins run them and its reports (point totals, the monthly
report) cover their whole history; and, with `staff=move`, the organisation's admin grants. The
communities' own staff (committee, volunteers, clerks, keepers) keep their roles: their grants are the
community's. What stays: the records. An activity the organisation held stays its activity (a month's
report never changes after the fact); the receiving side sees it through the community.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session

from app.audit import service as audit
from app.handover.models import HandoverRequest, HandoverResult, StaffFate
from app.identity import revocation
from app.identity.auth import Principal
from app.identity.models import Role, RoleGrant
from app.kit.errors import Unprocessable, not_found
from app.places.models import Community, Organisation, OrganisationCommunity, Street

LINK = OrganisationCommunity.__table__
GRANT = RoleGrant.__table__


def hand_over(session: Session, principal: Principal, organisation_id: int, data: HandoverRequest) -> HandoverResult:
    if (data.to_organisation_id is None) == (data.to_street_id is None):
        raise Unprocessable("handover_target", "请指定接手方：社会组织或街道，二选一",
                            "Name who takes over: an organisation or a street, not both", "to_organisation_id")
    if data.to_organisation_id == organisation_id:
        raise Unprocessable("handover_same", "不能交接给本组织", "An organisation cannot hand over to itself", "to_organisation_id")
    if data.staff == StaffFate.move and data.to_organisation_id is None:
        raise Unprocessable("handover_staff", "交还街道时，组织管理员的授权只能结束",
                            "Handing over to the street office ends the organisation's admin grants", "staff")
    # The source row locked: two handovers of one organisation run one after the other.
    if session.exec(select(Organisation.id).where(Organisation.id == organisation_id).with_for_update()).first() is None:
        raise not_found("社会组织", "Organisation", "organisation_id")
    if data.to_organisation_id is not None and session.get(Organisation, data.to_organisation_id) is None:
        raise not_found("接手的社会组织", "Receiving organisation", "to_organisation_id")
    if data.to_street_id is not None and session.get(Street, data.to_street_id) is None:
        raise not_found("街道", "Street", "to_street_id")

    picked = select(LINK.c.community_id).where(LINK.c.organisation_id == organisation_id)
    if data.to_street_id is not None:
        picked = picked.join(Community, Community.id == LINK.c.community_id).where(Community.street_id == data.to_street_id)
    community_ids = sorted(session.execute(picked).scalars().all())
    if not community_ids:
        session.rollback()
        return HandoverResult(from_organisation_id=organisation_id, to_organisation_id=data.to_organisation_id,
                              to_street_id=data.to_street_id, community_ids=[], grants_moved=0, grants_ended=0, audit_id=None)

    session.execute(delete(LINK).where(LINK.c.organisation_id == organisation_id, LINK.c.community_id.in_(community_ids)))
    if data.to_organisation_id is not None:
        session.execute(
            pg_insert(LINK).values([{"organisation_id": data.to_organisation_id, "community_id": c} for c in community_ids])
            .on_conflict_do_nothing()
        )
    runs_none = session.execute(select(LINK.c.community_id).where(LINK.c.organisation_id == organisation_id).limit(1)).first() is None
    admins = session.execute(
        select(GRANT.c.id, GRANT.c.user_id).where(GRANT.c.organisation_id == organisation_id, GRANT.c.role == Role.org_admin.value)
    ).all()
    moved = ended = 0
    if admins and data.staff == StaffFate.move:
        # (NULL scopes are never equal in the unique key: an admin of both keeps one grant by this check.)
        has = set(session.execute(select(GRANT.c.user_id).where(
            GRANT.c.organisation_id == data.to_organisation_id, GRANT.c.role == Role.org_admin.value)).scalars())
        for user_id in sorted({u for _, u in admins} - has):
            session.execute(pg_insert(GRANT).values(user_id=user_id, role=Role.org_admin.value,
                                                    organisation_id=data.to_organisation_id, created_by=principal.user_id))
        moved = len(admins)
    if admins and (data.staff == StaffFate.move or runs_none):
        # Moved: the old grant goes. Ended: only once the organisation runs none of its communities
        # (a street office taking one street's communities leaves the admins the others).
        session.execute(delete(GRANT).where(GRANT.c.id.in_([g for g, _ in admins])))
        ended = 0 if data.staff == StaffFate.move else len(admins)
        revocation.revoke_tokens(session, [u for _, u in admins])
    row = audit.record(
        session, actor_user_id=principal.user_id, action="organisation.handover", object_type="organisation",
        object_id=organisation_id, request_id=principal.request_id,
        detail={"to_organisation_id": data.to_organisation_id, "to_street_id": data.to_street_id,
                "community_ids": community_ids, "staff": data.staff.value, "grants_moved": moved, "grants_ended": ended},
    )
    session.flush()
    audit_id = row.id
    session.commit()
    return HandoverResult(from_organisation_id=organisation_id, to_organisation_id=data.to_organisation_id,
                          to_street_id=data.to_street_id, community_ids=community_ids, grants_moved=moved,
                          grants_ended=ended, audit_id=audit_id)
