"""`airlock hub …` through the real root group: JSON output, exit codes, messages."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from helpers.hubenv import HUB_PASSPHRASE
from helpers.identities import SiteKeys

from airlock.bundles.audit import AuditLog, verify_engine
from airlock.bundles.cli import main
from airlock.bundles.db import make_engine
from airlock.ceremony.minimal import CeremonyResult


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Result]:
    """Runs `airlock hub ARGS…` with the passphrase and home in the environment."""
    monkeypatch.setenv("AIRLOCK_HUB_PASSPHRASE", HUB_PASSPHRASE)
    monkeypatch.setenv("AIRLOCK_HUB_HOME", str(tmp_path / "hub-home"))
    runner = CliRunner()

    def run(*args: str, expect: int = 0) -> Result:
        result = runner.invoke(main, ["hub", *args], catch_exceptions=False)
        assert result.exit_code == expect, result.output + result.stderr
        return result

    return run


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


def test_release_flow_with_json_output(
    cli, ceremony: CeremonyResult, site: SiteKeys, onnx_file: Path, tmp_path: Path
) -> None:
    init = as_json(cli("init", "--from", str(ceremony.out_dir), "--json"))
    assert init["roles"]["image models"]["version"] == 1

    identity = tmp_path / "site-identity.json"
    identity.write_text(json.dumps(site.identity.to_dict()))
    added = as_json(
        cli("site", "add", "--identity", str(identity), "--transit-days", "14", "--json")
    )
    assert (added["site_id"], added["transit_days"], added["encrypt"]) == ("plant-7", 14, True)
    assert [s["site_id"] for s in as_json(cli("site", "list", "--json"))] == ["plant-7"]

    model = as_json(cli("model", "add", "classifier", "1.0", str(onnx_file), "--json"))
    assert model["created"] is True and model["files"][0]["primary"] is True
    again = cli("model", "add", "classifier", "1.0", str(onnx_file))
    assert "nothing changed" in again.stdout
    assert [m["version"] for m in as_json(cli("model", "list", "--json"))] == ["1.0"]

    assigned = as_json(cli("assign", "plant-7", "classifier", "1.0", "--json"))
    assert assigned["changed"] is True

    exported = as_json(cli("export", "--site", "plant-7", "--out", str(tmp_path / "b"), "--json"))
    assert exported["envelope"]["sequence"] == 1
    assert (tmp_path / "b" / "envelope.json").is_file()

    status = as_json(cli("status", "--json"))
    assert status["sites"][0]["sequence"] == 1
    assert status["sites"][0]["assignments"] == {"classifier": "1.0"}
    assert status["models"] == [
        {
            "name": "classifier",
            "version": "1.0",
            "tenant": "default",
            "files": 1,
            "bytes": onnx_file.stat().st_size,
            "revoked": None,
            "rolled_back_at": [],
        }
    ]
    assert status["revocations"] == []

    assert "removed" in cli("unassign", "plant-7", "classifier").stdout
    human = cli("status").stdout
    assert "image tenant-default" in human and "plant-7" in human
    engine = make_engine(f"sqlite:///{tmp_path / 'hub-home' / 'hub.db'}")
    assert verify_engine(engine).ok
    actions = [(e.action, e.outcome) for e in AuditLog(engine, "hub").entries()]
    engine.dispose()
    assert actions == [
        ("hub.init", "success"),
        ("hub.site.add", "success"),
        ("hub.model.add", "success"),
        ("hub.model.add", "unchanged"),
        ("hub.assign", "success"),
        ("hub.export", "success"),
        ("audit.checkpoint", "success"),  # every export signs a checkpoint covering it
        ("hub.unassign", "success"),
    ]


def test_errors_map_to_documented_exit_codes(
    cli, ceremony: CeremonyResult, onnx_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli("init", "--from", str(ceremony.out_dir))
    again = cli("init", "--from", str(ceremony.out_dir), expect=3)
    assert "already exists" in again.stderr and "what to do:" in again.stderr

    missing = cli("export", "--site", "plant-7", "--out", str(tmp_path / "b"), expect=3)
    assert "not registered" in missing.stderr

    monkeypatch.setenv("AIRLOCK_HUB_PASSPHRASE", "a wrong passphrase")
    wrong = cli("model", "add", "classifier", "1", str(onnx_file), expect=4)
    assert "wrong passphrase" in wrong.stderr
    assert "a wrong passphrase" not in wrong.output + wrong.stderr

    no_identity = cli("site", "add", expect=3)
    assert "no site identity" in no_identity.stderr


def test_site_add_with_recipient_and_key_file(
    cli, ceremony: CeremonyResult, site: SiteKeys, tmp_path: Path
) -> None:
    cli("init", "--from", str(ceremony.out_dir))
    key_file = tmp_path / "site-key.json"
    key_file.write_text(
        json.dumps({"keyid": site.identity.signing_keyid, "public_key": site.identity.signing_key})
    )
    added = cli(
        "site", "add", "plant-7",
        "--recipient", site.identity.age_recipient,
        "--signing-key", str(key_file),
        "--no-encryption",
        "--json",
    )  # fmt: skip
    assert as_json(added)["encrypt"] is False
    bad = cli(
        "site", "add", "plant-8", "--recipient", "age1nope", "--signing-key", str(key_file),
        expect=3,
    )  # fmt: skip
    assert "not a valid age X25519 recipient" in bad.stderr
