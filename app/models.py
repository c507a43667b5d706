"""Every table of every domain, imported in one place for Alembic and the schema checks."""

from sqlmodel import SQLModel

from app.audit.models import AuditLog  # noqa: F401
from app.identity.models import HouseholdMember, RefreshToken, RoleGrant, User  # noqa: F401
from app.places.models import (  # noqa: F401
    Building,
    Community,
    Compound,
    Household,
    Organisation,
    OrganisationCommunity,
    Street,
)
from app.roster.models import RosterImport  # noqa: F401

metadata = SQLModel.metadata
