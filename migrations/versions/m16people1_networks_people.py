"""networks of partner organisations, activity attendees, media readings over time

A network (枢纽/联盟) is an entity of its own with its partner organisations; an activity's attendees
are recorded by household (what 人 is counted from); a media item's reads are appended as readings
(what a month's reads are read from, so a past month's report never changes), and a media item may
name the activity it reports. Existing media items get one reading: their reads at creation.

Revision ID: m16people1
Revises: 0016
Create Date: 2026-12-05
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = 'm16people1'
down_revision = 'm16waste_1'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'network',
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('coordinator_organisation_id', sa.BigInteger(), nullable=True),
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['coordinator_organisation_id'], ['organisation.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
    )
    op.create_table(
        'network_partner',
        sa.Column('network_id', sa.BigInteger(), nullable=False),
        sa.Column('organisation_id', sa.BigInteger(), nullable=False),
        sa.Column('added_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['network_id'], ['network.id']),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id']),
        sa.PrimaryKeyConstraint('network_id', 'organisation_id'),
    )
    op.create_index('ix_network_partner_organisation_id', 'network_partner', ['organisation_id'], unique=False)
    op.create_table(
        'media_reading',
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('media_item_id', sa.BigInteger(), nullable=False),
        sa.Column('reads', sa.BigInteger(), nullable=False),
        sa.Column('recorded_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['media_item_id'], ['media_item.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_media_reading_item_at', 'media_reading', ['media_item_id', 'recorded_at'], unique=False)
    op.execute("INSERT INTO media_reading (media_item_id, reads, recorded_at) SELECT id, reads, created_at FROM media_item")
    op.create_table(
        'activity_attendance',
        sa.Column('activity_id', sa.BigInteger(), nullable=False),
        sa.Column('household_id', sa.BigInteger(), nullable=False),
        sa.Column('recorded_by', sa.BigInteger(), nullable=False),
        sa.Column('recorded_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['activity_id'], ['activity.id']),
        sa.ForeignKeyConstraint(['household_id'], ['household.id']),
        sa.ForeignKeyConstraint(['recorded_by'], ['app_user.id']),
        sa.PrimaryKeyConstraint('activity_id', 'household_id'),
    )
    op.create_index('ix_activity_attendance_household_id', 'activity_attendance', ['household_id'], unique=False)
    op.add_column('media_item', sa.Column('activity_id', sa.BigInteger(), nullable=True))
    op.create_index('ix_media_item_activity_id', 'media_item', ['activity_id'], unique=False)
    op.create_foreign_key('media_item_activity_id_fkey', 'media_item', 'activity', ['activity_id'], ['id'])


def downgrade() -> None:
    op.drop_constraint('media_item_activity_id_fkey', 'media_item', type_='foreignkey')
    op.drop_index('ix_media_item_activity_id', table_name='media_item')
    op.drop_column('media_item', 'activity_id')
    op.drop_index('ix_activity_attendance_household_id', table_name='activity_attendance')
    op.drop_table('activity_attendance')
    op.drop_index('ix_media_reading_item_at', table_name='media_reading')
    op.drop_table('media_reading')
    op.drop_index('ix_network_partner_organisation_id', table_name='network_partner')
    op.drop_table('network_partner')
    op.drop_table('network')
