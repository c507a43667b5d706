"""Column helpers shared by every domain's tables: 64-bit ids on PostgreSQL, rowid ids on SQLite."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Integer

BigId = BigInteger().with_variant(Integer, "sqlite")


def pk() -> Column:
    return Column(BigId, primary_key=True, autoincrement=True)


def fk(target: str, *, nullable: bool = False, index: bool = True, ondelete: str | None = None) -> Column:
    return Column(BigId, ForeignKey(target, ondelete=ondelete), nullable=nullable, index=index)
