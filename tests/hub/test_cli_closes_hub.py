"""Every hub command releases its database: no connection outlives the command.

Counted with SQLAlchemy's own pool events on the real engine each command
opens: every DBAPI connection the pool made must be closed (the engine
disposed) before the command returns, on success and on failure alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.connections import Connections
from helpers.hubenv import HUB_PASSPHRASE
from helpers.identities import SiteKeys

from airlock.bundles.cli import main
from airlock.hub.context import HubContext


@pytest.fixture
def closed_hub(
    hub: HubContext, monkeypatch: pytest.MonkeyPatch, connections: Connections
) -> HubContext:
    """An initialised hub home whose own engine is released before the command runs."""
    monkeypatch.setenv("AIRLOCK_HUB_PASSPHRASE", HUB_PASSPHRASE)
    monkeypatch.setenv("AIRLOCK_HUB_HOME", str(hub.home.root))
    hub.close()
    connections.opened = connections.closed = 0
    return hub


@pytest.mark.parametrize(
    ("command", "exit_code"),
    [
        (["site", "list"], 0),
        (["tenant", "list"], 0),
        (["model", "list"], 0),
        (["status"], 0),
        (["change", "list"], 0),
        (["layout", "show"], 3),
        (["model", "show", "no-such-model", "1"], 3),
        (["unassign", "plant-7", "no-such-model"], 3),
        (["export", "--site", "plant-7", "--out", "bundle"], 3),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else str(value),
)
def test_a_command_closes_every_connection_it_opens(
    closed_hub: HubContext, connections: Connections, command: list[str], exit_code: int
) -> None:
    result = CliRunner().invoke(main, ["hub", *command])
    assert result.exit_code == exit_code, result.output
    assert connections.opened > 0
    assert connections.closed == connections.opened


def test_a_state_changing_command_closes_its_connections(
    closed_hub: HubContext, connections: Connections, site: SiteKeys, tmp_path: Path
) -> None:
    identity = tmp_path / "site-identity.json"
    identity.write_text(json.dumps(site.identity.to_dict()))
    result = CliRunner().invoke(main, ["hub", "site", "add", "--identity", str(identity)])
    assert result.exit_code == 0, result.output
    assert connections.opened > 0
    assert connections.closed == connections.opened
