"""A node verifies its assignment end to end: hub-signed files only, its own, fresh, no rollback."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from helpers.fleetenv import Fleet, site_signer
from helpers.mirrorfetch import node_verifier, trusted_image_root
from helpers.spokeenv import SITE_ID, accept_import
from sqlmodel import Session
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp

from airlock.bundles import tuf as tufrepo
from airlock.bundles.clock import FixedClock
from airlock.bundles.db import session_scope
from airlock.bundles.errors import (
    ConflictError,
    FreshnessError,
    IntegrityError,
    TrustError,
    UsageError,
    WrongSiteError,
)
from airlock.bundles.protocol import NodeModel
from airlock.hub.export import export
from airlock.hub.revocation import revoke
from airlock.node import NodeVerifier, VerifiedFile
from airlock.spoke import director as site_director
from airlock.spoke.director import NodeRepository, meta_file, sign_node
from airlock.spoke.site import NodeDesired, SiteDirectorFile, SpokeHome, StagedModel


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _assign(
    home: SpokeHome, node_id: str, *models: NodeModel, now: dt.datetime | None = None
) -> None:
    with session_scope(home.engine) as session:
        row = session.get(NodeDesired, node_id) or NodeDesired(node_id=node_id)
        row.models = [m.to_dict() for m in models]
        session.add(row)
        site_director.publish_pending(home, session, site_signer(home), now or _now())


def _enrol(home: SpokeHome, tmp_path: Path, node_id: str, **kwargs: str) -> NodeVerifier:
    verifier = node_verifier(home, tmp_path / node_id, node_id, **kwargs)
    with Session(home.engine) as session:
        site_root = site_director.site_root(session)
    assert site_root is not None
    verifier.trust(trusted_image_root(home), site_root)
    return verifier


def _node_repo(home: SpokeHome, node_id: str) -> NodeRepository:
    with Session(home.engine) as session:
        repo = site_director.load_node(session, node_id)
    assert repo is not None
    return repo


def _serve(home: SpokeHome, node_id: str, files: dict[str, bytes]) -> None:
    """Replaces what the spoke serves for ``node_id`` (the attacker controls the spoke)."""
    with session_scope(home.engine) as session:
        site_director.forget_node(session, node_id)
        session.flush()
        for name, data in files.items():
            session.add(SiteDirectorFile(node_id=node_id, name=name, data=data))


def _forge(home: SpokeHome, node_id: str, target: TargetFile) -> None:
    """Signs, with the real site key, targets that add ``target`` to the node's assignment."""
    current = _node_repo(home, node_id)
    targets = Metadata[Targets].from_bytes(tufrepo.to_bytes(current.targets))
    targets.signed.targets[target.path] = target
    targets.signed.version += 1
    _serve(home, node_id, sign_node(site_signer(home), targets, current, _now()).files())


def test_node_verifies_and_downloads_its_assignment(fleet_spoke: SpokeHome, tmp_path: Path) -> None:
    wanted = NodeModel("iris", "2", role="candidate", traffic="split", split_percent=10)
    _assign(fleet_spoke, "node-1", wanted)
    verifier = _enrol(fleet_spoke, tmp_path, "node-1")

    [assignment] = verifier.refresh()

    assert assignment.node_model == wanted
    with Session(fleet_spoke.engine) as session:
        staged = session.get(StagedModel, ("iris", "2"))
        assert staged is not None
        files = json.loads(staged.files)
    assert sorted((f.filename, f.sha256, f.length, f.kind) for f in assignment.files) == sorted(
        (f["filename"], f["sha256"], f["length"], f["kind"]) for f in files
    )
    assert assignment.release.validation is not None
    primary = assignment.primary_file
    dest = verifier.download(primary, tmp_path / "slot-B" / primary.filename)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == primary.sha256
    assert sorted(p.name for p in dest.parent.iterdir()) == [primary.filename]
    assert verifier.last_verified is not None


def test_node_refuses_a_file_the_hub_never_signed(fleet_spoke: SpokeHome, tmp_path: Path) -> None:
    _assign(fleet_spoke, "node-1", NodeModel("iris", "1"))
    verifier = _enrol(fleet_spoke, tmp_path, "node-1")
    assert len(verifier.refresh()) == 1
    evil = b"a model the hub never released"
    custom = {
        **NodeModel("iris", "9").to_dict(),
        "file": "model.onnx",
        "kind": "model",
        "site_id": fleet_spoke.site_id,
        "node_id": "node-1",
    }
    _forge(
        fleet_spoke,
        "node-1",
        TargetFile(
            length=len(evil),
            hashes={"sha256": hashlib.sha256(evil).hexdigest()},
            path="iris/9/model.onnx",
            unrecognized_fields={"custom": {"airlock": custom}},
        ),
    )

    with pytest.raises(TrustError, match=r"iris/9/model\.onnx"):
        verifier.refresh()
    stale = VerifiedFile("iris/1/model.onnx", "model.onnx", "0" * 64, 1, "model", True)
    with pytest.raises(UsageError, match="not verified"):
        verifier.download(stale, tmp_path / "model.onnx")


