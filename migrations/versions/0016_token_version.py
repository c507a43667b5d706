"""app_user.token_version and tokens_revoked_at: access tokens refused after logout or a role change

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('app_user', sa.Column('token_version', sa.Integer(), server_default='0', nullable=False))
    op.add_column('app_user', sa.Column('tokens_revoked_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        'ix_app_user_tokens_revoked_at', 'app_user', ['tokens_revoked_at'], unique=False,
        postgresql_where=sa.text('tokens_revoked_at IS NOT NULL'),
    )


def downgrade() -> None:
    op.drop_index('ix_app_user_tokens_revoked_at', table_name='app_user', postgresql_where=sa.text('tokens_revoked_at IS NOT NULL'))
    op.drop_column('app_user', 'tokens_revoked_at')
    op.drop_column('app_user', 'token_version')
