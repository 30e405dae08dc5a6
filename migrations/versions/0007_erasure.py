"""Lawful erasure: the one change the event log allows, made only by `erase_post_content`.

A `post.redacted` event (appended by an admin, with a reason and a legal reference) is followed in the same
transaction by this function, which replaces the data of the post's earlier published, edited and retracted
events with an erasure marker and drops their salt. Their hashes, and so the chain, the Merkle trees and every
proof, are untouched: since migration 0006 a hash covers a salted commitment to the data, not the data. The
function runs with its owner's rights (SECURITY DEFINER), so the service's role, which may not UPDATE events, can
erase and do nothing else; the trigger still refuses any other change. Stored idempotent answers that carried
the post are replaced by a 410. Events written before 0006 have no commitment: their data is erased the same
way, their kept hash covers the erased text (README, "Erasure").

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

GUARD = """
CREATE OR REPLACE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND current_setting('liveline.erasing', true) = 'on'
       AND (NEW.position, NEW.coverage_id, NEW.version, NEW.post_id, NEW.type, NEW.schema_version, NEW.metadata,
            NEW.recorded_at, NEW.prev_hash, NEW.hash, NEW.commitment, NEW.xid)
           IS NOT DISTINCT FROM
           (OLD.position, OLD.coverage_id, OLD.version, OLD.post_id, OLD.type, OLD.schema_version, OLD.metadata,
            OLD.recorded_at, OLD.prev_hash, OLD.hash, OLD.commitment, OLD.xid)
       AND NEW.salt IS NULL AND NEW.data ? 'erased' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'events are append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$
"""

ERASE = """
CREATE FUNCTION erase_post_content(p_coverage text, p_post text, p_before bigint, p_marker jsonb, p_gone bytea)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    erased integer;
BEGIN
    PERFORM set_config('liveline.erasing', 'on', true);
    UPDATE events SET data = p_marker, salt = NULL
    WHERE coverage_id = p_coverage AND post_id = p_post AND version < p_before
      AND type IN ('post.published', 'post.edited', 'post.retracted') AND NOT data ? 'erased';
    GET DIAGNOSTICS erased = ROW_COUNT;
    PERFORM set_config('liveline.erasing', 'off', true);
    UPDATE idempotency_records SET status = 410, headers = '{}'::jsonb, body = p_gone
    WHERE position(convert_to(p_post, 'UTF8') IN body) > 0;
    RETURN erased;
END
$$
"""

GRANT = """
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'liveline_service') THEN
        GRANT EXECUTE ON FUNCTION erase_post_content(text, text, bigint, jsonb, bytea) TO liveline_service;
    END IF;
END
$$
"""

ORIGINAL_GUARD = """
CREATE OR REPLACE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$
"""


def upgrade() -> None:
    op.execute(GUARD)
    op.execute(ERASE)
    op.execute("REVOKE ALL ON FUNCTION erase_post_content(text, text, bigint, jsonb, bytea) FROM PUBLIC")
    op.execute(GRANT)


def downgrade() -> None:
    op.execute("DROP FUNCTION erase_post_content(text, text, bigint, jsonb, bytea)")
    op.execute(ORIGINAL_GUARD)
