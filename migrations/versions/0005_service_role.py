"""Least privilege: the service's role reads and appends events but may not change or remove them.

The roles are the operator's (cluster-wide, made before migrating; the embedded default makes them itself). Where
`liveline_service` exists, it gets what the service needs and no more: on `events` SELECT and INSERT only, so
UPDATE, DELETE and TRUNCATE are refused by privileges before the trigger of 0001 (the second wall) is reached.
Tables the owner makes later (a rebuild's fresh reader tables) get the reader-table privileges by default.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

GRANTS = """
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'liveline_service') THEN
        GRANT USAGE ON SCHEMA public TO liveline_service;
        GRANT SELECT, INSERT ON events TO liveline_service;
        GRANT SELECT, INSERT, UPDATE, DELETE ON coverages, posts, api_tokens, idempotency_records
            TO liveline_service;
        GRANT SELECT ON alembic_version TO liveline_service;
        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO liveline_service;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO liveline_service;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO liveline_service;
    END IF;
END
$$
"""

REVOKES = """
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'liveline_service') THEN
        ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM liveline_service;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM liveline_service;
        REVOKE ALL ON ALL TABLES IN SCHEMA public FROM liveline_service;
        REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM liveline_service;
    END IF;
END
$$
"""


def upgrade() -> None:
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(REVOKES)
