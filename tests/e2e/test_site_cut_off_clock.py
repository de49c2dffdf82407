"""A cut-off site keeps serving its nodes: real processes, a real shifted clock (issue 12.21).

Done the way the red team found the defect. The site imports its last bundle
(30-day transit budget) at the real time; ``airlock spoke serve`` and a node
agent (``airlock agent run --once``) install the assigned ``iris@1`` on
node-1. Then every process runs under libfaketime, ``days`` ahead: the spoke
service again, node-1 restarting, and node-2 enrolled only now
(``airlock agent init``, ``airlock spoke node enroll``, ``airlock agent
enroll``). Both must verify the hub's Image metadata — expired by then — on
the site director's freshness statement and run ``iris@1``. Before the fix the
node's ngclient read the (shifted) system clock and refused everything with
"expired Image metadata".

Nothing here injects a clock: only the real system clock, shifted.
Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.cutoffenv import CutoffSite, build_cutoff_site
from helpers.gatemodels import make_iris
from helpers.shiftedclock import airlock_env, free_port, libfaketime, run, spoke_service
from helpers.spokeenv import SITE_PASSPHRASE, site_secrets

from airlock.bundles.clock import utc_iso
from airlock.bundles.db import session_scope
from airlock.node import AgentHome
from airlock.spoke.site import FleetModel, SpokeHome

pytestmark = pytest.mark.slow

NODE_PASSPHRASE = "node passphrase for the cut-off site"
FRESHNESS_FILE = "site-freshness.json"
"""The site's statement as the spoke serves it and a node keeps it (``/v1/image/…``)."""
INSTALL_SECONDS = 90
"""How long a node may take to be assigned, verify and install (the engine ticks every second)."""


@pytest.fixture(scope="module")
def cutoff(tmp_path_factory: pytest.TempPathFactory) -> CutoffSite:
    libfaketime()  # fail early, with the fix, when the library is missing
    base = tmp_path_factory.mktemp("cutoff-clock")
    return build_cutoff_site(base, make_iris(base / "iris-model"), dt.timedelta(0))


def _agent_env(days: int) -> dict[str, str]:
    return airlock_env(days, AIRLOCK_AGENT_PASSPHRASE=NODE_PASSPHRASE)


def _ok(result: Any) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stdout}{result.stderr}"
    return str(result.stdout)


def _new_node(base: Path, node_id: str, spoke: Path, url: str, days: int) -> Path:
    """``agent init`` → ``spoke node enroll`` → ``agent enroll``, every clock ``days`` ahead."""
    home, bootstrap = base / node_id, base / f"{node_id}-bootstrap.json"
    _ok(run(_agent_env(days), "agent", "init", "--home", str(home), "--node-id", node_id))
    _ok(
        run(
            airlock_env(days, AIRLOCK_SPOKE_PASSPHRASE=SITE_PASSPHRASE),
            "spoke",
            "node",
            "enroll",
            "--home",
            str(spoke),
            "--identity",
            str(home / "node-identity.json"),
            "--url",
            url,
            "--out",
            str(bootstrap),
        )
    )
    _ok(
        run(_agent_env(days), "agent", "enroll", "--home", str(home), "--bootstrap", str(bootstrap))
    )
    return home


def _poll_until_serving(home: Path, days: int) -> dict[str, Any]:
    """``agent run --once`` until the node serves iris@1 (the spoke assigns within a tick).

    Returns the last poll's outcome. A poll that fails ends the test with its error.
    """
    deadline = time.monotonic() + INSTALL_SECONDS
    while True:
        outcome = json.loads(
            _ok(run(_agent_env(days), "agent", "run", "--home", str(home), "--once", "--json"))
        )
        assert outcome["ok"] and outcome["verified"], outcome
        iris = AgentHome(home).load_state().families.get("iris")
        if iris is not None and iris.stable == "1" and iris.active_record.state == "ready":
            return dict(outcome)
        assert time.monotonic() < deadline, f"node not serving iris@1: {iris}"
        time.sleep(1)


def _iris_is_stable(spoke: Path) -> None:
    """The state a completed rollout of iris@1 leaves: every enrolled node is to run it.

    Set at the database edge (as :mod:`helpers.rolloutenv` does): a full ring-by-ring
    rollout is covered by ``test_fleet_rollout`` and is not what this test is about.
    """
    home = SpokeHome(spoke, site_secrets)
    try:
        with session_scope(home.engine) as session:
            session.add(
                FleetModel(
                    model="iris", stable_version="1", updated_at=utc_iso(dt.datetime.now(dt.UTC))
                )
            )
    finally:
        home.engine.dispose()


@pytest.mark.parametrize("days", [45, 90])
def test_a_cut_off_site_serves_a_restarted_and_a_late_node(
    cutoff: CutoffSite, tmp_path: Path, days: int
) -> None:
    spoke = tmp_path / "spoke"
    cutoff.new_spoke(spoke).engine.dispose()
    _iris_is_stable(spoke)
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    with spoke_service(spoke, port, airlock_env(), tmp_path / "serve-now.log"):
        node_1 = _new_node(tmp_path, "node-1", spoke, url, 0)
        _poll_until_serving(node_1, 0)
    assert not (node_1 / "metadata" / "image" / FRESHNESS_FILE).exists()  # hub's metadata fresh

    with spoke_service(spoke, port, airlock_env(days), tmp_path / f"serve-{days}d.log"):
        restarted = _poll_until_serving(node_1, days)
        node_2 = _new_node(tmp_path, "node-2", spoke, url, days)
        late = _poll_until_serving(node_2, days)

    assert not restarted["refusals"] and not late["refusals"]
    for node in (node_1, node_2):  # each relied on the site's freshness statement
        assert (node / "metadata" / "image" / FRESHNESS_FILE).exists()
