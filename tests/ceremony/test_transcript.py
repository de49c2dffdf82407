"""The transcript: signed by every officer, printable, and checked against the files on disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.ceremonyflow import Flow, passphrase_of, run_ceremony
from helpers.hubenv import HUB_PASSPHRASE
from helpers.softhsm import USER_PIN

from airlock.bundles.errors import IntegrityError
from airlock.ceremony.coordinator import (
    HTML_FILE,
    TRANSCRIPT_FILE,
    read_transcript,
    render_html,
    seal_transcript,
    tool_record,
    verify_transcript,
)
from airlock.ceremony.steps import StepLog


@pytest.fixture
def finished(tmp_path: Path, initial_flow: Flow) -> Path:
    """A private copy of the session's finished ceremony, to tamper with."""
    copy = tmp_path / "ceremony"
    shutil.copytree(initial_flow.out(), copy)
    return copy


def failed(directory: Path, **kwargs: Any) -> dict[str, str]:
    """The failed checks of a verification, by name."""
    report = verify_transcript(directory, **kwargs)
    assert not report.ok
    return {c["check"]: c["detail"] for c in report.checks if not c["ok"]}


def test_a_finished_ceremony_verifies(initial_flow: Flow) -> None:
    report = verify_transcript(initial_flow.out())
    assert report.ok, report.checks
    assert len(report.checks) == 9


def test_the_transcript_records_the_ceremony(initial_flow: Flow) -> None:
    transcript = read_transcript(initial_flow.out())
    body = transcript.body
    assert body["ceremony_id"] == "initial"
    assert body["location"] == "Test lab, room 1"
    assert [p["name"] for p in body["participants"]["officers"]] == ["alice", "bob", "carol"]
    assert [p["name"] for p in body["participants"]["witnesses"]] == ["wendy"]
    assert [s["step"] for s in body["steps"]] == ["plan"] + ["keygen"] * 3 + ["propose"] + [
        "sign"
    ] * 3 + ["finalize"]
    times = [s["time"] for s in body["steps"]]
    assert times == sorted(times) and body["started"] == times[0] and body["finished"] == times[-1]
    assert len(body["keys"]) == 10 and all(k["fingerprint"] for k in body["keys"])
    on_disk = {
        p.relative_to(initial_flow.out()).as_posix()
        for p in initial_flow.out().rglob("*")
        if p.is_file() and p.name not in (TRANSCRIPT_FILE, HTML_FILE)
    }
    assert set(body["artifacts"]) == on_disk
    assert body["tool"] == tool_record()
    assert [s["officer"] for s in transcript.signatures] == ["alice", "bob", "carol"]


def test_no_secret_reaches_the_record(initial_flow: Flow) -> None:
    secrets = [passphrase_of(o) for o in initial_flow.officers] + [HUB_PASSPHRASE, USER_PIN]
    texts = [
        (initial_flow.out() / TRANSCRIPT_FILE).read_text(),
        (initial_flow.out() / HTML_FILE).read_text(),
        (initial_flow.out() / "ceremony.json").read_text(),
        initial_flow.workspace.request_file.read_text(),
    ]
    for engine_dir, db in [(initial_flow.workspace.directory, "coordinator-audit.db")] + [
        (initial_flow.keys(o), "officer-audit.db") for o in initial_flow.officers
    ]:
        texts.append((engine_dir / db).read_bytes().decode("latin-1"))
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_the_printable_page_shows_every_key_and_signature(initial_flow: Flow) -> None:
    html = (initial_flow.out() / HTML_FILE).read_text()
    body = read_transcript(initial_flow.out()).body
    assert "initial" in html and "Test lab, room 1" in html and "wendy" in html
    for key in body["keys"]:
        assert key["keyid"] in html
    for path, artifact in body["artifacts"].items():
        assert path in html and artifact["sha256"] in html
    assert "not signed yet" not in html


@pytest.mark.parametrize(
    "victim", ["image/1.root.json", "inputs/offers/bob.offer.json", "ceremony.json"]
)
def test_an_altered_artifact_fails_verification(finished: Path, victim: str) -> None:
    path = finished / victim
    path.write_bytes(path.read_bytes() + b" ")
    failures = failed(finished)
    assert f"SHA-256 differs: {victim}" in failures["every artifact is present and unchanged"]


