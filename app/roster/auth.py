"""Who may call the roster routes: a community's managers, who hold its residents' phone numbers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.identity.auth import MANAGERS, CommunityManager, CommunityRole, Place, Principal
from app.roster import service

__all__ = ["CommunityManager", "ImportManager"]

IMPORT = Place("import_id", service.get_import)

ImportManager = Annotated[Principal, Depends(CommunityRole(MANAGERS, at=IMPORT))]
