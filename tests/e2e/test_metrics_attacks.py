"""Attacks on the return path: bad metrics bundles and rewritten site logs, refused at the hub.

Real site key, real spoke audit log and checkpoints, real age, real hub; the
attacker edits the medium's files or the spoke's database. Every refusal
stores nothing (the hub_metrics_* tables keep their row counts) and leaves
the import's own ``refused`` audit entry; some cases also run the real
``airlock hub import-metrics`` in a process of its own.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pyrage
import pytest
from helpers.identities import SiteKeys, make_site
from helpers.metricsenv import MetricsSite, assert_refused, row_counts, run_hub_airlock
from helpers.spokeenv import OTHER_SITE_ID, SITE_ID, World, assert_error_output
from sqlmodel import Session, select

from airlock.bundles.audit import read_checkpoint
from airlock.bundles.bundle import ENVELOPE_FILE, sign_envelope
from airlock.bundles.errors import (
    AirlockError,
    DecryptionError,
    IntegrityError,
    LogConsistencyError,
    SignatureError,
    UnsafeArchiveError,
    VerificationError,
    WrongSiteError,
)
from airlock.bundles.events import EVENT_TYPES, OutboxEvent
from airlock.bundles.metrics import PAYLOAD_FILE
from airlock.bundles.models import Envelope
from airlock.hub.context import HubContext
from airlock.hub.fleet import import_metrics


def refused(
    hub: HubContext, bundle: Path, error: type[AirlockError], match: str
) -> dict[str, object]:
    """Imports ``bundle`` expecting ``error``; checks nothing was stored; the audit details."""
    before = row_counts(hub)
    with pytest.raises(error, match=match) as caught:
        import_metrics(hub, bundle)
    assert type(caught.value) is error
    details = assert_refused(hub, before)
    assert details["error"] == error.__name__
    return details


def edit_envelope(bundle: Path, **changes: object) -> None:
    """The attacker rewrites fields of the signed envelope (keeping the old signatures)."""
    doc = json.loads((bundle / ENVELOPE_FILE).read_text())
    doc["signed"].update(changes)
    (bundle / ENVELOPE_FILE).write_text(json.dumps(doc))


def inconsistent_events(hub: HubContext) -> list[dict[str, object]]:
    with Session(hub.engine) as session:
        query = select(OutboxEvent).where(OutboxEvent.type == EVENT_TYPES["audit.log-inconsistent"])
        return [row.body for row in session.exec(query)]


# --- the medium ------------------------------------------------------------------------------


def test_a_tampered_payload_is_refused(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    bundle = metrics_site.bundle(tmp_path / "m1")
    data = bytearray((bundle / PAYLOAD_FILE).read_bytes())
    data[-20] ^= 0x01
    (bundle / PAYLOAD_FILE).write_bytes(bytes(data))
    refused(fleet_hub, bundle, IntegrityError, "does not match the SHA-256")


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_payload_that_is_not_a_regular_file_is_refused_without_reading_it(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path, kind: str
) -> None:
    """A link to the genuine payload, or a FIFO that would block, is refused by its type."""
    bundle = metrics_site.bundle(tmp_path / "m1")
    genuine = tmp_path / "genuine.age"
    (bundle / PAYLOAD_FILE).rename(genuine)
    if kind == "symlink":
        (bundle / PAYLOAD_FILE).symlink_to(genuine)
    else:
        os.mkfifo(bundle / PAYLOAD_FILE)
    refused(fleet_hub, bundle, UnsafeArchiveError, "not a regular file")


def test_a_tampered_envelope_is_refused(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    bundle = metrics_site.bundle(tmp_path / "m1")
    edit_envelope(bundle, sequence=7)
    refused(fleet_hub, bundle, SignatureError, "envelope is not signed by a trusted key")


def test_an_envelope_relabelled_to_another_registered_site_is_refused(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    bundle = metrics_site.bundle(tmp_path / "m1")
    edit_envelope(bundle, site_id=OTHER_SITE_ID, source=f"site:{OTHER_SITE_ID}")
    refused(fleet_hub, bundle, SignatureError, "envelope is not signed by a trusted key")


def test_another_site_cannot_send_this_sites_checkpoint(
    fleet_hub: HubContext, metrics_site: MetricsSite, world: World, tmp_path: Path
) -> None:
    """plant-9, with its own real key, wraps plant-7's checkpoint in its own bundle."""
    payload = metrics_site.payload(site_id=OTHER_SITE_ID)
    bundle = metrics_site.write(tmp_path / "m1", payload, signer=world.other_site.signer)
    details = refused(fleet_hub, bundle, WrongSiteError, "is of 'airlock/spoke/plant-7'")
    assert "not of 'airlock/spoke/plant-9'" in str(details["message"])


