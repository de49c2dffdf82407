"""The multi-officer ceremony through ``airlock ceremony …`` (click's CliRunner, real crypto)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers.ceremonyflow import run_ceremony

from airlock.bundles.cli import main
from airlock.bundles.clock import FixedClock, SystemClock
from airlock.ceremony.documents import EXIT_DUE, EXIT_EXPIRED

HUB = "hub passphrase for the cli test"
OFFICERS = ("alice", "bob", "carol")


def passphrase(officer: str) -> str:
    return f"{officer} types this passphrase"


def run(*args: str, officer: str | None = None, stdin: str | None = None) -> Result:
    env = {"AIRLOCK_HUB_PASSPHRASE": HUB, "AIRLOCK_OFFICER_PASSPHRASE": None, "COLUMNS": "200"}
    if officer:
        env["AIRLOCK_OFFICER_PASSPHRASE"] = passphrase(officer)
    result = CliRunner(env=env).invoke(main, list(args), input=stdin)
    for secret in [HUB, *(passphrase(o) for o in OFFICERS)]:
        assert secret not in result.output and secret not in result.stderr
    return result


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output + result.stderr
    return result


@pytest.fixture(scope="module")
def ceremony_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A three-officer ceremony run command by command."""
    base = tmp_path_factory.mktemp("cli-ceremony")
    work = base / "work"
    args = ["--id", "cli-1", "--location", "Room 2"]
    ok(run("ceremony", "plan", "new", "--workspace", str(work), *args,
           *(a for o in OFFICERS for a in ("--officer", o)), "--witness", "wendy"))  # fmt: skip
    plan = work / "plan.toml"
    checked = ok(run("ceremony", "plan", "check", str(plan), "--json"))
    assert json.loads(checked.output)["roles"]["image-root"]["threshold"] == 2
    for officer in OFFICERS:
        ok(run("ceremony", "keygen", "--plan", str(plan), "--officer", officer,
               "--keys", str(base / officer), "--out", str(base / f"{officer}.offer.json"),
               officer=officer))  # fmt: skip
    offers = [a for o in OFFICERS for a in ("--offer", str(base / f"{o}.offer.json"))]
    proposed = ok(run("ceremony", "propose", "--workspace", str(work), *offers))
    sha = proposed.output.split("request SHA-256 ")[1].split()[0]
    for officer in OFFICERS:
        signed = ok(run("ceremony", "sign", "--request", str(work / "request.json"),
                        "--plan", str(plan), "--officer", officer, "--keys", str(base / officer),
                        "--out", str(base / f"{officer}.sig.json"), "--expect-sha256", sha,
                        officer=officer, stdin=f"{sha[:8]}\n"))  # fmt: skip
        assert "Your keys will sign" in signed.output
    sigs = [a for o in OFFICERS for a in ("--signatures", str(base / f"{o}.sig.json"))]
    ok(run("ceremony", "finalize", "--workspace", str(work), *sigs, "--out", str(base / "out")))
    for officer in OFFICERS:
        ok(run("ceremony", "sign-transcript", "--dir", str(base / "out"), "--plan", str(plan),
               "--officer", officer, "--keys", str(base / officer),
               "--out", str(base / f"{officer}.tsig.json"), "--yes", officer=officer))  # fmt: skip
    ok(run("ceremony", "seal-transcript", "--workspace", str(work), "--dir", str(base / "out"),
           *(str(base / f"{o}.tsig.json") for o in OFFICERS)))  # fmt: skip
    return base


def test_the_cli_ceremony_verifies(ceremony_dir: Path) -> None:
    result = ok(run("ceremony", "verify-transcript", "--dir", str(ceremony_dir / "out"), "--json"))
    report = json.loads(result.output)
    assert report["ok"] and all(check["ok"] for check in report["checks"])


def test_verify_transcript_exits_12_on_a_mismatch(ceremony_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "out"
    shutil.copytree(ceremony_dir / "out", copy)
    (copy / "director" / "1.root.json").write_bytes(b"{}")
    result = run("ceremony", "verify-transcript", "--dir", str(copy))
    assert result.exit_code == 12
    assert "FAIL" in result.output and "SHA-256 differs: director/1.root.json" in result.output


def test_a_typed_confirmation_that_does_not_match_signs_nothing(ceremony_dir: Path) -> None:
    base = ceremony_dir
    out = base / "declined.sig.json"
    result = run("ceremony", "sign", "--request", str(base / "work" / "request.json"),
                 "--plan", str(base / "work" / "plan.toml"), "--officer", "bob",
                 "--keys", str(base / "bob"), "--out", str(out),
                 officer="bob", stdin="no\n")  # fmt: skip
    assert result.exit_code == 3
    assert "not signed: the officer did not confirm" in result.stderr
    assert not out.exists()


def test_a_wrong_passphrase_exits_4(ceremony_dir: Path) -> None:
    base = ceremony_dir
    result = CliRunner(env={"AIRLOCK_OFFICER_PASSPHRASE": "a wrong passphrase"}).invoke(
        main,
        ["ceremony", "sign", "--request", str(base / "work" / "request.json"),
         "--plan", str(base / "work" / "plan.toml"), "--officer", "carol",
         "--keys", str(base / "carol"), "--out", str(base / "x.sig.json"), "--yes"],
    )  # fmt: skip
    assert result.exit_code == 4
    assert "wrong passphrase" in result.stderr
    assert "a wrong passphrase" not in result.output + result.stderr


def test_status_lists_every_role_and_exits_by_lead_time(ceremony_dir: Path) -> None:
    out = str(ceremony_dir / "out")
    fine = run("ceremony", "status", "--dir", out, "--json")
    assert fine.exit_code == 0, fine.output
    roles = {r["role"]: r for r in json.loads(fine.output)["roles"]}
    assert set(roles) == {"Image root", "Image targets", "Director root", "in-toto layout keys"}
    assert roles["Image targets"]["days_left"] in (179, 180)
    assert roles["Image root"]["state"] == "ok"
    due = run("ceremony", "status", "--dir", out, "--lead-days", "200")
    assert due.exit_code == EXIT_DUE
    assert "due" in due.output and "Image targets" in due.output


def test_status_exits_21_when_a_role_has_expired(tmp_path: Path) -> None:
    def short_targets(text: str) -> str:
        return text.replace("expiry_days = 180", "expiry_days = 1")

    clock = FixedClock(SystemClock().now() - dt.timedelta(days=3))
    flow = run_ceremony(tmp_path, clock, "old", edit=short_targets)
    result = run("ceremony", "status", "--dir", str(flow.out()))
    assert result.exit_code == EXIT_EXPIRED
    assert "expired" in result.output
