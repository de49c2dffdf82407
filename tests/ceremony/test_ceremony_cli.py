"""``airlock ceremony`` through the real root command (click's CliRunner, real crypto)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from airlock.bundles.cli import main
from airlock.ceremony.minimal import load_ceremony

OFFICER = "officers passphrase for the cli"
HUB = "hub passphrase for the cli"
ENV = {"AIRLOCK_CEREMONY_PASSPHRASE": OFFICER, "AIRLOCK_HUB_PASSPHRASE": HUB}
UNSET: dict[str, str | None] = {name: None for name in ENV}
SMALL = ["--root-keys", "2", "--root-threshold", "2", "--targets-keys", "1"]


def invoke(
    *args: str, env: dict[str, str | None] | None = None, stdin: str | None = None
) -> Result:
    return CliRunner(env=ENV if env is None else env).invoke(main, list(args), input=stdin)


def assert_no_secret(result: Result) -> None:
    for secret in (OFFICER, HUB):
        assert secret not in result.output
        assert secret not in result.stderr


@pytest.fixture(scope="module")
def json_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    out = tmp_path_factory.mktemp("cli") / "ceremony"
    return out, invoke("ceremony", "init", "--out", str(out), "--json")


def test_group_help_reads_well_for_a_security_officer() -> None:
    result = invoke("ceremony", "--help")
    assert result.exit_code == 0
    assert "security officers" in result.output
    assert "offline machine" in result.output
    assert "init" in result.output


def test_init_help_names_the_passphrase_variables_and_offers_no_passphrase_option() -> None:
    result = invoke("ceremony", "init", "--help")
    assert result.exit_code == 0
    assert "AIRLOCK_CEREMONY_PASSPHRASE" in result.output
    assert "AIRLOCK_HUB_PASSPHRASE" in result.output
    assert "--passphrase" not in result.output
    for option in ("--out", "--algorithm", "--root-threshold", "--targets-expiry-days", "--json"):
        assert option in result.output


def test_init_json_summary(json_run: tuple[Path, Result]) -> None:
    out, result = json_run
    assert result.exit_code == 0, result.output
    assert_no_secret(result)
    summary = json.loads(result.stdout)
    record = load_ceremony(out)
    assert summary["ceremony_id"] == record.ceremony_id
    assert summary["algorithm"] == "ed25519"
    assert summary["out_dir"] == str(out)
    by_name = {key["name"]: key for key in summary["keys"]}
    assert len(by_name) == 15
    envelope = record.key("envelope")
    assert by_name["envelope"]["keyid"] == envelope.keyid
    assert by_name["envelope"]["kind"] == "online"
    assert by_name["image-root-1"]["kind"] == "offline"
    assert by_name["envelope"]["fingerprint"].replace(" ", "") == envelope.keyid[:16]
    roles = {(r["repository"], r["role"]): r for r in summary["roles"]}
    assert roles[("image", "root")]["threshold"] == 2
    assert sorted(roles[("image", "root")]["keys"]) == [
        "image-root-1",
        "image-root-2",
        "image-root-3",
    ]
    assert roles[("director", "timestamp")]["keys"] == ["director-timestamp"]
    assert summary["carry"]["officers_only"] == ["offline-keys/"]
    assert not any("offline" in item for item in summary["carry"]["hub"])
    assert {m["file"]: m["sha256"] for m in summary["metadata"]} == {
        "image/1.root.json": record.roots["image"].sha256,
        "image/1.targets.json": record.image_targets.sha256,
        "director/1.root.json": record.roots["director"].sha256,
    }


def test_init_human_summary(tmp_path: Path) -> None:
    out = tmp_path / "ceremony"
    result = invoke("ceremony", "init", "--out", str(out), *SMALL, "--algorithm", "ecdsa-p256")
    assert result.exit_code == 0, result.output
    assert_no_secret(result)
    record = load_ceremony(out)
    assert record.algorithm == "ecdsa-p256"
    text = result.output
    assert record.ceremony_id in text
    for name in [*record.offline_keys, *record.online_keys]:
        assert name in text
        fingerprint = record.key(name).keyid[:16]
        assert " ".join(fingerprint[i : i + 4] for i in range(0, 16, 4)) in text
    assert "2 of 2" in text  # root threshold
    assert "ecdsa-p256" in text
    assert record.roots["image"].expires.strftime("%Y-%m-%dT%H:%M:%SZ") in text
    assert "image/1.root.json" in text and "offline-keys/" in text


def test_passphrases_are_prompted_twice_without_echo(tmp_path: Path) -> None:
    out = tmp_path / "ceremony"
    answers = f"{OFFICER}\n{OFFICER}\n{HUB}\n{HUB}\n"
    result = invoke("ceremony", "init", "--out", str(out), *SMALL, env=UNSET, stdin=answers)
    assert result.exit_code == 0, result.output
    assert_no_secret(result)
    assert "Repeat for confirmation" in result.output
    ref = load_ceremony(out).key("image-root-1")
    assert load_ceremony(out).signers([ref.name], lambda _: OFFICER)


def test_existing_ceremony_is_refused_with_exit_3(json_run: tuple[Path, Result]) -> None:
    out, _ = json_run
    before = (out / "ceremony.json").read_bytes()
    result = invoke("ceremony", "init", "--out", str(out))
    assert result.exit_code == 3
    assert "already contains a key ceremony" in result.stderr
    assert "what to do:" in result.stderr
    assert (out / "ceremony.json").read_bytes() == before


def test_bad_threshold_is_refused_before_any_prompt(tmp_path: Path) -> None:
    result = invoke(
        "ceremony", "init", "--out", str(tmp_path / "c"), "--root-threshold", "5", env=UNSET
    )
    assert result.exit_code == 3
    assert "root threshold" in result.stderr
    assert "passphrase" not in result.output.lower()
    assert list(tmp_path.iterdir()) == []


def test_too_short_passphrase_exits_4_and_leaves_nothing(tmp_path: Path) -> None:
    env: dict[str, str | None] = {**ENV, "AIRLOCK_HUB_PASSPHRASE": "short"}
    result = invoke("ceremony", "init", "--out", str(tmp_path / "c"), *SMALL, env=env)
    assert result.exit_code == 4
    assert "too short" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_audit_verify_accepts_the_ceremony_log(json_run: tuple[Path, Result]) -> None:
    out, _ = json_run
    result = invoke("audit", "verify", "--home", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["entries"] == 1 + 15 + 3 + 1  # start, keys, three signed files, init
