"""Every table of every domain, imported in one place for Alembic and the schema checks."""

from sqlmodel import SQLModel

from app.domains import domain_modules

domain_modules("models")
metadata = SQLModel.metadata
