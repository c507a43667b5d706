"""Every table of every domain, imported in one place for Alembic and the schema checks."""

from sqlmodel import SQLModel

from app.domains import domain_modules
from app.kit import idempotency, throttle  # noqa: F401 - their tables (shared by every domain)

domain_modules("models")
metadata = SQLModel.metadata
