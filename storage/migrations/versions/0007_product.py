"""The product (issue 18): pinned memory items and every item's history, replies replaced by
a regenerate, reply ratings, and per-server chat channels and expression picture.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('memory_items', schema=None) as batch_op:
        # Existing items are not pinned; the ORM writes the value itself from then on.
        batch_op.add_column(
            sa.Column('pinned', sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table('turns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reply_history', sa.JSON(), nullable=True))
    with op.batch_alter_table('guild_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expression_picture', sa.Boolean(), nullable=True))

    op.create_table(
        'memory_history',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.String(length=32), nullable=False),
        sa.Column('key', sa.String(length=100), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('old_value', sa.Text(), nullable=True),
        sa.Column('new_value', sa.Text(), nullable=True),
        sa.Column('turn_id', sa.Integer(), nullable=True),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ['turn_id'], ['turns.id'],
            name=op.f('fk_memory_history_turn_id_turns'), ondelete='SET NULL',
        ),
        sa.ForeignKeyConstraint(
            ['user_id'], ['users.id'],
            name=op.f('fk_memory_history_user_id_users'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_memory_history')),
    )
    with op.batch_alter_table('memory_history', schema=None) as batch_op:
        batch_op.create_index('ix_memory_history_user_key', ['user_id', 'key'], unique=False)

    op.create_table(
        'reply_ratings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('turn_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.String(length=32), nullable=False),
        sa.Column('draw', sa.Integer(), nullable=False),
        sa.Column('rating', sa.Integer(), nullable=False),
        sa.Column('reply', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ['turn_id'], ['turns.id'],
            name=op.f('fk_reply_ratings_turn_id_turns'), ondelete='CASCADE',
        ),
        sa.ForeignKeyConstraint(
            ['user_id'], ['users.id'],
            name=op.f('fk_reply_ratings_user_id_users'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_reply_ratings')),
        sa.UniqueConstraint('turn_id', 'draw', name=op.f('uq_reply_ratings_turn_id')),
    )
    with op.batch_alter_table('reply_ratings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reply_ratings_user_id'), ['user_id'], unique=False)

    op.create_table(
        'guild_chat_channels',
        sa.Column('guild_id', sa.String(length=32), nullable=False),
        sa.Column('channel_id', sa.String(length=32), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('changed_by', sa.String(length=32), nullable=False),
        sa.Column('changed_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('guild_id', 'channel_id', name=op.f('pk_guild_chat_channels')),
    )


def downgrade() -> None:
    op.drop_table('guild_chat_channels')
    with op.batch_alter_table('reply_ratings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reply_ratings_user_id'))
    op.drop_table('reply_ratings')
    with op.batch_alter_table('memory_history', schema=None) as batch_op:
        batch_op.drop_index('ix_memory_history_user_key')
    op.drop_table('memory_history')
    with op.batch_alter_table('guild_settings', schema=None) as batch_op:
        batch_op.drop_column('expression_picture')
    with op.batch_alter_table('turns', schema=None) as batch_op:
        batch_op.drop_column('reply_history')
    with op.batch_alter_table('memory_items', schema=None) as batch_op:
        batch_op.drop_column('pinned')
