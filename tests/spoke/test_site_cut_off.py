"""A site cut off from the hub keeps serving its nodes on what it verified (issue 12, point 21).

The hub's Image timestamp and snapshot expire with the bundle (the 30-day
transit budget). Long after, a node that restarts and a node that enrols
late must still verify and install the assigned model, on the site
director's short-lived freshness statement; a statement that binds other
metadata, expired, signed by another key, for another site, or older than one
the node saw is refused, and so is everything once the hub's roots expire.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from helpers.cutoffenv import ROOT_DAYS, CutoffSite, build_cutoff_site
from helpers.fleetenv import site_signer
from helpers.gatemodels import make_iris
from helpers.mirrorfetch import node_verifier, trusted_image_root
from securesystemslib.signer import CryptoSigner, Signer
from sqlmodel import Session

from airlock.bundles.clock import FixedClock
from airlock.bundles.db import session_scope
from airlock.bundles.errors import FreshnessError, SignatureError, TrustError
from airlock.bundles.protocol import (
    FRESHNESS_FILE,
    ImageBinding,
    NodeModel,
    parse_statement,
    sign_statement,
)
from airlock.node import NodeVerifier
from airlock.spoke import director as image_freshness
from airlock.spoke import director as site_director
from airlock.spoke.site import NodeDesired, SiteDirectorFile, SpokeHome
from airlock.spoke.status import read_status

PAST = dt.timedelta(0)
"""The site's story starts now (the spoke's import runs ngclient at the system clock); the
node's and the spoke service's injected clocks then move up to a year ahead."""
IRIS = NodeModel("iris", "1")


@pytest.fixture(scope="module")
def cutoff(tmp_path_factory: pytest.TempPathFactory) -> CutoffSite:
    base = tmp_path_factory.mktemp("cutoff")
    return build_cutoff_site(base, make_iris(base / "iris-model"), PAST)


@pytest.fixture
def spoke(cutoff: CutoffSite, tmp_path: Path) -> SpokeHome:
    home = cutoff.new_spoke(tmp_path / "spoke")
    yield home
    home.engine.dispose()


def _service_tick(home: SpokeHome, now: dt.datetime, *nodes: str) -> None:
    """What the running spoke service does: assign, publish, renew (statement included)."""
    with session_scope(home.engine) as session:
        for node_id in nodes:
            row = session.get(NodeDesired, node_id) or NodeDesired(node_id=node_id)
            row.models = [IRIS.to_dict()]
            session.add(row)
        site_director.publish_pending(home, session, site_signer(home), now)
        site_director.refresh_expiring(home, session, site_signer(home), now)


def _enrol(home: SpokeHome, tmp_path: Path, node_id: str, now: dt.datetime) -> NodeVerifier:
    verifier = node_verifier(home, tmp_path / node_id, node_id, clock=FixedClock(now))
    with Session(home.engine) as session:
        site_root = site_director.site_root(session)
    assert site_root is not None
    verifier.trust(trusted_image_root(home), site_root)
    return verifier


def _install(verifier: NodeVerifier, slot: Path) -> None:
    [assignment] = verifier.refresh()
    assert assignment.node_model == IRIS
    primary = assignment.primary_file
    dest = verifier.download(primary, slot / primary.filename)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == primary.sha256


def _serve_statement(home: SpokeHome, data: bytes) -> None:
    with session_scope(home.engine) as session:
        row = session.get(SiteDirectorFile, ("", FRESHNESS_FILE))
        assert row is not None
        row.data = data
        session.add(row)


def _current(home: SpokeHome) -> bytes:
    with Session(home.engine) as session:
        data = image_freshness.stored_statement(session)
    assert data is not None
    return data


@pytest.mark.parametrize("days", [31, 90, 365])
def test_a_cut_off_site_serves_restarted_and_late_nodes(
    cutoff: CutoffSite, spoke: SpokeHome, tmp_path: Path, days: int
) -> None:
    start = cutoff.last_bundle + dt.timedelta(minutes=5)
    _service_tick(spoke, start, "node-1")
    _install(_enrol(spoke, tmp_path, "node-1", start), tmp_path / "slot-1a")

    later = cutoff.last_bundle + dt.timedelta(days=days)
    _service_tick(spoke, later, "node-2")
    restarted = node_verifier(spoke, tmp_path / "node-1", "node-1", clock=FixedClock(later))
    late = _enrol(spoke, tmp_path, "node-2", later)

    _install(restarted, tmp_path / "slot-1b")
    _install(late, tmp_path / "slot-2")
    statement = parse_statement(_current(spoke))
    assert statement.expires > later
    for node in ("node-1", "node-2"):  # each node relied on the site's statement
        assert (tmp_path / node / "image" / FRESHNESS_FILE).read_bytes() == _current(spoke)


def test_the_statement_is_required_once_the_hub_metadata_expired(
    cutoff: CutoffSite, spoke: SpokeHome, tmp_path: Path
) -> None:
    later = cutoff.last_bundle + dt.timedelta(days=45)
    _service_tick(spoke, later, "node-1")
    verifier = _enrol(spoke, tmp_path, "node-1", later)
    with session_scope(spoke.engine) as session:
        session.delete(session.get(SiteDirectorFile, ("", FRESHNESS_FILE)))

    with pytest.raises(FreshnessError, match=r"timestamp .*expired.*serves no site freshness") as e:
        verifier.refresh()
    assert "airlock spoke serve" in e.value.hint


def _signed_now(home: SpokeHome, signer: Signer, when: dt.datetime, **change: object) -> bytes:
    """A statement like the spoke's current one, re-signed with ``signer`` and changes."""
    current = parse_statement(_current(home))
    image = change.pop("image", current.image)
    version = change.pop("version", current.version + 1)
    site = change.pop("site_id", home.site_id)
    assert isinstance(image, ImageBinding) and isinstance(version, int)
    return sign_statement(signer, str(site), version, image, when)


