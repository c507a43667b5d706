"""Who may call the points-cheque routes: the staff who hand cheques out issue them, a household
claims into its own passbook (or staff type the code in for a resident in front of them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.identity.auth import CommunityManager, CommunityRole, Place, Principal
from app.identity.models import Role
from app.places.auth import HOUSEHOLD
from app.vouchers import service

__all__ = ["CommunityManager", "CommunityVoucherReader", "VoucherClaimant", "VoucherIssuer", "VoucherReader"]

# Staff who hand out points cheques: the exchange clerk, the committee, field volunteers on recycling days.
ISSUERS = frozenset({Role.clerk, Role.committee, Role.org_admin, Role.volunteer, Role.supervisor})
# Staff who may type a code in for a resident standing in front of them (it only adds points).
CLAIM_HELPERS = ISSUERS
READERS = frozenset({Role.clerk, Role.committee, Role.org_admin})
VOUCHER = Place("voucher_id", service.get_voucher)

VoucherIssuer = Annotated[Principal, Depends(CommunityRole(ISSUERS))]
CommunityVoucherReader = Annotated[Principal, Depends(CommunityRole(READERS))]
VoucherReader = Annotated[Principal, Depends(CommunityRole(READERS, at=VOUCHER))]
VoucherClaimant = Annotated[Principal, Depends(CommunityRole(CLAIM_HELPERS, at=HOUSEHOLD, members=True))]
