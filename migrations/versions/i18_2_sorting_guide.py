"""guide_override and guide_miss: a community's own sorting-guide entries, and the searches that found nothing

Revision ID: i18_2
Revises: i18_1
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = 'i18_2'
down_revision = 'i18_1'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'guide_override',
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('community_id', sa.BigInteger(), nullable=False),
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('grp', sa.String(length=12), nullable=False),
        sa.Column('synonyms', sa.JSON(), nullable=False),
        sa.Column('instruction', sa.String(length=200), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_by', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['community_id'], ['community.id']),
        sa.ForeignKeyConstraint(['updated_by'], ['app_user.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('community_id', 'name'),
    )
    op.create_table(
        'guide_miss',
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('community_id', sa.BigInteger(), nullable=False),
        sa.Column('query', sa.String(length=40), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('first_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['community_id'], ['community.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('community_id', 'query'),
    )


def downgrade() -> None:
    op.drop_table('guide_miss')
    op.drop_table('guide_override')