def test_node_refuses_bad_site_statements(
    cutoff: CutoffSite, spoke: SpokeHome, tmp_path: Path
) -> None:
    later = cutoff.last_bundle + dt.timedelta(days=60)
    _service_tick(spoke, later, "node-1")
    verifier = _enrol(spoke, tmp_path, "node-1", later)
    good = _current(spoke)
    image = parse_statement(good).image
    other_snapshot = ImageBinding(image.timestamp, (image.snapshot[0], "0" * 64), image.roles)
    older_snapshot = ImageBinding(image.timestamp, (image.snapshot[0] - 1, image.snapshot[1]), {})
    key = site_signer(spoke)
    cases = [
        (_signed_now(spoke, key, later, image=other_snapshot), SignatureError, "other Image"),
        (_signed_now(spoke, key, later, image=older_snapshot), SignatureError, "other Image"),
        (_signed_now(spoke, key, later - dt.timedelta(days=2)), FreshnessError, "expired"),
        (_signed_now(spoke, CryptoSigner.generate_ed25519(), later), SignatureError, "site's key"),
        (_signed_now(spoke, key, later, site_id="plant-9"), TrustError, "plant-9"),
    ]
    for data, error, message in cases:
        _serve_statement(spoke, data)
        with pytest.raises(error, match=message):
            verifier.refresh()
        assert not (tmp_path / "node-1" / "image" / FRESHNESS_FILE).exists()

    _serve_statement(spoke, _signed_now(spoke, key, later, version=7))
    assert len(verifier.refresh()) == 1
    _serve_statement(spoke, _signed_now(spoke, key, later, version=6))  # rolled back
    with pytest.raises(FreshnessError, match="roll back from version 7 to 6"):
        verifier.refresh()


def test_expired_hub_roots_stop_new_installs_with_a_clear_error(
    cutoff: CutoffSite, spoke: SpokeHome, tmp_path: Path
) -> None:
    later = cutoff.last_bundle + dt.timedelta(days=ROOT_DAYS + 1)
    _service_tick(spoke, later, "node-1")
    verifier = _enrol(spoke, tmp_path, "node-1", later)

    with pytest.raises(FreshnessError, match=r"Image root .*expired.*roots expired") as e:
        verifier.refresh()
    assert "keeps running what it has installed" in e.value.hint
    assert "security officers must re-sign" in e.value.hint
    assert verifier.last_verified is None


@pytest.mark.parametrize(
    ("days", "warned"), [(1, None), (31, "past the transit budget"), (92, "STRONG")]
)
def test_spoke_status_shows_how_long_the_site_is_cut_off(
    cutoff: CutoffSite, spoke: SpokeHome, days: int, warned: str | None
) -> None:
    report = read_status(spoke, cutoff.last_bundle + dt.timedelta(days=days)).to_dict()["cut_off"]

    assert report["days_since_last_bundle"] in (days - 1, days)  # floor: bundle or import time
    assert report["transit_budget_ends"] is not None
    if warned is None:
        assert report["warnings"] == []
    else:
        [warning] = report["warnings"]
        assert warned in warning
