"""``airlock agent init | enroll | run | status``, and an agent on the real NodeVerifier.

The spoke side is the fleet's real spoke (iris@1..3 staged): it enrols the
node (``airlock spoke node enroll``'s function) and signs its assignment as
site director; the node's verifier reads it through the in-memory mirror
transport (:mod:`helpers.mirrorfetch`), so TUF verification, downloads and
health checks are all real.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import stat
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from helpers.agentenv import AGENT_TIME, RecordingSender
from helpers.fleetenv import site_signer
from helpers.mirrorfetch import BASE_URL, MirrorFetcher

from airlock.bundles.cli import AirlockGroup
from airlock.bundles.clock import FixedClock
from airlock.bundles.db import session_scope
from airlock.bundles.errors import MediaError, SecretError
from airlock.bundles.protocol import AgentBootstrap, NodeModel, VersionReport
from airlock.node import PASSPHRASE_ENV, SIGNING_KEY_FILE, Agent, AgentHome, agent, make_verifier
from airlock.spoke import director as site_director
from airlock.spoke import nodes as enrolment
from airlock.spoke.site import NodeDesired, SpokeHome

PASSPHRASE = "node passphrase for tests"
ROWS = [[5.1, 3.5, 1.4, 0.2]]


def _airlock(*args: str, passphrase: str | None = PASSPHRASE) -> Result:
    """``airlock ARGS`` through the real catch point, with only the agent group."""
    group = AirlockGroup(name="airlock", commands={"agent": agent})
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("AIRLOCK_")}
    env.update({PASSPHRASE_ENV: passphrase, "COLUMNS": "200"})
    return CliRunner().invoke(group, list(args), env=env, catch_exceptions=False)


def _init(home: Path, node_id: str) -> dict[str, str]:
    result = _airlock("agent", "init", "--home", str(home), "--node-id", node_id, "--json")
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


def _enrol_at_spoke(spoke: SpokeHome, identity: Path, out: Path, url: str = BASE_URL) -> None:
    enrolment.enroll(spoke, identity, [], url, out, FixedClock(AGENT_TIME))


def _assign(spoke: SpokeHome, node_id: str, *models: NodeModel) -> None:
    with session_scope(spoke.engine) as session:
        row = session.get(NodeDesired, node_id) or NodeDesired(node_id=node_id)
        row.models = [m.to_dict() for m in models]
        session.add(row)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        site_director.publish_pending(spoke, session, site_signer(spoke), now)


def test_init_creates_an_encrypted_key_and_the_identity(tmp_path: Path) -> None:
    created = _init(tmp_path / "node", "node-1")
    home = tmp_path / "node"
    assert created["identity_file"] == str(home / "node-identity.json")
    identity = json.loads((home / "node-identity.json").read_text())
    assert identity["keyid"] == created["keyid"] and identity["node_id"] == "node-1"
    key_file = home / SIGNING_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in key_file.read_bytes()
    with pytest.raises(SecretError):
        AgentHome(home, lambda _name: "the wrong passphrase").signer()
    assert AgentHome(home, lambda _name: PASSPHRASE).signer().public_key.keyid == created["keyid"]

    again = _airlock("agent", "init", "--home", str(home), "--node-id", "node-2")
    assert again.exit_code == 3 and "already exists" in again.output
    short = _airlock(
        "agent", "init", "--home", str(tmp_path / "n2"), "--node-id", "n", passphrase="short"
    )
    assert short.exit_code == 4 and not (tmp_path / "n2").exists()
    bad = _airlock("agent", "init", "--home", str(tmp_path / "n3"), "--node-id", "../x")
    assert bad.exit_code == 3 and not (tmp_path / "n3").exists()


def test_an_enrolled_agent_verifies_installs_serves_and_reports(
    fleet_spoke: SpokeHome, tmp_path: Path
) -> None:
    home_dir = tmp_path / "node"
    _init(home_dir, "node-1")
    bootstrap_file = tmp_path / "agent-bootstrap.json"
    _enrol_at_spoke(fleet_spoke, home_dir / "node-identity.json", bootstrap_file)

    wrong = tmp_path / "other-bootstrap.json"
    data = json.loads(bootstrap_file.read_text())
    wrong.write_text(json.dumps({**data, "node_id": "node-9"}))
    refused = _airlock("agent", "enroll", "--home", str(home_dir), "--bootstrap", str(wrong))
    assert refused.exit_code == 3 and "for node 'node-9'" in refused.output

    result = _airlock(
        "agent", "enroll", "--home", str(home_dir), "--bootstrap", str(bootstrap_file), "--json"
    )
    assert result.exit_code == 0, result.output
    enrolled = json.loads(result.output)
    bootstrap = AgentBootstrap.from_dict(data)
    assert (
        enrolled["image_root_sha256"] == hashlib.sha256(bootstrap.image_root.encode()).hexdigest()
    )
    assert enrolled["site_root_sha256"] == hashlib.sha256(bootstrap.site_root.encode()).hexdigest()
    again = _airlock("agent", "enroll", "--home", str(home_dir), "--bootstrap", str(bootstrap_file))
    assert again.exit_code == 3  # trust is set once

    _assign(fleet_spoke, "node-1", NodeModel("iris", "1"))
    home = AgentHome(home_dir, lambda _name: PASSPHRASE)
    verifier = make_verifier(home, home.bootstrap(), MirrorFetcher(fleet_spoke))
    sender = RecordingSender()
    node = Agent(home, verifier, sender, FixedClock(AGENT_TIME))
    outcome = node.poll_once()
    assert outcome.ok, outcome.to_dict()
    assert node.predictor.predict("iris", ROWS).version == "1"

    _assign(
        fleet_spoke,
        "node-1",
        NodeModel("iris", "1"),
        NodeModel("iris", "2", role="candidate", traffic="shadow"),
    )
    assert node.poll_once().ok
    answer = node.predictor.predict("iris", ROWS)
    assert (answer.version, answer.role) == ("1", "stable")
    (path, doc) = sender.posted[-2]
    assert path == "/v1/nodes/node-1/reports"
    report = VersionReport.from_dict(doc.verify(home.identity().public_key))
    assert report.installed[0].candidate_version == "2" and report.last_verified is not None

    status = _airlock("agent", "status", "--home", str(home_dir), "--json")
    assert status.exit_code == 0
    shown = json.loads(status.output)
    assert shown["site_id"] == fleet_spoke.site_id and shown["counter"] == 2
    assert shown["families"]["iris"]["candidate"] == "2"
    assert [e["event"] for e in shown["recent_events"]][:4] == [
        "init",
        "enroll-failed",
        "enrolled",
        "enroll-failed",
    ]
    human = _airlock("agent", "status", "--home", str(home_dir))
    assert human.exit_code == 0 and "iris" in human.output and "shadow" in human.output


def test_run_once_fails_with_the_transport_error_when_the_spoke_is_down(
    fleet_spoke: SpokeHome, tmp_path: Path
) -> None:
    home_dir = tmp_path / "node"
    _init(home_dir, "node-1")
    bootstrap_file = tmp_path / "agent-bootstrap.json"
    _enrol_at_spoke(
        fleet_spoke, home_dir / "node-identity.json", bootstrap_file, "http://127.0.0.1:9"
    )
    assert (
        _airlock(
            "agent", "enroll", "--home", str(home_dir), "--bootstrap", str(bootstrap_file)
        ).exit_code
        == 0
    )
    result = _airlock("agent", "run", "--home", str(home_dir), "--once")
    assert result.exit_code == MediaError.exit_code, result.output
    assert "could not fetch" in result.output
    state = AgentHome(home_dir).load_state()
    assert state.counter == 1  # the report counter was taken before the (failed) send
    assert state.refusals["*@*"].reason.startswith("could not fetch")


def test_run_and_status_need_an_initialised_and_enrolled_home(tmp_path: Path) -> None:
    missing = _airlock("agent", "status", "--home", str(tmp_path / "none"))
    assert missing.exit_code == 3 and "not an initialised agent home" in missing.output
    _init(tmp_path / "node", "node-1")
    not_enrolled = _airlock("agent", "run", "--home", str(tmp_path / "node"), "--once")
    assert not_enrolled.exit_code == 3 and "not enrolled" in not_enrolled.output
    assert isinstance(agent, click.Group)
