"""job_run: one row per run of a scheduled job (app.jobs)

The runner records each run (slot, instance, outcome, counts, error) and reads these rows, under the
job's advisory lock, to run each due slot once across every instance.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 10:30:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'job_run',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('job', sa.String(length=40), nullable=False),
        sa.Column('slot', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('instance', sa.String(length=64), nullable=False),
        sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('outcome', sa.String(length=10), nullable=False),
        sa.Column('counts', sa.JSON(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_job_run_job_slot', 'job_run', ['job', 'slot'], unique=False)
    op.create_index('ix_job_run_job_started', 'job_run', ['job', 'started_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_job_run_job_started', table_name='job_run')
    op.drop_index('ix_job_run_job_slot', table_name='job_run')
    op.drop_table('job_run')
