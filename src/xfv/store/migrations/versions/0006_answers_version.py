"""A version counter of everything the web's cached answers are read from, raised by triggers.

``data_versions`` gains a row, ``answers``, whose ``version`` goes up with every insert, update or
delete on the tables the explorer, the viewer, the landing page and their API calls read (every
table but the jobs', the uploads' and the counters'). A running job writes its progress twice a
second, which moves the store's change token; this counter does not move with it, so the answers
kept for those pages stay valid while jobs run. It starts at a random value: an ETag a browser
kept from an earlier store of the same name cannot match the answers of a store made anew.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

"""

import secrets
from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The tables whose writes raise the ``answers`` version.
ANSWER_SOURCES = (
    "datasets",
    "identities",
    "images",
    "pairs",
    "models",
    "pair_results",
    "fold_results",
    "occlusion_settings",
    "xmap_results",
    "reviews",
)
BUMP = "UPDATE data_versions SET version = version + 1 WHERE name = 'answers'"
EVENTS = ("insert", "update", "delete")


def upgrade() -> None:
    """Upgrade schema."""
    op.execute(f"INSERT INTO data_versions (name, version) VALUES ('answers', {secrets.randbelow(2**62)})")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE FUNCTION xfv_bump_answers() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for table in ANSWER_SOURCES:
            op.execute(
                f"CREATE TRIGGER {table}_bump_answers AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION xfv_bump_answers()"
            )
        return
    for table in ANSWER_SOURCES:
        for event in EVENTS:
            op.execute(
                f"CREATE TRIGGER {table}_{event}_bump_answers AFTER {event.upper()} ON {table} BEGIN {BUMP}; END"
            )


def downgrade() -> None:
    """Downgrade schema."""
    if op.get_bind().dialect.name == "postgresql":
        for table in ANSWER_SOURCES:
            op.execute(f"DROP TRIGGER {table}_bump_answers ON {table}")
        op.execute("DROP FUNCTION xfv_bump_answers()")
    else:
        for table in ANSWER_SOURCES:
            for event in EVENTS:
                op.execute(f"DROP TRIGGER {table}_{event}_bump_answers")
    op.execute("DELETE FROM data_versions WHERE name = 'answers'")
