"""Index the event outbox by delivery state: pending events are found without a table scan.

Event delivery (``airlock events deliver``, after every hub operation, and
every few seconds in ``airlock spoke serve``) asks three things of
``event_outbox``: the events not yet written to the outbox file
(``written_at = ''``, oldest first), the events not yet acknowledged by the
webhook (``delivered_at = ''``, oldest first) and how many of either are left.
The outbox keeps every delivered event, so without an index each of those
queries reads the whole table, on every poll, for ever longer: with 50,000
delivered events about 6 ms each on SQLite (``SCAN event_outbox``); with
these two indexes a few microseconds (``SEARCH … USING INDEX``, a
multi-index OR for the count), however long the outbox grows. ``seq`` is
the second column so that PostgreSQL reads the pending events in order too.

Cost: two B-tree indexes on two short text columns, built once in the
upgrade (one pass over the outbox) and kept up to date on each insert and
mark.
"""

from __future__ import annotations

from alembic import op

revision: str = "spoke_0002"
down_revision: str | None = "spoke_0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Adds ``ix_event_outbox_written_at_seq`` and ``ix_event_outbox_delivered_at_seq``."""
    op.create_index("ix_event_outbox_written_at_seq", "event_outbox", ["written_at", "seq"])
    op.create_index("ix_event_outbox_delivered_at_seq", "event_outbox", ["delivered_at", "seq"])
