"""Column helpers shared by every domain's tables: 64-bit ids."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey

BigId = BigInteger()


def pk() -> Column:
    return Column(BigId, primary_key=True, autoincrement=True)


def fk(target: str, *, nullable: bool = False, index: bool = True, ondelete: str | None = None) -> Column:
    return Column(BigId, ForeignKey(target, ondelete=ondelete), nullable=nullable, index=index)
