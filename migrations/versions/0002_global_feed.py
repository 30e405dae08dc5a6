"""Global feed: read the log in (transaction, position) order below the visibility horizon.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX events_feed ON events (xid, position)")


def downgrade() -> None:
    op.execute("DROP INDEX events_feed")
