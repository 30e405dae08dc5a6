"""Event log (append-only, hash-chained), reader tables, API tokens, idempotency records.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE events (
            position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            coverage_id     text        NOT NULL,
            version         integer     NOT NULL CHECK (version > 0),
            post_id         text,
            type            text        NOT NULL,
            schema_version  integer     NOT NULL,
            data            jsonb       NOT NULL,
            metadata        jsonb       NOT NULL,
            recorded_at     timestamptz NOT NULL,
            xid             xid8        NOT NULL DEFAULT pg_current_xact_id(),
            prev_hash       text        NOT NULL,
            hash            text        NOT NULL,
            CONSTRAINT events_stream_version UNIQUE (coverage_id, version)
        )
        """
    )
    op.execute("CREATE INDEX events_post ON events (post_id, version) WHERE post_id IS NOT NULL")
    op.execute(
        """
        CREATE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'events are append-only: % refused', TG_OP
                USING ERRCODE = 'restrict_violation';
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
        "FOR EACH ROW EXECUTE FUNCTION events_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events "
        "FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change()"
    )
    op.execute(
        """
        CREATE TABLE coverages (
            id          text        PRIMARY KEY,
            version     integer     NOT NULL,
            started_at  timestamptz NOT NULL,
            state       jsonb       NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX coverages_listing ON coverages (started_at DESC, id DESC)")
    op.execute(
        """
        CREATE TABLE posts (
            id           text    PRIMARY KEY,
            coverage_id  text    NOT NULL,
            sequence     integer NOT NULL,
            changed_version integer NOT NULL,
            key_event    boolean NOT NULL,
            retracted    boolean NOT NULL,
            state        jsonb   NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX posts_timeline ON posts (coverage_id, sequence) WHERE NOT retracted")
    op.execute("CREATE INDEX posts_changes ON posts (coverage_id, changed_version)")
    op.execute(
        "CREATE INDEX posts_key_events ON posts (coverage_id, sequence) WHERE key_event AND NOT retracted"
    )
    op.execute(
        """
        CREATE TABLE api_tokens (
            id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name        text        NOT NULL,
            role        text        NOT NULL CHECK (role IN ('editor', 'auditor', 'admin')),
            token_hash  text        NOT NULL UNIQUE,
            created_at  timestamptz NOT NULL DEFAULT now(),
            revoked_at  timestamptz
        )
        """
    )
    op.execute("CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL")
    op.execute(
        """
        CREATE TABLE idempotency_records (
            actor        text        NOT NULL,
            key          text        NOT NULL,
            fingerprint  text        NOT NULL,
            status       integer     NOT NULL,
            headers      jsonb       NOT NULL,
            body         bytea       NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (actor, key)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE idempotency_records")
    op.execute("DROP TABLE api_tokens")
    op.execute("DROP TABLE posts")
    op.execute("DROP TABLE coverages")
    op.execute("DROP TABLE events")
    op.execute("DROP FUNCTION events_refuse_change()")
