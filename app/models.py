"""Every table of every domain, imported in one place for Alembic and the schema checks."""

from sqlmodel import SQLModel

from app.domains import domain_modules
from app.kit import throttle  # noqa: F401 - its table (shared by every domain's throttles)

domain_modules("models")
metadata = SQLModel.metadata
