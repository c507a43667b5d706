"""archive_import_map: which row each imported community archive row became (imports are idempotent)

Revision ID: i21_1
Revises: k18_1
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = 'i21_1'
down_revision = 'k18_1'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'archive_import_map',
        sa.Column('source', sa.String(length=80), nullable=False),
        sa.Column('table_name', sa.String(length=40), nullable=False),
        sa.Column('source_id', sa.BigInteger(), nullable=False),
        sa.Column('target_id', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('source', 'table_name', 'source_id'),
    )


def downgrade() -> None:
    op.drop_table('archive_import_map')
