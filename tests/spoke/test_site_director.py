"""The site director signs each node's assignment with the site key, and only hub-signed files."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from helpers.fleetenv import site_signer
from sqlmodel import Session, select
from tuf.api.metadata import Metadata, Root, Targets

from airlock.bundles.audit import AuditRecord
from airlock.bundles.db import session_scope
from airlock.bundles.errors import TrustError
from airlock.bundles.protocol import NODE_ID_FIELD, NodeModel
from airlock.bundles.tuf import SITE_ID_FIELD, target_path
from airlock.spoke import director as site_director
from airlock.spoke.site import NodeDesired, RevokedVersion, SiteDirectorFile, SpokeHome, StagedModel

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def _desire(home: SpokeHome, **nodes: list[NodeModel]) -> None:
    with session_scope(home.engine) as session:
        for node_id, models in nodes.items():
            row = session.get(NodeDesired, node_id) or NodeDesired(node_id=node_id)
            row.models = [m.to_dict() for m in models]
            session.add(row)


def _publish(home: SpokeHome, now: dt.datetime = NOW) -> list[str]:
    with session_scope(home.engine) as session:
        return site_director.publish_pending(home, session, site_signer(home), now)


def _files(home: SpokeHome, node_id: str) -> dict[str, bytes]:
    with Session(home.engine) as session:
        rows = session.exec(select(SiteDirectorFile).where(SiteDirectorFile.node_id == node_id))
        return {row.name: bytes(row.data) for row in rows}


def _targets(home: SpokeHome, node_id: str) -> Metadata[Targets]:
    with Session(home.engine) as session:
        repo = site_director.load_node(session, node_id)
    assert repo is not None
    return repo.targets


def _actions(home: SpokeHome, action: str) -> list[AuditRecord]:
    with Session(home.engine) as session:
        return list(session.exec(select(AuditRecord).where(AuditRecord.action == action)))


def _staged(home: SpokeHome, version: str) -> list[dict[str, object]]:
    with Session(home.engine) as session:
        staged = session.get(StagedModel, ("iris", version))
        assert staged is not None
        files: list[dict[str, object]] = json.loads(staged.files)
        return files


def test_publish_signs_every_staged_file_for_the_node(fleet_spoke: SpokeHome) -> None:
    _desire(fleet_spoke, **{"node-1": [NodeModel("iris", "2", rollout_id="r-1")]})

    assert _publish(fleet_spoke) == ["node-1"]

    assert sorted(_files(fleet_spoke, "node-1")) == [
        "1.snapshot.json",
        "1.targets.json",
        "timestamp.json",
    ]
    targets = _targets(fleet_spoke, "node-1")
    assert targets.signed.unrecognized_fields == {
        SITE_ID_FIELD: fleet_spoke.site_id,
        NODE_ID_FIELD: "node-1",
    }
    staged = _staged(fleet_spoke, "2")
    assert sorted(targets.signed.targets) == sorted(
        target_path("iris", "2", str(f["filename"])) for f in staged
    )
    for entry in staged:
        target = targets.signed.targets[target_path("iris", "2", str(entry["filename"]))]
        assert (target.length, target.hashes) == (entry["length"], {"sha256": entry["sha256"]})
        assert target.custom["airlock"] == {
            **NodeModel("iris", "2", rollout_id="r-1").to_dict(),
            "file": entry["filename"],
            "kind": entry["kind"],
            "site_id": fleet_spoke.site_id,
            "node_id": "node-1",
        }
    root_bytes = _site_root(fleet_spoke)
    root = Metadata[Root].from_bytes(root_bytes).signed
    root.verify_delegate(Targets.type, targets.signed_bytes, targets.signatures)
    with Session(fleet_spoke.engine) as session:
        desired = session.get(NodeDesired, "node-1")
        assert desired is not None and desired.targets_version == 1
    [audit] = _actions(fleet_spoke, "spoke.site_director.publish")
    assert json.loads(audit.details)["nodes"]["node-1"] == {
        "targets_version": 1,
        "models": ["iris@2"],
    }


def _site_root(home: SpokeHome, version: int | None = None) -> bytes:
    with Session(home.engine) as session:
        data = site_director.site_root(session, version)
    assert data is not None
    return data


def test_publish_is_idempotent_and_resigns_when_the_desired_models_change(
    fleet_spoke: SpokeHome,
) -> None:
    _desire(fleet_spoke, **{"node-1": [NodeModel("iris", "1")], "node-2": [NodeModel("iris", "1")]})
    assert _publish(fleet_spoke) == ["node-1", "node-2"]
    before = _files(fleet_spoke, "node-1")

    assert _publish(fleet_spoke) == []
    assert _files(fleet_spoke, "node-1") == before
    assert len(_actions(fleet_spoke, "spoke.site_director.publish")) == 1

    _desire(
        fleet_spoke,
        **{"node-1": [NodeModel("iris", "1"), NodeModel("iris", "3", role="candidate")]},
    )
    assert _publish(fleet_spoke) == ["node-1"]
    assert sorted(_files(fleet_spoke, "node-1")) == [
        "2.snapshot.json",
        "2.targets.json",
        "timestamp.json",
    ]
    roles = {
        t.custom["airlock"]["version"]: t.custom["airlock"]["role"]
        for t in _targets(fleet_spoke, "node-1").signed.targets.values()
    }
    assert roles == {"1": "stable", "3": "candidate"}
    assert _targets(fleet_spoke, "node-2").signed.version == 1
    assert len(_actions(fleet_spoke, "spoke.site_director.publish")) == 2


@pytest.mark.parametrize("problem", ["not-staged", "revoked", "altered-staged-file"])
def test_publish_refuses_what_the_hub_does_not_sign_and_writes_nothing(
    fleet_spoke: SpokeHome, problem: str
) -> None:
    bad = "9" if problem == "not-staged" else "3"
    with session_scope(fleet_spoke.engine) as session:
        if problem == "revoked":
            session.add(RevokedVersion(model="iris", version="3", reason="bad answers"))
        if problem == "altered-staged-file":
            staged = session.get(StagedModel, ("iris", "3"))
            assert staged is not None
            files = json.loads(staged.files)
            files[0]["sha256"] = "0" * 64
            staged.files = json.dumps(files)
            session.add(staged)
    _desire(fleet_spoke, **{"node-1": [NodeModel("iris", "1")], "node-2": [NodeModel("iris", bad)]})

    with Session(fleet_spoke.engine) as session:
        with pytest.raises(TrustError, match=f"iris@{bad}|iris/{bad}/"):
            site_director.publish_pending(fleet_spoke, session, site_signer(fleet_spoke), NOW)
        assert not session.new and not session.dirty and not session.deleted
        session.commit()

    with Session(fleet_spoke.engine) as session:
        assert session.exec(select(SiteDirectorFile)).all() == []
        assert {row.targets_version for row in session.exec(select(NodeDesired))} == {0}
    assert _actions(fleet_spoke, "spoke.site_director.publish") == []


def test_site_root_is_made_once_and_renewed_before_it_expires(fleet_spoke: SpokeHome) -> None:
    signer = site_signer(fleet_spoke)
    with session_scope(fleet_spoke.engine) as session:
        first = site_director.ensure_site_root(fleet_spoke, session, signer, NOW)
    with session_scope(fleet_spoke.engine) as session:
        assert site_director.ensure_site_root(fleet_spoke, session, signer, NOW) == first
    root = Metadata[Root].from_bytes(first)
    assert root.signed.version == 1 and root.signed.consistent_snapshot
    assert root.signed.unrecognized_fields[SITE_ID_FIELD] == fleet_spoke.site_id
    assert root.signed.expires == (NOW + dt.timedelta(days=365))
    assert {kid for role in root.signed.roles.values() for kid in role.keyids} == {
        signer.public_key.keyid
    }

    later = NOW + dt.timedelta(days=340)
    with session_scope(fleet_spoke.engine) as session:
        second = site_director.ensure_site_root(fleet_spoke, session, signer, later)
    renewed = Metadata[Root].from_bytes(second)
    assert renewed.signed.version == 2
    root.signed.verify_delegate(Root.type, renewed.signed_bytes, renewed.signatures)
    assert _site_root(fleet_spoke) == second and _site_root(fleet_spoke, 1) == first
    assert len(_actions(fleet_spoke, "spoke.site_director.root")) == 2


def test_refresh_expiring_resigns_before_expiry(fleet_spoke: SpokeHome) -> None:
    _desire(fleet_spoke, **{"node-1": [NodeModel("iris", "2")]})
    _publish(fleet_spoke)
    signer = site_signer(fleet_spoke)

    def refresh(at: dt.datetime) -> list[str]:
        with session_scope(fleet_spoke.engine) as session:
            return site_director.refresh_expiring(fleet_spoke, session, signer, at)

    def versions() -> tuple[int, int, int]:
        with Session(fleet_spoke.engine) as session:
            repo = site_director.load_node(session, "node-1")
        assert repo is not None
        return (
            repo.targets.signed.version,
            repo.snapshot.signed.version,
            repo.timestamp.signed.version,
        )

    assert refresh(NOW + dt.timedelta(hours=6)) == []
    assert versions() == (1, 1, 1)
    at = NOW + dt.timedelta(hours=13)
    assert refresh(at) == ["node-1"]
    assert versions() == (1, 1, 2)
    with Session(fleet_spoke.engine) as session:
        repo = site_director.load_node(session, "node-1")
        assert repo is not None
        assert repo.timestamp.signed.expires == at + dt.timedelta(days=1)
    later = NOW + dt.timedelta(days=4)
    assert refresh(later) == ["node-1"]
    assert versions() == (2, 2, 3)
    assert _targets(fleet_spoke, "node-1").signed.expires == later + dt.timedelta(days=7)
    with Session(fleet_spoke.engine) as session:
        desired = session.get(NodeDesired, "node-1")
        assert desired is not None and desired.targets_version == 2
    assert _publish(fleet_spoke, later) == []  # content unchanged: nothing to publish
    assert len(_actions(fleet_spoke, "spoke.site_director.refresh")) == 2


def test_forget_node_removes_only_that_node(fleet_spoke: SpokeHome) -> None:
    _desire(fleet_spoke, **{"node-1": [NodeModel("iris", "1")], "node-2": [NodeModel("iris", "1")]})
    _publish(fleet_spoke)

    with session_scope(fleet_spoke.engine) as session:
        site_director.forget_node(session, "node-1")

    with Session(fleet_spoke.engine) as session:
        assert site_director.node_metadata(session, "node-1", "timestamp.json") is None
        assert site_director.node_metadata(session, "node-2", "timestamp.json") is not None
        assert site_director.node_metadata(session, "node-2", "1.root.json") == _site_root(
            fleet_spoke
        )
        assert site_director.node_metadata(session, "node-2", "2.targets.json") is None
