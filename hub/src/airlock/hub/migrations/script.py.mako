"""${message}

Revision ${up_revision}, after ${down_revision | comma,n}; made ${create_date}.

Say why this revision exists and what it costs on a large table (it runs
while the site's services are stopped).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

revision: str = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Applies the revision (on SQLite, alter tables inside ``op.batch_alter_table``)."""
    ${upgrades if upgrades else "pass"}
