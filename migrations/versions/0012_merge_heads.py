"""merge the branches: one head again

Revision ID: 0012
Revises: 0004, 0005, 0007, 0011 (0002 and 0006 are in through depends_on)
Create Date: 2026-12-04 10:00:00
"""

revision = '0012'
down_revision = ('0004', '0005', '0007', '0011')
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
