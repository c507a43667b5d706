"""Who may call the ledger routes: a passbook is its household's money (its members, and the staff
who hand out rewards, read it); only managers change the books or their policy."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.identity.auth import MANAGERS, CommunityManager, CommunityRole, Place, Principal
from app.identity.models import Role
from app.ledger import service
from app.places.auth import HOUSEHOLD, HouseholdManager

__all__ = ["CommunityManager", "EntryManager", "HouseholdManager", "PassbookReader"]

# Staff who may read a household's passbook.
PASSBOOK_STAFF = frozenset({Role.committee, Role.org_admin, Role.clerk})
ENTRY = Place("entry_id", service.get_entry)

PassbookReader = Annotated[Principal, Depends(CommunityRole(PASSBOOK_STAFF, at=HOUSEHOLD, members=True))]
EntryManager = Annotated[Principal, Depends(CommunityRole(MANAGERS, at=ENTRY))]
