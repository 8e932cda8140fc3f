"""Moderation: numbered cases (one global sequence), appeals, per-server settings and
moderator roles; every sanction decision made before this gets its case, oldest first, so old
blocks can be appealed and cited by number too.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXCERPT_CHARS = 200  # storage.models.MAX_EXCERPT_CHARS
ELLIPSIS = '…'
SYSTEM_ACTOR = 'system'


def _excerpt(text: str | None) -> str | None:
    """storage.moderation.excerpt_of, frozen as it was when this revision was written."""
    if not text:
        return None
    text = ' '.join(text.split())
    if len(text) <= EXCERPT_CHARS:
        return text
    return text[: EXCERPT_CHARS - len(ELLIPSIS)] + ELLIPSIS


def upgrade() -> None:
    cases = op.create_table(
        'cases',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('user_id', sa.String(length=32), nullable=True),
        sa.Column('guild_id', sa.String(length=32), nullable=True),
        sa.Column('actor_id', sa.String(length=32), nullable=False),
        sa.Column('decision_id', sa.String(length=36), nullable=True),
        sa.Column('ref_case_id', sa.Integer(), nullable=True),
        sa.Column('categories', sa.JSON(), nullable=False),
        sa.Column('levels', sa.JSON(), nullable=False),
        sa.Column('period_seconds', sa.Integer(), nullable=True),
        sa.Column('expires_at', sa.DateTime(), nullable=True),
        sa.Column('excerpt', sa.String(length=EXCERPT_CHARS), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('detail', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ['ref_case_id'], ['cases.id'],
            name=op.f('fk_cases_ref_case_id_cases'), ondelete='SET NULL',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_cases')),
    )
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cases_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_decision_id'), ['decision_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_guild_id'), ['guild_id'], unique=False)
        batch_op.create_index('ix_cases_user_created', ['user_id', 'created_at'], unique=False)

    op.create_table(
        'appeals',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('open_case_id', sa.Integer(), nullable=True),
        sa.Column('user_id', sa.String(length=32), nullable=False),
        sa.Column('guild_id', sa.String(length=32), nullable=True),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('decided_by', sa.String(length=32), nullable=True),
        sa.Column('decided_at', sa.DateTime(), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('decision_case_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ['case_id'], ['cases.id'],
            name=op.f('fk_appeals_case_id_cases'), ondelete='RESTRICT',
        ),
        sa.ForeignKeyConstraint(
            ['decision_case_id'], ['cases.id'],
            name=op.f('fk_appeals_decision_case_id_cases'), ondelete='SET NULL',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_appeals')),
        sa.UniqueConstraint('open_case_id', name=op.f('uq_appeals_open_case_id')),
    )
    with op.batch_alter_table('appeals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appeals_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_appeals_guild_id'), ['guild_id'], unique=False)
        batch_op.create_index('ix_appeals_user_created', ['user_id', 'created_at'], unique=False)

    op.create_table(
        'guild_settings',
        sa.Column('guild_id', sa.String(length=32), nullable=False),
        sa.Column('modlog_channel_id', sa.String(length=32), nullable=True),
        sa.Column('dm_notice', sa.Boolean(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('guild_id', name=op.f('pk_guild_settings')),
    )
    op.create_table(
        'guild_mod_roles',
        sa.Column('guild_id', sa.String(length=32), nullable=False),
        sa.Column('role_id', sa.String(length=32), nullable=False),
        sa.Column('added_by', sa.String(length=32), nullable=False),
        sa.Column('added_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('guild_id', 'role_id', name=op.f('pk_guild_mod_roles')),
    )
    _backfill_cases(cases)


def _backfill_cases(cases: sa.Table) -> None:
    """One case per decision already recorded, in the order the decisions were made."""
    sanctions = sa.table(
        'sanctions',
        sa.column('id', sa.Integer()),
        sa.column('decision_id', sa.String()),
        sa.column('user_id', sa.String()),
        sa.column('guild_id', sa.String()),
        sa.column('category', sa.String()),
        sa.column('level', sa.Integer()),
        sa.column('block_seconds', sa.Integer()),
        sa.column('created_at', sa.DateTime()),
        sa.column('expires_at', sa.DateTime()),
        sa.column('turn_id', sa.Integer()),
    )
    turns = sa.table('turns', sa.column('id', sa.Integer()), sa.column('original_text', sa.Text()))
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(sanctions, turns.c.original_text)
        .select_from(sanctions.outerjoin(turns, turns.c.id == sanctions.c.turn_id))
        .order_by(sanctions.c.id)
    ).all()
    decisions: dict[str, list[sa.Row]] = {}
    for row in rows:
        decisions.setdefault(row.decision_id, []).append(row)
    values = []
    for group in decisions.values():
        first = group[0]
        values.append(
            {
                'kind': 'block' if first.block_seconds > 0 else 'warning',
                'user_id': first.user_id,
                'guild_id': first.guild_id,
                'actor_id': SYSTEM_ACTOR,
                'decision_id': first.decision_id,
                'ref_case_id': None,
                'categories': [r.category for r in group],
                'levels': [r.level for r in group],
                'period_seconds': first.block_seconds,
                'expires_at': first.expires_at,
                'excerpt': _excerpt(first.original_text),
                'reason': None,
                'detail': 'recorded before cases existed',
                'created_at': first.created_at,
            }
        )
    if values:
        op.bulk_insert(cases, values)


def downgrade() -> None:
    op.drop_table('guild_mod_roles')
    op.drop_table('guild_settings')
    with op.batch_alter_table('appeals', schema=None) as batch_op:
        batch_op.drop_index('ix_appeals_user_created')
        batch_op.drop_index(batch_op.f('ix_appeals_guild_id'))
        batch_op.drop_index(batch_op.f('ix_appeals_case_id'))
    op.drop_table('appeals')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_user_created')
        batch_op.drop_index(batch_op.f('ix_cases_guild_id'))
        batch_op.drop_index(batch_op.f('ix_cases_decision_id'))
        batch_op.drop_index(batch_op.f('ix_cases_created_at'))
    op.drop_table('cases')
