"""Pins by coverage: a post's history learns when another post took its pin without reading the coverage.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX events_pins ON events (coverage_id, version) WHERE type = 'post.pinned'")


def downgrade() -> None:
    op.execute("DROP INDEX events_pins")
