"""Every spoke command releases its database: no SQLite connection outlives the command.

Counted with SQLAlchemy's own pool events on the real engine the command opens:
each DBAPI connection the pool makes must be closed (the engine disposed)
before the command returns.
"""

from __future__ import annotations

import pytest
from helpers.connections import Connections
from helpers.spokeenv import Invoke

from airlock.spoke.site import SpokeHome


@pytest.mark.parametrize(
    "command",
    [
        ["spoke", "status"],
        ["spoke", "node", "list"],
        ["spoke", "rollout", "list"],
        ["spoke", "rollout", "show", "no-such-rollout"],
        ["spoke", "export-metrics", "--dry-run"],
        ["audit", "verify"],
        ["audit", "query"],
        ["events", "list"],
    ],
    ids=" ".join,
)
def test_a_command_closes_every_connection_it_opens(
    airlock: Invoke, spoke: SpokeHome, connections: Connections, command: list[str]
) -> None:
    spoke.engine.dispose()
    connections.opened = connections.closed = 0

    result = airlock(*command, "--home", str(spoke.path))

    assert result.exit_code in (0, 3), result.stderr  # 3: the rollout that does not exist
    assert connections.opened > 0
    assert connections.closed == connections.opened


def test_a_closed_home_opens_again(spoke: SpokeHome, connections: Connections) -> None:
    engine = spoke.engine
    spoke.audit.record("test.close", "success", object="home")
    spoke.close()
    assert connections.closed == connections.opened
    assert spoke.engine is not engine  # a new engine on next use
    spoke.close()
    spoke.close()  # closing twice, or a home never used, is harmless
