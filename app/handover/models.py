"""A handover's API shapes, and the map of imported archive rows (a handover itself is the audit row it writes)."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import BigInteger, Column, String
from sqlmodel import Field, SQLModel


class StaffFate(StrEnum):
    move = "move"  # the organisation's admins go on under the receiving organisation
    end = "end"  # their organisation grants end once the organisation runs none of its communities


class HandoverRequest(SQLModel):
    to_organisation_id: int | None = Field(default=None, description="接手的社会组织（与 to_street_id 二选一）")
    to_street_id: int | None = Field(
        default=None, description="接手的街道：本组织在该街道的社区交还街道，由居委会继续运行（与 to_organisation_id 二选一）"
    )
    staff: StaffFate = Field(default=StaffFate.end, description="本组织管理员的授权：move 随社区转入接手组织；end 结束")


class HandoverResult(SQLModel):
    from_organisation_id: int
    to_organisation_id: int | None
    to_street_id: int | None
    community_ids: list[int] = Field(description="交接的社区；重复提交时为空")
    grants_moved: int
    grants_ended: int
    audit_id: int | None = Field(description="审计日志编号；无交接时为空")


class ArchiveImportRow(SQLModel, table=True):
    """One row of an imported community archive: the id it had at the source and the id it got here.
    Importing the same archive again finds every row here and inserts nothing."""

    __tablename__ = "archive_import_map"
    source: str = Field(sa_column=Column(String(80), primary_key=True))  # the archive's source key
    table_name: str = Field(sa_column=Column(String(40), primary_key=True))
    source_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    target_id: int = Field(sa_column=Column(BigInteger, nullable=False))


class ArchiveImported(SQLModel):
    community_id: int = Field(description="导入后的社区编号")
    inserted: dict[str, int] = Field(description="各表新增行数；重复导入时均为 0")
    users_created: int
    codes_changed: int = Field(description="门牌码在本部署已被占用而重新生成的住户数（需重新打印）")
