"""The WeChat access token, shared by every app instance through the database.

WeChat hands out one token per app at a time: instances that each fetched their own would keep
pushing each other's out. One row per app id holds the token everyone uses.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel


class WechatAccessToken(SQLModel, table=True):
    __tablename__ = "wechat_access_token"
    app_id: str = Field(sa_column=Column(String(64), primary_key=True))
    token: str = Field(sa_column=Column(String(600), nullable=False))
    expires_at: datetime
    refreshed_at: datetime
