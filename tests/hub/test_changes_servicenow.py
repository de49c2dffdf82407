"""`airlock hub change import`: ServiceNow change-request exports, all or nothing."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers.hubenv import HUB_PASSPHRASE
from securesystemslib.signer import CryptoSigner
from sqlmodel import Session, select

from airlock.bundles.audit import AuditLog
from airlock.bundles.cli import main
from airlock.bundles.errors import ConflictError, MediaError, SignatureError, UsageError
from airlock.bundles.events import EVENT_TYPES, OutboxEvent
from airlock.hub import repos as signing
from airlock.hub.changes import (
    create_change,
    get_change,
    import_servicenow,
    list_change_requests,
)
from airlock.hub.context import HubContext, online_signer

EXPORT: dict[str, Any] = {
    "result": [
        {
            "number": "CHG0030001",
            "sys_id": "a9e30c7dc61122760116894de7bcc7bd",
            "type": "normal",
            "state": "-1",
            "approval": "approved",
            "approved_by": {
                "display_value": "Cab Approver", "value": "6816f79cc0a8016401c5a33be04be441"
            },
            "approval_set": "2026-11-22 09:12:00",
            "start_date": {"display_value": "2026-11-23 06:00:00", "value": "2026-11-23 14:00:00"},
            "end_date": "2026-11-23 18:00:00",
            "requested_by": {
                "display_value": "Beth Anglin",
                "link": "https://example.service-now.com/api/now/table/sys_user/46d44a23",
                "value": "46d44a23a9fe19810012d100cca80666",
            },
            "assignment_group": {
                "display_value": "ML Platform", "value": "8a4dde73c6112278017a6a4baf547aa7"
            },
            "short_description": "Roll out iris 3 to plant 7",
            "justification": "Better accuracy on the new sensor",
            "u_airlock_covers": "plant-7:iris@3, plant-9:iris@3",
        },
        {
            "number": "CHG0030002",
            "type": "Standard",
            "state": "Assess",
            "approval": "not yet requested",
            "requested_by": "Beth Anglin",
            "short_description": "Model refresh",
            "start_date": "",
            "end_date": "",
        },
    ]
}  # fmt: skip


def write(tmp_path: Path, data: Any, name: str = "export.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def outbox(hub: HubContext) -> list[str]:
    with Session(hub.engine) as session:
        return [e.type for e in session.exec(select(OutboxEvent))]


def test_an_export_is_imported_and_its_approval_signed_for_servicenow(
    hub: HubContext, tmp_path: Path
) -> None:
    result = import_servicenow(hub, write(tmp_path, EXPORT))
    assert result.created == ("CHG0030001", "CHG0030002")
    first, second = list_change_requests(hub)
    assert (first.state, first.approval, first.approved_by) == (
        "implement",
        "approved",
        "Cab Approver",
    )
    assert (first.planned_start, first.planned_end) == (
        "2026-11-23T14:00:00Z",
        "2026-11-23T18:00:00Z",
    )
    assert (first.requested_by, first.assignment_group) == ("Beth Anglin", "ML Platform")
    assert [str(c) for c in first.covers] == ["plant-7:iris@3", "plant-9:iris@3"]
    assert (first.source, first.approval_source, first.approved_at) == (
        "servicenow",
        "servicenow",
        "2026-11-22T09:12:00Z",
    )
    director_key = online_signer(hub, signing.DIRECTOR_TARGETS).public_key
    first.authorization().verify_approval(director_key)
    assert (second.type, second.state, second.approval) == ("standard", "assess", "not requested")
    assert outbox(hub) == [EVENT_TYPES["change.created"]] * 2
    entry = AuditLog(hub.engine, "hub").entries()[-1]
    assert (entry.action, entry.outcome) == ("hub.change.import", "success")


def test_importing_again_updates_only_what_changed(hub: HubContext, tmp_path: Path) -> None:
    import_servicenow(hub, write(tmp_path, EXPORT))
    again = import_servicenow(hub, write(tmp_path, EXPORT))
    assert (again.created, again.updated) == ((), ())
    assert AuditLog(hub.engine, "hub").entries()[-1].outcome == "unchanged"
    moved = copy.deepcopy(EXPORT)
    moved["result"][0]["state"] = "0"
    result = import_servicenow(hub, write(tmp_path, moved, "moved.json"))
    assert (result.updated, result.unchanged) == (("CHG0030001",), ("CHG0030002",))
    assert get_change(hub, "CHG0030001").state == "review"
    assert outbox(hub)[-1] == EVENT_TYPES["change.state"]
    assert AuditLog(hub.engine, "hub").entries()[-1].change_request == "CHG0030001"


def _broken(index: int, **fields: Any) -> dict[str, Any]:
    data = copy.deepcopy(EXPORT)
    data["result"][index].update(fields)
    return data


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (_broken(1, state="-9"), UsageError, r"record 2 \(CHG0030002\): state '-9'"),
        (_broken(0, type="major"), UsageError, r"record 1 \(CHG0030001\): type 'major'"),
        (_broken(0, end_date="23/11/2026"), UsageError, "record 1 .*end_date"),
        (_broken(0, approved_by="Beth Anglin"), UsageError, "approved by its requester"),
        (_broken(0, u_airlock_covers="plant-7 iris 3"), UsageError, "not a rollout plan"),
        (_broken(1, requested_by=""), UsageError, "record 2 .*no requested_by"),
        (_broken(1, number="CHG0030001"), UsageError, "lists change CHG0030001 more than once"),
        ({"result": []}, MediaError, "holds no change requests"),
        ({"error": {"message": "User Not Authenticated"}}, MediaError, "no change requests"),
    ],
)
def test_a_malformed_export_imports_nothing(
    hub: HubContext, tmp_path: Path, data: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        import_servicenow(hub, write(tmp_path, data))
    assert list_change_requests(hub) == []
    assert outbox(hub) == []
    entry = AuditLog(hub.engine, "hub").entries()[-1]
    outcome = "refused" if error is UsageError else "failure"  # a file that is no export
    assert (entry.action, entry.outcome) == ("hub.change.import", outcome)


def test_not_json_and_a_local_number_are_refused(hub: HubContext, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("<xml/>")
    with pytest.raises(MediaError, match="is not JSON"):
        import_servicenow(hub, bad)
    local = create_change(
        hub,
        short_description="local",
        planned_start="2026-11-23T14:00:00Z",
        planned_end="2026-11-23T18:00:00Z",
    )
    clash = _broken(1, number=local.number)
    with pytest.raises(ConflictError, match=f"{local.number} was made at this hub"):
        import_servicenow(hub, write(tmp_path, clash))
    assert [c.number for c in list_change_requests(hub)] == [local.number]


def test_the_cli_imports_with_json_output(
    hub: HubContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRLOCK_HUB_PASSPHRASE", HUB_PASSPHRASE)
    path = write(tmp_path, EXPORT)
    args = ["hub", "change", "import", str(path), "--home", str(hub.home.root), "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["created"] == ["CHG0030001", "CHG0030002"]
    broken = write(tmp_path, _broken(0, state="later"), "broken.json")
    args[3] = str(broken)
    failed = CliRunner().invoke(main, args)
    assert failed.exit_code == 3
    assert "record 1 (CHG0030001)" in failed.output


def test_approval_by_an_unknown_key_is_not_the_hub_key(hub: HubContext, tmp_path: Path) -> None:
    import_servicenow(hub, write(tmp_path, EXPORT))
    auth = get_change(hub, "CHG0030001").authorization()
    with pytest.raises(SignatureError):
        auth.verify_approval(CryptoSigner.generate_ed25519().public_key)


def test_local_and_servicenow_numbers_never_collide(hub: HubContext, tmp_path: Path) -> None:
    first, second = copy.deepcopy(EXPORT["result"][0]), copy.deepcopy(EXPORT["result"][1])
    import_servicenow(hub, write(tmp_path, {"result": [first]}, "first.json"))
    local = create_change(
        hub,
        short_description="local",
        planned_start="2026-11-23T14:00:00Z",
        planned_end="2026-11-23T18:00:00Z",
    )
    assert local.number == "ACHG0000001"  # its own space: not the next ServiceNow number
    result = import_servicenow(hub, write(tmp_path, {"result": [second]}))
    assert result.created == ("CHG0030002",)
    again = create_change(
        hub,
        short_description="local 2",
        planned_start="2026-11-23T14:00:00Z",
        planned_end="2026-11-23T18:00:00Z",
    )
    assert again.number == "ACHG0000002"  # imports never move local numbering
    numbers = {c.number: c for c in list_change_requests(hub)}
    assert sorted(numbers) == ["ACHG0000001", "ACHG0000002", "CHG0030001", "CHG0030002"]
    assert numbers["CHG0030002"].short_description == "Model refresh"


def test_a_servicenow_number_in_the_local_space_is_refused(hub: HubContext, tmp_path: Path) -> None:
    clash = _broken(1, number="ACHG0000001")
    with pytest.raises(ConflictError, match="own prefix ACHG"):
        import_servicenow(hub, write(tmp_path, clash))
    assert list_change_requests(hub) == []
    local = create_change(
        hub,
        short_description="local",
        planned_start="2026-11-23T14:00:00Z",
        planned_end="2026-11-23T18:00:00Z",
    )
    assert local.number == "ACHG0000001"
