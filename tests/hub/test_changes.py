"""Change requests at the hub: lifecycle, signed approvals, refusals, emergency changes, events."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from helpers.identities import SiteKeys
from securesystemslib.signer import CryptoSigner
from sqlmodel import Session, col, select

from airlock.bundles.audit import AuditLog, AuditRecord
from airlock.bundles.cli import main
from airlock.bundles.clock import FixedClock, parse_utc, utc_iso
from airlock.bundles.errors import (
    ConflictError,
    NotFoundError,
    SecretError,
    SignatureError,
    UsageError,
)
from airlock.bundles.events import EVENT_TYPES, OutboxEvent
from airlock.bundles.keys import write_encrypted_key
from airlock.bundles.release import ChangeAuthorization
from airlock.hub.changes import (
    ChangeRequest,
    add_change_approver,
    approve_change,
    create_change,
    get_change,
    list_change_approvers,
    list_change_requests,
    move_change,
    reject_change,
)
from airlock.hub.context import HubContext
from airlock.hub.export import assign, export
from airlock.hub.intake import add_model
from airlock.hub.revocation import revoke
from airlock.hub.sites import add_site

PASSPHRASE = "approver test passphrase"


@pytest.fixture(scope="module")
def alice() -> CryptoSigner:
    return CryptoSigner.generate_ed25519()


@pytest.fixture(scope="module")
def bob() -> CryptoSigner:
    return CryptoSigner.generate_ed25519()


def window(clock: FixedClock, hours: int = 24) -> tuple[str, str]:
    return utc_iso(clock.now() - dt.timedelta(hours=1)), utc_iso(
        clock.now() + dt.timedelta(hours=hours)
    )


def new_change(hub: HubContext, clock: FixedClock, **fields: object) -> ChangeRequest:
    start, end = window(clock)
    args: dict[str, object] = {
        "short_description": "Roll out detector@2 to plant-7",
        "requested_by": "carol",
        "planned_start": start,
        "planned_end": end,
        "covers": ["plant-7:detector@2"],
    }
    return create_change(hub, **(args | fields))  # type: ignore[arg-type]


def events_of(hub: HubContext) -> list[dict[str, object]]:
    with Session(hub.engine) as session:
        rows = session.exec(select(OutboxEvent).order_by(col(OutboxEvent.seq)))
        return [dict(r.body) for r in rows]


def last_entry(hub: HubContext) -> AuditRecord:
    return AuditLog(hub.engine, "hub").entries()[-1]


def assert_cloudevent(event: dict[str, object], name: str, subject: str) -> None:
    assert event["specversion"] == "1.0"
    assert event["type"] == EVENT_TYPES[name]
    assert str(event["source"]).startswith("/airlock/hub/")
    assert event["subject"] == subject
    assert event["id"] and isinstance(event["id"], str)
    parse_utc(str(event["time"]))


@pytest.fixture
def desk(hub: HubContext, alice: CryptoSigner, bob: CryptoSigner) -> HubContext:
    add_change_approver(hub, "alice", alice.public_key)
    add_change_approver(hub, "bob", bob.public_key)
    return hub


def test_a_change_goes_from_new_to_closed_with_a_signed_approval(
    desk: HubContext, clock: FixedClock, alice: CryptoSigner
) -> None:
    created = new_change(desk, clock, approvers=["alice"])
    assert (created.number, created.state, created.approval) == (
        "ACHG0000001",
        "new",
        "not requested",
    )
    assert last_entry(desk).change_request == "ACHG0000001"

    assert move_change(desk, "ACHG0000001", "authorize").approval == "requested"
    approved = approve_change(desk, "ACHG0000001", "alice", alice)
    assert (approved.state, approved.approval, approved.approved_by) == (
        "scheduled",
        "approved",
        "alice",
    )
    assert approved.approval_source == "approver"
    approved.authorization().verify_approval(alice.public_key)
    entry = last_entry(desk)
    assert (entry.action, entry.outcome, entry.change_request) == (
        "hub.change.approve",
        "success",
        "ACHG0000001",
    )
    for state in ("implement", "review", "closed"):
        assert move_change(desk, "ACHG0000001", state).state == state

    names = ["change.created", "change.state", "change.approved"] + ["change.state"] * 3
    emitted = events_of(desk)
    assert [e["type"] for e in emitted] == [EVENT_TYPES[n] for n in names]
    for event, name in zip(emitted, names, strict=True):
        assert_cloudevent(event, name, "ACHG0000001")
    assert len({e["id"] for e in emitted}) == len(emitted)
    assert emitted[-1]["data"]["state"] == "closed"  # type: ignore[index]
    assert list_change_requests(desk)[0].state == "closed"


@pytest.mark.parametrize(
    ("steps", "to", "match"),
    [
        ((), "scheduled", "not approved"),
        (("authorize",), "implement", "not approved"),
        (("authorize", "approve", "implement"), "scheduled", "only move forward"),
        (("authorize", "approve", "implement"), "new", "only move forward"),
        (("canceled",), "new", "canceled; it cannot move"),
        ((), "done", "unknown change state"),
    ],
)
def test_illegal_moves_are_refused_audited_and_change_nothing(
    desk: HubContext,
    clock: FixedClock,
    alice: CryptoSigner,
    steps: tuple[str, ...],
    to: str,
    match: str,
) -> None:
    number = new_change(desk, clock).number
    for step in steps:
        if step == "approve":
            approve_change(desk, number, "alice", alice)
        else:
            move_change(desk, number, step)
    before, events_before = get_change(desk, number), len(events_of(desk))
    with pytest.raises(UsageError, match=match):
        move_change(desk, number, to)
    assert get_change(desk, number) == before
    assert len(events_of(desk)) == events_before
    entry = last_entry(desk)
    assert (entry.action, entry.outcome, entry.change_request) == (
        "hub.change.move",
        "refused",
        number,
    )


def test_any_open_change_can_be_canceled(desk: HubContext, clock: FixedClock) -> None:
    number = new_change(desk, clock).number
    move_change(desk, number, "assess")
    assert move_change(desk, number, "canceled").state == "canceled"


def test_the_requester_may_not_approve_their_own_change(
    desk: HubContext, clock: FixedClock, alice: CryptoSigner
) -> None:
    number = new_change(desk, clock, requested_by="Alice").number
    move_change(desk, number, "authorize")
    before = get_change(desk, number)
    with pytest.raises(UsageError, match=r"requested change .* may not approve it"):
        approve_change(desk, number, "alice", alice)
    with pytest.raises(UsageError, match="may not reject it"):
        reject_change(desk, number, "alice", "no")
    assert get_change(desk, number) == before
    entry = last_entry(desk)
    assert (entry.outcome, entry.change_request) == ("refused", number)


def test_an_approval_signed_with_another_key_is_refused(
    desk: HubContext, clock: FixedClock, bob: CryptoSigner
) -> None:
    number = new_change(desk, clock).number
    move_change(desk, number, "authorize")
    with pytest.raises(SignatureError, match="not signed with alice's registered key"):
        approve_change(desk, number, "alice", bob)
    assert get_change(desk, number).approval == "requested"
    assert (last_entry(desk).outcome, last_entry(desk).change_request) == ("refused", number)


def test_unregistered_and_unlisted_approvers_are_refused(
    desk: HubContext, clock: FixedClock, alice: CryptoSigner, bob: CryptoSigner
) -> None:
    number = new_change(desk, clock, approvers=["alice"]).number
    move_change(desk, number, "authorize")
    with pytest.raises(NotFoundError, match="'mallory' is not a registered change approver"):
        approve_change(desk, number, "mallory", alice)
    with pytest.raises(UsageError, match="bob is not an approver of change"):
        approve_change(desk, number, "bob", bob)
    assert get_change(desk, number).approval == "requested"


def test_a_tampered_authorisation_fails_verification(
    desk: HubContext, clock: FixedClock, alice: CryptoSigner, bob: CryptoSigner
) -> None:
    number = new_change(desk, clock).number
    move_change(desk, number, "authorize")
    auth = approve_change(desk, number, "alice", alice).authorization()
    auth.verify_approval(alice.public_key)
    longer = utc_iso(auth.end + dt.timedelta(days=7))
    tampered = ChangeAuthorization.from_dict(auth.to_dict() | {"window_end": longer})
    with pytest.raises(SignatureError, match="does not verify"):
        tampered.verify_approval(alice.public_key)
    with pytest.raises(SignatureError, match="was approved with key"):
        auth.verify_approval(bob.public_key)


def test_approve_only_in_authorize_and_only_once(
    desk: HubContext, clock: FixedClock, alice: CryptoSigner, bob: CryptoSigner
) -> None:
    number = new_change(desk, clock).number
    with pytest.raises(UsageError, match="only a change in authorize"):
        approve_change(desk, number, "alice", alice)
    move_change(desk, number, "authorize")
    approve_change(desk, number, "alice", alice)
    with pytest.raises(UsageError, match="only a change in authorize"):
        approve_change(desk, number, "bob", bob)


def test_a_rejected_change_goes_back_to_new(
    desk: HubContext, clock: FixedClock, alice: CryptoSigner
) -> None:
    number = new_change(desk, clock).number
    move_change(desk, number, "authorize")
    rejected = reject_change(desk, number, "bob", "no backout plan")
    assert (rejected.state, rejected.approval, rejected.approved_by) == ("new", "rejected", "bob")
    assert rejected.rejection_reason == "no backout plan"
    assert_cloudevent(events_of(desk)[-1], "change.rejected", number)
    with pytest.raises(UsageError, match="not approved"):
        move_change(desk, number, "implement")
    assert move_change(desk, number, "authorize").approval == "requested"
    assert approve_change(desk, number, "alice", alice).approval == "approved"


def test_approving_with_an_encrypted_key_file(
    desk: HubContext, clock: FixedClock, alice: CryptoSigner, tmp_path: Path
) -> None:
    key_file = tmp_path / "alice.pem"
    write_encrypted_key(key_file, alice, PASSPHRASE, iterations=1000)
    number = new_change(desk, clock).number
    move_change(desk, number, "authorize")
    with pytest.raises(SecretError, match="wrong passphrase"):
        approve_change(desk, number, "alice", key_file, lambda _n: "not it at all")
    assert last_entry(desk).change_request == number
    approved = approve_change(desk, number, "alice", key_file, lambda _n: PASSPHRASE)
    approved.authorization().verify_approval(alice.public_key)


def test_approver_keys_must_be_ed25519_and_unique(desk: HubContext, alice: CryptoSigner) -> None:
    with pytest.raises(UsageError, match="must be Ed25519"):
        add_change_approver(desk, "erin", CryptoSigner.generate_ecdsa().public_key)
    with pytest.raises(ConflictError, match="already registered for approver 'alice'"):
        add_change_approver(desk, "alice2", alice.public_key)
    with pytest.raises(ConflictError, match="'alice' is already registered"):
        add_change_approver(desk, "alice", CryptoSigner.generate_ed25519().public_key)
    assert [a.name for a in list_change_approvers(desk)] == ["alice", "bob"]
    assert last_entry(desk).action == "hub.change.approver.add"


def test_create_refuses_bad_input(hub: HubContext, clock: FixedClock) -> None:
    start, end = window(clock)
    with pytest.raises(UsageError, match="not a rollout plan reference"):
        new_change(hub, clock, covers=["plant-7/detector@2"])
    with pytest.raises(UsageError, match="ends before it starts"):
        new_change(hub, clock, planned_start=end, planned_end=start)
    with pytest.raises(UsageError, match="must be UTC"):
        new_change(hub, clock, planned_start="2026-11-23 14:00")
    with pytest.raises(UsageError, match="change type"):
        new_change(hub, clock, type="urgent")
    assert list_change_requests(hub) == []
    assert events_of(hub) == []


def test_revoke_records_an_emergency_change_after_the_fact(
    desk: HubContext, clock: FixedClock, site: SiteKeys, onnx_file: Path, alice: CryptoSigner
) -> None:
    add_site(desk, site.identity)
    add_model(desk, "detector", "1", onnx_file)
    assign(desk, "plant-7", "detector", "1")
    result = revoke(desk, "detector", "1", "leaks memory")
    emergency = get_change(desk, result.change_request)
    assert (emergency.type, emergency.state, emergency.approval) == (
        "emergency",
        "review",
        "requested",
    )
    assert emergency.requested_by == result.principal
    assert "leaks memory" in emergency.justification
    assert [str(c) for c in emergency.covers] == ["plant-7:detector@1"]
    entry = last_entry(desk)
    assert (entry.action, entry.change_request, entry.model, entry.version) == (
        "hub.revoke",
        emergency.number,
        "detector",
        "1",
    )
    assert events_of(desk)[-2]["data"]["approval"] == "requested"  # type: ignore[index]
    kinds = [e["type"] for e in events_of(desk)]
    assert kinds[-2:] == [EVENT_TYPES["change.created"], EVENT_TYPES["model.revoked"]]
    assert_cloudevent(events_of(desk)[-1], "model.revoked", "detector@1")

    retro = approve_change(desk, emergency.number, "alice", alice)
    assert (retro.state, retro.approval) == ("review", "approved")
    assert move_change(desk, emergency.number, "closed").state == "closed"


def test_revoke_under_a_given_change_and_not_a_closed_one(
    desk: HubContext, clock: FixedClock, onnx_file: Path, tmp_path: Path
) -> None:
    add_model(desk, "detector", "1", onnx_file)
    add_model(desk, "detector", "2", onnx_file.parent / "classifier.onnx")
    number = new_change(desk, clock).number
    assert revoke(desk, "detector", "1", "bad", change=number).change_request == number
    move_change(desk, number, "canceled")
    with pytest.raises(UsageError, match="is canceled"):
        revoke(desk, "detector", "2", "bad", change=number)
    assert (last_entry(desk).outcome, last_entry(desk).change_request) == ("refused", number)
    assert [c.number for c in list_change_requests(desk)] == [number]


def test_export_emits_bundle_exported(
    hub: HubContext, site: SiteKeys, onnx_file: Path, tmp_path: Path
) -> None:
    add_site(hub, site.identity)
    add_model(hub, "detector", "1", onnx_file)
    assign(hub, "plant-7", "detector", "1")
    envelope = export(hub, "plant-7", tmp_path / "bundle")
    event = events_of(hub)[-1]
    assert_cloudevent(event, "bundle.exported", envelope.bundle_id)
    assert event["data"] == {
        "site": "plant-7",
        "sequence": 1,
        "kind": "full",
        "bundle_id": envelope.bundle_id,
        "expires": utc_iso(envelope.expires),
        "models": ["detector@1"],
        "omitted": [],
    }


def test_the_cli_creates_approves_and_lists(
    hub: HubContext,
    clock: FixedClock,
    alice: CryptoSigner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = str(hub.home.root)
    monkeypatch.setenv("AIRLOCK_PRINCIPAL", "carol")
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, ["hub", *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    public = tmp_path / "alice.pub.pem"
    public.write_bytes(
        alice._private_key.public_key().public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )
    )
    run("change", "approver", "add", "alice", "--key", str(public), "--home", home)
    start, end = window(clock)
    created = json.loads(
        run(
            "change", "create", "--home", home, "-d", "Roll out", "--start", start,
            "--end", end, "--covers", "plant-7:detector@2", "--json",
        )
    )  # fmt: skip
    assert (created["number"], created["requested_by"]) == ("ACHG0000001", "carol")
    run("change", "move", "ACHG0000001", "--to", "authorize", "--home", home)
    key_file = tmp_path / "alice.pem"
    write_encrypted_key(key_file, alice, PASSPHRASE, iterations=1000)
    monkeypatch.setenv("AIRLOCK_APPROVER_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("AIRLOCK_PRINCIPAL", "alice")
    approve = ["change", "approve", "ACHG0000001", "--as", "carol", "--key", str(key_file)]
    run(*approve, "--home", home, code=3)  # carol is not registered (and is the requester)
    approved = json.loads(
        run("change", "approve", "ACHG0000001", "--as", "alice", "--key", str(key_file),
            "--home", home, "--json")
    )  # fmt: skip
    assert approved["state"] == "scheduled"
    listed = json.loads(run("change", "list", "--home", home, "--json"))
    assert [c["approval"] for c in listed] == ["approved"]
    shown = json.loads(run("change", "show", "ACHG0000001", "--home", home, "--json"))
    assert shown["covers"] == ["plant-7:detector@2"]
    assert "ACHG0000001" in run("change", "show", "ACHG0000001", "--home", home)


def test_keygen_writes_a_key_pair_that_approves(
    desk: HubContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: FixedClock
) -> None:
    monkeypatch.setenv("AIRLOCK_APPROVER_PASSPHRASE", PASSPHRASE)
    out = tmp_path / "dave.pem"
    result = CliRunner().invoke(main, ["hub", "change", "keygen", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    add_change_approver(desk, "dave", tmp_path / "dave.pub.pem")
    number = new_change(desk, clock).number
    move_change(desk, number, "authorize")
    approved = approve_change(desk, number, "dave", out, lambda _n: PASSPHRASE)
    assert approved.approval_keyid == json.loads(result.output)["keyid"]
