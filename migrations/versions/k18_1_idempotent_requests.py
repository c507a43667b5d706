"""Answers kept for retried writes (the Idempotency-Key convention, app.kit.idempotency).

Revision ID: k18_1
Revises: i18_2
"""

import sqlalchemy as sa
from alembic import op

revision = 'k18_1'
down_revision = 'i18_2'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotent_request",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("content_type", sa.String(100), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("user_id", "key", name="uq_idempotent_request_user_key"),
    )
    op.create_index("ix_idempotent_request_created_at", "idempotent_request", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotent_request_created_at", table_name="idempotent_request")
    op.drop_table("idempotent_request")
