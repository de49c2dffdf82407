"""The hub's return path at import: recorded when it verifies, the whole import refused when not.

Uses the fleet templates (iris@1..3 staged at plant-7). The hub's real
online Director keys sign ``x-airlock-return`` into the site's Director
targets (:func:`helpers.bundlecraft.resign_director`), as a hub that
witnessed (or claims to have witnessed) the site's audit log would; the
witness key is generated here. The site's checkpoints are real, signed with
its real site key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pyrage
import pytest
from helpers.bundlecraft import resign_director
from helpers.fleetenv import Fleet, site_signer
from helpers.spokeenv import SITE_ID, accept_import, refuse_import
from securesystemslib.signer import CryptoSigner, Signer
from sqlmodel import Session
from tuf.api.metadata import Targets

from airlock.bundles.audit import (
    AuditLog,
    Checkpoint,
    HubReturnRecord,
    cosign,
    sign_checkpoint,
    write_checkpoint,
)
from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import TrustError
from airlock.bundles.metrics import RETURN_FIELD, ReturnPath
from airlock.bundles.release import RolloutPlan
from airlock.hub import trust as return_keys
from airlock.hub.context import HubContext
from airlock.hub.export import assign, commit_export, export, plan_export
from airlock.hub.fleet import import_metrics
from airlock.spoke.metrics import export_metrics
from airlock.spoke.site import SpokeHome

ORIGIN = f"airlock/spoke/{SITE_ID}"
WITNESS = "airlock/hub/test-hub"
PLANS = (RolloutPlan(interval_seconds=120), RolloutPlan(interval_seconds=180))
"""Re-planning iris@3 gives each bundle new Director targets to carry the field in."""


@pytest.fixture
def hub(fleet_hub: HubContext) -> HubContext:
    """The hub that made the fleet spoke (this module's tests call it ``hub``)."""
    return fleet_hub


@pytest.fixture
def clock(fleet: Fleet) -> FixedClock:
    return FixedClock(fleet.hub_time + dt.timedelta(hours=1))


@pytest.fixture
def witness() -> Signer:
    return CryptoSigner.generate_ed25519()


@pytest.fixture
def recipient() -> str:
    return str(pyrage.x25519.Identity.generate().to_public())


def return_field(recipient: str, witness: Signer, note: str = "", sequence: int = 0) -> Any:
    key = witness.public_key.to_dict() | {"keyid": witness.public_key.keyid}
    return ReturnPath(recipient, WITNESS, key, sequence, note).to_dict()


def ship(hub: HubContext, out: Path, value: Any, plan: RolloutPlan = PLANS[0]) -> str:
    """A real export of plant-7 whose Director targets carry ``value`` (None: no field)."""

    def edit(targets: Targets) -> None:
        targets.unrecognized_fields.pop(RETURN_FIELD, None)
        if value is not None:
            targets.unrecognized_fields[RETURN_FIELD] = value

    assert assign(hub, SITE_ID, "iris", "3", plan)
    planned = plan_export(hub, SITE_ID)
    metadata = resign_director(hub, planned.metadata, edit)
    return commit_export(hub, dataclasses.replace(planned, metadata=metadata), out).bundle_id


def site_checkpoint(spoke: SpokeHome, clock: FixedClock) -> Checkpoint:
    """A real checkpoint of the site's log, signed with the site key."""
    return write_checkpoint(spoke.audit, site_signer(spoke), ORIGIN, clock.now())


def stored(spoke: SpokeHome) -> dict[str, Any] | None:
    with Session(spoke.engine) as session:
        row = session.get(HubReturnRecord, 1)
        return row.model_dump() if row else None


def test_an_acknowledged_checkpoint_of_this_site_is_recorded(
    hub: HubContext,
    fleet_spoke: SpokeHome,
    clock: FixedClock,
    witness: Signer,
    recipient: str,
    tmp_path: Path,
) -> None:
    checkpoint = site_checkpoint(fleet_spoke, clock)
    note = cosign(checkpoint.note, WITNESS, witness, clock.now())
    bundle_id = ship(hub, tmp_path / "ack", return_field(recipient, witness, note, 4))

    result = accept_import(fleet_spoke, tmp_path / "ack", clock)
    row = stored(fleet_spoke)
    assert row is not None
    assert (row["hub_recipient"], row["witness_name"], row["bundle_id"]) == (
        recipient,
        WITNESS,
        bundle_id,
    )
    assert row["witness_key"]["keyid"] == witness.public_key.keyid
    assert (row["acknowledged_sequence"], row["acknowledged_size"]) == (4, checkpoint.size)
    assert row["acknowledged_note"] == note
    summary = {
        "hub_recipient": recipient,
        "witness": WITNESS,
        "acknowledged_sequence": 4,
        "acknowledged_size": checkpoint.size,
        "changed": True,
    }
    assert result.hub_return == summary
    details = json.loads(AuditLog(fleet_spoke.engine, "spoke").entries()[-1].details)
    assert details["hub_return"] == summary

    ship(hub, tmp_path / "without", None, PLANS[1])  # no field: what is stored stays
    result = accept_import(fleet_spoke, tmp_path / "without", clock)
    assert result.hub_return is None and stored(fleet_spoke) == row


def test_the_hub_acknowledges_an_export_and_the_site_checks_it(
    hub: HubContext, fleet_spoke: SpokeHome, clock: FixedClock, tmp_path: Path
) -> None:
    """The whole loop with the real hub: recipient, import, witness, acknowledgement, proof."""
    export(hub, SITE_ID, tmp_path / "bundle-1")
    accept_import(fleet_spoke, tmp_path / "bundle-1", clock)
    row = stored(fleet_spoke)
    assert row is not None and row["hub_recipient"] == return_keys.hub_recipient(hub)
    assert (row["witness_name"], row["acknowledged_sequence"]) == (return_keys.witness(hub).name, 0)

    first = export_metrics(fleet_spoke, tmp_path / "metrics-1", clock.now())
    assert first.payload.consistency == ()
    assert import_metrics(hub, tmp_path / "metrics-1").checkpoint_size == first.checkpoint_size

    export(hub, SITE_ID, tmp_path / "bundle-2")  # carries the hub's cosigned acknowledgement
    later = FixedClock(clock.now() + dt.timedelta(minutes=5))
    result = accept_import(fleet_spoke, tmp_path / "bundle-2", later)
    assert result.hub_return is not None
    assert (result.hub_return["acknowledged_sequence"], result.hub_return["acknowledged_size"]) == (
        1,
        first.checkpoint_size,
    )
    second = export_metrics(fleet_spoke, tmp_path / "metrics-2", later.now())
    assert [p.old_size for p in second.payload.consistency] == [first.checkpoint_size]
    imported = import_metrics(hub, tmp_path / "metrics-2")
    assert (imported.sequence, imported.checkpoint_size) == (2, second.checkpoint_size)


def forged_notes(spoke: SpokeHome, clock: FixedClock, witness: Signer) -> dict[str, str]:
    """Checkpoint notes a hub must not get a site to accept, each cosigned."""
    real = site_checkpoint(spoke, clock)
    other_site = CryptoSigner.generate_ed25519()
    other_witness = CryptoSigner.generate_ed25519()
    wrong_root = hashlib.sha256(b"a log this site did not write").digest()
    signed = {
        "another-site": sign_checkpoint("airlock/spoke/plant-9", real.size, real.root, other_site),
        "not-a-prefix": sign_checkpoint(ORIGIN, real.size, wrong_root, site_signer(spoke)),
        "beyond-the-log": sign_checkpoint(ORIGIN, real.size + 50, real.root, site_signer(spoke)),
    }
    notes = {name: cosign(c.note, WITNESS, witness, clock.now()) for name, c in signed.items()}
    notes["bad-cosignature"] = cosign(real.note, WITNESS, other_witness, clock.now())
    cosigned = cosign(real.note, WITNESS, witness, clock.now())
    at = len(cosigned) - 10  # inside the signature bytes of the last (cosignature) line
    swapped = "B" if cosigned[at] == "A" else "A"
    notes["altered-cosignature"] = cosigned[:at] + swapped + cosigned[at + 1 :]
    return notes


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("bad-cosignature", "carries no cosignature of witness"),
        ("altered-cosignature", "cosignature of witness 'airlock/hub/test-hub' does not verify"),
        ("another-site", "is not signed by the expected key"),
        ("not-a-prefix", "is not that of this site's audit log"),
        ("beyond-the-log", "which this site's audit log"),
    ],
)
def test_an_acknowledgement_this_site_cannot_verify_refuses_the_import(
    hub: HubContext,
    fleet_spoke: SpokeHome,
    clock: FixedClock,
    witness: Signer,
    recipient: str,
    tmp_path: Path,
    case: str,
    message: str,
) -> None:
    note = forged_notes(fleet_spoke, clock, witness)[case]
    ship(hub, tmp_path / "bundle", return_field(recipient, witness, note, 2))
    before = stored(fleet_spoke)

    error = refuse_import(fleet_spoke, tmp_path / "bundle", TrustError, message, clock)
    assert "acknowledgement of metrics bundle 2" in error.message
    assert "did not write" in error.hint
    assert stored(fleet_spoke) == before


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("age1something", id="not-an-object"),
        pytest.param({"witness_name": WITNESS, "witness_key": {}}, id="no-recipient"),
        pytest.param("bad-recipient", id="bad-recipient"),
        pytest.param("rsa-witness", id="witness-key-not-ed25519"),
        pytest.param("half-acknowledgement", id="sequence-without-note"),
    ],
)
def test_a_malformed_return_field_refuses_the_import(
    hub: HubContext,
    fleet_spoke: SpokeHome,
    clock: FixedClock,
    witness: Signer,
    recipient: str,
    tmp_path: Path,
    value: Any,
) -> None:
    good = return_field(recipient, witness)
    if value == "bad-recipient":
        value = good | {"hub_recipient": "age1notarecipient"}
    elif value == "rsa-witness":
        value = good | {"witness_key": CryptoSigner.generate_ecdsa().public_key.to_dict()}
        value["witness_key"]["keyid"] = "k"
    elif value == "half-acknowledgement":
        value = good | {"acknowledged_sequence": 3}
    ship(hub, tmp_path / "bundle", value)
    before = stored(fleet_spoke)
    error = refuse_import(
        fleet_spoke, tmp_path / "bundle", TrustError, f"{RETURN_FIELD} field is malformed", clock
    )
    assert error.hint and stored(fleet_spoke) == before
