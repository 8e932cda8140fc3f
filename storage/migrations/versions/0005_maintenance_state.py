"""Where the daily maintenance got to (the last day boundary applied and when it ran), so a
service that was down at 04:00 catches up at start-up; the daily row is seeded.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DAILY = 'daily'  # storage.repository.DAILY_MAINTENANCE


def upgrade() -> None:
    state = op.create_table(
        'maintenance_state',
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('day', sa.Date(), nullable=True),
        sa.Column('ran_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_maintenance_state')),
    )
    op.bulk_insert(state, [{'name': DAILY, 'day': None, 'ran_at': None}])


def downgrade() -> None:
    op.drop_table('maintenance_state')
