"""Tokens: when each was last used, and an optional expiry.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE api_tokens ADD COLUMN last_used_at timestamptz")
    op.execute("ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE api_tokens DROP COLUMN expires_at")
    op.execute("ALTER TABLE api_tokens DROP COLUMN last_used_at")
