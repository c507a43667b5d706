"""API shapes of a handover (no tables: a handover is the audit row it writes)."""

from __future__ import annotations

from enum import StrEnum

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
