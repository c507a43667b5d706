"""journal_entry: the index on community_id becomes (community_id, occurred_at)

The point totals read a period's journal entries of the scope's communities. With the index on
community_id alone PostgreSQL read every entry of the communities (8.3 M for the generator-built
street of 61,928 households) and filtered on occurred_at; with occurred_at in the index it reads one
range per community (880,000 entries for a month): the entries' part of the export's statement fell
from 1.6 s to 0.2 s. The composite index serves lookups by community alone just as well, so the
table keeps the same number of indexes (no extra write per check-in).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 17:10:00
"""
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('journal_entry') as batch_op:
        batch_op.create_index('ix_journal_entry_community_occurred', ['community_id', 'occurred_at'], unique=False)
        batch_op.drop_index('ix_journal_entry_community_id')


def downgrade() -> None:
    with op.batch_alter_table('journal_entry') as batch_op:
        batch_op.create_index('ix_journal_entry_community_id', ['community_id'], unique=False)
        batch_op.drop_index('ix_journal_entry_community_occurred')
