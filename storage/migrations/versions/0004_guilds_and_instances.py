"""Where turns, decisions and admin actions happened (guild), which process ran a turn, and
when a memory item was last used.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('turns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('guild_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('instance_id', sa.String(length=64), nullable=True))
    with op.batch_alter_table('memory_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_used_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('sanctions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('guild_id', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_sanctions_guild_id'), ['guild_id'], unique=False)
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('guild_id', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_audit_log_guild_id'), ['guild_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_guild_id'))
        batch_op.drop_column('guild_id')
    with op.batch_alter_table('sanctions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sanctions_guild_id'))
        batch_op.drop_column('guild_id')
    with op.batch_alter_table('memory_items', schema=None) as batch_op:
        batch_op.drop_column('last_used_at')
    with op.batch_alter_table('turns', schema=None) as batch_op:
        batch_op.drop_column('instance_id')
        batch_op.drop_column('guild_id')
