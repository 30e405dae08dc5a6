"""Salted commitments to event content, so that content can later be erased while the chain still verifies.

Events appended from now on store a random `salt` and `commitment` = SHA-256(salt || canonical data); their hash
covers the commitment instead of the data. Erasing content (migration 0007) then removes data and salt and keeps
the commitment: the chain, the Merkle trees and every proof still verify, and the kept commitment does not let
anyone confirm a guess of the erased text (the salt is gone with it). Events appended before keep their bytes and
hashes (both columns NULL): their hash covers the data itself.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE events ADD COLUMN salt text, ADD COLUMN commitment text")


def downgrade() -> None:
    op.execute("ALTER TABLE events DROP COLUMN salt, DROP COLUMN commitment")