def test_a_site_the_hub_does_not_know_is_refused(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    stranger: SiteKeys = make_site("plant-99")
    payload = metrics_site.payload(site_id="plant-99")
    bundle = metrics_site.write(tmp_path / "m1", payload, signer=stranger.signer)
    details = refused(fleet_hub, bundle, WrongSiteError, "not a site of this hub")
    assert "airlock hub site add" in str(details["hint"])


def test_a_bundle_encrypted_to_another_hub_is_refused(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    other_hub = str(pyrage.x25519.Identity.generate().to_public())
    bundle = metrics_site.write(tmp_path / "m1", metrics_site.payload(), recipient=other_hub)
    refused(fleet_hub, bundle, DecryptionError, "does not decrypt with the hub's identity")


def test_an_extra_file_in_the_bundle_is_refused(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    bundle = metrics_site.bundle(tmp_path / "m1")
    (bundle / "notes.txt").write_text("node-a7 10.0.0.7")
    refused(fleet_hub, bundle, UnsafeArchiveError, "unexpected: notes.txt")


def test_a_payload_for_another_envelope_is_refused(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    """A correctly signed envelope over a payload naming another sequence (mixed exports)."""
    payload = metrics_site.payload()
    bundle = metrics_site.write(tmp_path / "m1", payload)
    doc = json.loads((bundle / ENVELOPE_FILE).read_text())
    envelope = Envelope.from_dict(doc["signed"])
    relabelled = Envelope.from_dict({**envelope.to_dict(), "sequence": payload.sequence + 1})
    signer = metrics_site.spoke.keystore().signer(metrics_site.spoke.signing_key())
    (bundle / ENVELOPE_FILE).write_bytes(sign_envelope(relabelled, [signer]))
    refused(fleet_hub, bundle, IntegrityError, "names another site, sequence or window")


@pytest.mark.parametrize("k", [5, 1], ids=["a cell below k", "k below 2"])
def test_figures_that_break_k_anonymity_are_never_stored(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path, k: int
) -> None:
    """A faulty (or dishonest) site sends a cell of 3 nodes: the hub will not hold it."""
    payload = metrics_site.payload(k=k)
    small = replace(payload.cells[0], nodes=3 if k == 5 else payload.cells[0].nodes)
    bundle = metrics_site.write(tmp_path / "m1", replace(payload, cells=(small,)))
    refused(fleet_hub, bundle, VerificationError, "breaks k-anonymity")


# --- the site's audit log --------------------------------------------------------------------


def test_a_log_rewritten_after_the_witnessed_checkpoint_is_detected(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    first = import_metrics(fleet_hub, metrics_site.bundle(tmp_path / "m1"))
    witnessed = first.checkpoint_size
    metrics_site.rewrite_log(keep=witnessed - 2)  # two witnessed entries deleted ...
    bundle = metrics_site.bundle(tmp_path / "m2")  # ... new ones, a new site-signed checkpoint
    payload_size = metrics_site.sizes[-1]
    assert payload_size > witnessed  # longer than what the hub saw, but not an extension

    details = refused(fleet_hub, bundle, LogConsistencyError, "audit log was rewritten after")
    message = str(details["message"])
    assert f"checkpoint {witnessed} (root {first.checkpoint_root[:16]}" in message
    assert f"checkpoint {payload_size} (root" in message
    assert "keep this bundle" in str(details["hint"])
    (event,) = inconsistent_events(fleet_hub)
    data = event["data"]
    assert isinstance(data, dict)
    assert event["subject"] == SITE_ID and data["site"] == SITE_ID and data["sequence"] == 2
    assert data["witnessed"] == {"sequence": 1, "size": witnessed, "root": first.checkpoint_root}
    assert data["received"]["size"] == payload_size


def test_a_truncated_log_is_detected(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    first = import_metrics(fleet_hub, metrics_site.bundle(tmp_path / "m1"))
    metrics_site.rewrite_log(keep=first.checkpoint_size - 8)
    bundle = metrics_site.bundle(tmp_path / "m2")
    assert metrics_site.sizes[-1] < first.checkpoint_size
    refused(fleet_hub, bundle, LogConsistencyError, "audit log was truncated")
    assert len(inconsistent_events(fleet_hub)) == 1


def test_a_bundle_without_a_proof_from_the_witnessed_checkpoint_is_refused(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    first = import_metrics(fleet_hub, metrics_site.bundle(tmp_path / "m1"))
    payload = metrics_site.payload()
    new_size = read_checkpoint(payload.checkpoint).size
    elsewhere = metrics_site.proofs(new_size, olds=[first.checkpoint_size + 1])
    assert elsewhere  # a valid proof, but not from the checkpoint the hub acknowledged
    for number, proofs in enumerate(((), elsewhere)):
        bundle = metrics_site.write(tmp_path / f"m2-{number}", replace(payload, consistency=proofs))
        refused(
            fleet_hub,
            bundle,
            LogConsistencyError,
            rf"no proof from the checkpoint this hub acknowledged \(size {first.checkpoint_size}\)",
        )


# --- through the real command line -----------------------------------------------------------


def test_the_cli_imports_and_reports_a_gap(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    home = str(fleet_hub.home.root)
    first = run_hub_airlock("hub", "import-metrics", "--home", home, "--json",
                            str(metrics_site.bundle(tmp_path / "m1")))  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["checkpoint"]["consistency"] == "first"
    metrics_site.bundle(tmp_path / "m2")  # lost
    human = run_hub_airlock(
        "hub", "import-metrics", "--home", home, str(metrics_site.bundle(tmp_path / "m3"))
    )
    assert human.returncode == 0, human.stderr
    out = " ".join(human.stdout.split())
    assert "imported metrics bundle 3 of plant-7" in out
    assert "warning: metrics bundle(s) 2 of plant-7 never arrived" in out
    assert "consistent with the checkpoint witnessed before (proof from" in out
    assert "iris@3" in out


def test_the_cli_refuses_a_replay_and_a_tampered_bundle(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    home = str(fleet_hub.home.root)
    bundle = metrics_site.bundle(tmp_path / "m1")
    assert run_hub_airlock("hub", "import-metrics", "--home", home, str(bundle)).returncode == 0
    before = row_counts(fleet_hub)
    replay = run_hub_airlock("hub", "import-metrics", "--home", home, str(bundle))
    assert replay.returncode == 14
    assert_error_output(replay.stderr, "metrics bundle 1 of site plant-7 was already imported")
    assert replay.stdout == "" and "Traceback" not in replay.stderr
    assert_refused(fleet_hub, before)

    tampered = metrics_site.bundle(tmp_path / "m2")
    data = bytearray((tampered / PAYLOAD_FILE).read_bytes())
    data[100] ^= 0xFF
    (tampered / PAYLOAD_FILE).write_bytes(bytes(data))
    proc = run_hub_airlock("hub", "import-metrics", "--home", home, "--json", str(tampered))
    assert proc.returncode == 12
    assert_error_output(proc.stderr, "payload.age does not match the SHA-256")
    assert_refused(fleet_hub, before)


def test_the_cli_reports_a_rewritten_site_log(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    home = str(fleet_hub.home.root)
    first = run_hub_airlock(
        "hub", "import-metrics", "--home", home, str(metrics_site.bundle(tmp_path / "m1"))
    )
    assert first.returncode == 0, first.stderr
    size = metrics_site.sizes[-1]
    metrics_site.rewrite_log(keep=size - 1)
    bundle = metrics_site.bundle(tmp_path / "m2")
    before = row_counts(fleet_hub)
    proc = run_hub_airlock("hub", "import-metrics", "--home", home, str(bundle))
    assert proc.returncode == 22
    assert_error_output(
        proc.stderr, f"site plant-7's audit log was rewritten after checkpoint {size}"
    )
    assert "investigate the site" in proc.stderr and proc.stdout == ""
    assert_refused(fleet_hub, before)
    assert len(inconsistent_events(fleet_hub)) == 1