def test_a_missing_or_extra_file_fails_verification(finished: Path) -> None:
    (finished / "inputs/signatures/carol.sig.json").unlink()
    (finished / "image/9.root.json").write_text("{}")
    detail = failed(finished)["every artifact is present and unchanged"]
    assert "missing inputs/signatures/carol.sig.json" in detail
    assert "not in the transcript: image/9.root.json" in detail


def test_an_edited_record_fails_its_signatures(finished: Path) -> None:
    doc = json.loads((finished / TRANSCRIPT_FILE).read_text())
    doc["transcript"]["location"] = "somewhere else"
    (finished / TRANSCRIPT_FILE).write_text(json.dumps(doc))
    failures = failed(finished)
    assert "differs at 'location'" in failures["record and transcript rebuilt from the inputs"]
    assert "does not verify" in failures["every officer signed the transcript"]


def test_a_transcript_not_signed_by_every_officer_fails(finished: Path) -> None:
    doc = json.loads((finished / TRANSCRIPT_FILE).read_text())
    doc["signatures"] = doc["signatures"][:2]
    (finished / TRANSCRIPT_FILE).write_text(json.dumps(doc))
    assert "not signed by carol" in failed(finished)["every officer signed the transcript"]


def test_another_installed_tool_is_reported(finished: Path) -> None:
    doc = json.loads((finished / TRANSCRIPT_FILE).read_text())
    assert (
        doc["transcript"]["tool"]["packages"]["airlock.ceremony"]
        == tool_record()["packages"]["airlock.ceremony"]
    )
    doc["transcript"]["tool"]["packages"]["airlock.ceremony"] = "0" * 64
    (finished / TRANSCRIPT_FILE).write_text(json.dumps(doc))
    assert (
        "package SHA-256 differs"
        in failed(finished)["the installed tool is the one that ran the ceremony"]
    )


def test_sealing_refuses_a_signature_over_another_transcript(
    tmp_path: Path, flow_clock: Any, initial_flow: Flow
) -> None:
    other = run_ceremony(tmp_path, flow_clock, "other")
    stray = other.media("alice.transcript-sig.json")
    target = tmp_path / "copy"
    shutil.copytree(initial_flow.out(), target)
    doc = json.loads((target / TRANSCRIPT_FILE).read_text())
    doc["signatures"] = []
    (target / TRANSCRIPT_FILE).write_text(json.dumps(doc))
    before = (target / TRANSCRIPT_FILE).read_bytes()
    with (
        StepLog(other.workspace.directory, other.workspace.audit_db, flow_clock) as log,
        pytest.raises(IntegrityError, match="signs another transcript"),
    ):
        seal_transcript(target, [stray], log)
    assert (target / TRANSCRIPT_FILE).read_bytes() == before


def test_the_printable_page_is_the_one_the_signed_record_renders(initial_flow: Flow) -> None:
    on_disk = (initial_flow.out() / HTML_FILE).read_bytes()
    assert render_html(read_transcript(initial_flow.out())).encode("utf-8") == on_disk
    assert render_html(read_transcript(initial_flow.out())) == render_html(
        read_transcript(initial_flow.out())
    )


@pytest.mark.parametrize(
    "edit",
    [
        lambda html: html.replace("Test lab, room 1", "Somewhere else"),
        lambda html: html.replace("wendy", "mallory"),
        lambda html: html + "\n",
    ],
    ids=["location", "witness", "trailing-newline"],
)
def test_an_edited_printable_page_fails_verification(finished: Path, edit: Any) -> None:
    page = finished / HTML_FILE
    page.write_text(edit(page.read_text()))
    detail = failed(finished)["transcript.html is rendered from the signed record"]
    assert HTML_FILE in detail and "differs" in detail


def test_a_missing_printable_page_fails_verification(finished: Path) -> None:
    (finished / HTML_FILE).unlink()
    detail = failed(finished)["transcript.html is rendered from the signed record"]
    assert f"{HTML_FILE} is missing" in detail