def test_node_refuses_a_hub_file_with_other_hashes(fleet_spoke: SpokeHome, tmp_path: Path) -> None:
    _assign(fleet_spoke, "node-1", NodeModel("iris", "1"))
    verifier = _enrol(fleet_spoke, tmp_path, "node-1")
    current = _node_repo(fleet_spoke, "node-1")
    path, real = next(
        (p, t) for p, t in current.targets.signed.targets.items() if p.endswith(".onnx")
    )
    swapped = TargetFile(
        length=real.length,
        hashes={"sha256": "1" * 64},
        path=path,
        unrecognized_fields=dict(real.unrecognized_fields),
    )
    _forge(fleet_spoke, "node-1", swapped)

    with pytest.raises(IntegrityError, match="disagree"):
        verifier.refresh()


def test_a_node_cannot_use_another_nodes_or_sites_metadata(
    fleet_spoke: SpokeHome, tmp_path: Path
) -> None:
    _assign(fleet_spoke, "node-b", NodeModel("iris", "3"))
    thief = _enrol(fleet_spoke, tmp_path, "node-a", served_node="node-b")
    with pytest.raises(WrongSiteError, match="node-b"):
        thief.refresh()

    other_site = node_verifier(fleet_spoke, tmp_path / "other", "node-b", site_id="plant-9")
    with Session(fleet_spoke.engine) as session:
        site_root = site_director.site_root(session)
    assert site_root is not None
    with pytest.raises(WrongSiteError):
        other_site.trust(trusted_image_root(fleet_spoke), site_root)
    with pytest.raises(ConflictError):
        thief.trust(trusted_image_root(fleet_spoke), site_root)


def test_node_refuses_rolled_back_site_metadata(fleet_spoke: SpokeHome, tmp_path: Path) -> None:
    _assign(fleet_spoke, "node-1", NodeModel("iris", "1"))
    verifier = _enrol(fleet_spoke, tmp_path, "node-1")
    verifier.refresh()
    old = _node_repo(fleet_spoke, "node-1")
    _assign(fleet_spoke, "node-1", NodeModel("iris", "2"))
    assert verifier.refresh()[0].node_model.version == "2"
    new = _node_repo(fleet_spoke, "node-1")

    _serve(fleet_spoke, "node-1", old.files())  # replay of the old files
    with pytest.raises(FreshnessError, match="older version"):
        verifier.refresh()

    # newer snapshot and timestamp, signed with the real key, pointing at the older targets
    signer = site_signer(fleet_spoke)
    expires = _now() + dt.timedelta(days=1)
    snapshot = Metadata(
        Snapshot(
            version=new.snapshot.signed.version + 1,
            expires=expires,
            meta={"targets.json": meta_file(old.targets)},
        )
    )
    tufrepo.sign_with(snapshot, [signer])
    timestamp = Metadata(
        Timestamp(
            version=new.timestamp.signed.version + 1,
            expires=expires,
            snapshot_meta=MetaFile(version=snapshot.signed.version),
        )
    )
    tufrepo.sign_with(timestamp, [signer])
    _serve(fleet_spoke, "node-1", NodeRepository(old.targets, snapshot, timestamp).files())
    with pytest.raises(FreshnessError, match="older version"):
        verifier.refresh()


def test_node_refuses_an_expired_site_timestamp(fleet_spoke: SpokeHome, tmp_path: Path) -> None:
    _assign(fleet_spoke, "node-1", NodeModel("iris", "1"), now=_now() - dt.timedelta(days=2))
    verifier = _enrol(fleet_spoke, tmp_path, "node-1")

    with pytest.raises(FreshnessError, match="expired site-director metadata"):
        verifier.refresh()
    assert verifier.last_verified is None

    with session_scope(fleet_spoke.engine) as session:
        renewed = site_director.refresh_expiring(
            fleet_spoke, session, site_signer(fleet_spoke), _now()
        )
    assert renewed == ["node-1"]
    assert verifier.refresh()[0].node_model == NodeModel("iris", "1")


def test_node_follows_a_renewed_site_root(fleet_spoke: SpokeHome, tmp_path: Path) -> None:
    with session_scope(fleet_spoke.engine) as session:
        site_director.ensure_site_root(
            fleet_spoke, session, site_signer(fleet_spoke), _now() - dt.timedelta(days=340)
        )
    verifier = _enrol(fleet_spoke, tmp_path, "node-1")
    _assign(fleet_spoke, "node-1", NodeModel("iris", "1"))  # renews the root first

    assert len(verifier.refresh()) == 1
    trusted = Metadata[Root].from_bytes((tmp_path / "node-1/site/root.json").read_bytes())
    assert trusted.signed.version == 2


def test_node_refuses_a_revoked_version_even_under_an_old_assignment(
    fleet: Fleet, tmp_path: Path
) -> None:
    """The spoke keeps serving node targets signed before the revocation: the node refuses."""
    spoke = fleet.new_spoke(tmp_path / "spoke")
    _assign(spoke, "node-1", NodeModel("iris", "3"))
    verifier = _enrol(spoke, tmp_path, "node-1")
    assert [a.node_model.version for a in verifier.refresh()] == ["3"]
    clock = FixedClock(fleet.hub_time)
    hub = fleet.new_hub(tmp_path / "hub", clock)
    try:
        revoke(hub, "iris", "3", "wrong answers at night")
        clock.advance(dt.timedelta(seconds=30))
        export(hub, SITE_ID, tmp_path / "revocation")
    finally:
        hub.close()
    accept_import(spoke, tmp_path / "revocation", FixedClock(clock.now()))

    with pytest.raises(
        TrustError, match=r"iris/3/iris\.onnx, which the Image repository does not sign"
    ):
        verifier.refresh()
    spoke.engine.dispose()
