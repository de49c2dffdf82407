"""``airlock spoke identity export-age``: the site's identity for stock ``age -d -i``.

The file is checked with the stock tools themselves (Debian's ``age`` and
``age-keygen``): ``age-keygen -y`` reads it back to the site's recipient, and
``age -d -i`` decrypts what stock ``age -r`` encrypted to that recipient.
Refusals write nothing, follow no link and are audited; the key never reaches
the audit log or the output.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
from pathlib import Path

import pytest
from click.testing import Result
from helpers.spokeenv import SITE_PASSPHRASE, Invoke

from airlock.bundles.audit import AuditLog
from airlock.spoke.site import IDENTITY_FILE, SpokeHome

ACTION = "spoke.identity.export-age"


def recipient_of(spoke: SpokeHome) -> str:
    return str(json.loads((spoke.path / IDENTITY_FILE).read_text())["age_recipient"])


def last_entry(spoke: SpokeHome) -> tuple[str, str, dict[str, object]]:
    entry = AuditLog(spoke.engine, "spoke").entries()[-1]
    return entry.action, entry.outcome, json.loads(entry.details)


def export_age(
    airlock: Invoke,
    spoke: SpokeHome,
    out: Path,
    *extra: str,
    passphrase: str | None = SITE_PASSPHRASE,
) -> Result:
    home = str(spoke.path)
    args = ("spoke", "identity", "export-age", "--home", home, "--out", str(out), *extra)
    return airlock(*args, passphrase=passphrase)


def test_stock_age_decrypts_with_the_exported_identity(
    airlock: Invoke, spoke: SpokeHome, tmp_path: Path
) -> None:
    key = tmp_path / "site-key.txt"
    result = export_age(airlock, spoke, key)
    assert result.exit_code == 0, result.stderr
    recipient = recipient_of(spoke)
    assert result.stdout == f"wrote the site's age identity to {key} (public key {recipient})\n"
    assert "in plaintext" in result.stderr and f"shred -u {key}" in result.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600

    created, public, secret = key.read_text().splitlines()
    assert re.fullmatch(r"# created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created)
    assert public == f"# public key: {recipient}"
    assert re.fullmatch(r"AGE-SECRET-KEY-1[0-9A-Z]{58}", secret)
    keygen = subprocess.run(["age-keygen", "-y", str(key)], capture_output=True, text=True)
    assert keygen.stdout.strip() == recipient, keygen.stderr

    plain = tmp_path / "volume.tar"
    plain.write_bytes(b"what a data volume holds\n" * 1000)
    sealed = tmp_path / "volume.age"
    subprocess.run(["age", "-r", recipient, "-o", str(sealed), str(plain)], check=True)
    opened = subprocess.run(["age", "-d", "-i", str(key), str(sealed)], capture_output=True)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == plain.read_bytes()

    action, outcome, details = last_entry(spoke)
    assert (action, outcome) == (ACTION, "success")
    assert details["path"] == str(key) and details["recipient"] == recipient
    everything = json.dumps([e.details for e in AuditLog(spoke.engine, "spoke").entries()])
    assert "AGE-SECRET-KEY" not in everything and secret not in result.output


def test_json_keeps_stdout_one_document_and_warns_on_stderr(
    airlock: Invoke, spoke: SpokeHome, tmp_path: Path
) -> None:
    key = tmp_path / "site-key.txt"
    result = export_age(airlock, spoke, key, "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["path"] == str(key) and document["recipient"] == recipient_of(spoke)
    assert "in plaintext" in result.stderr


def test_an_existing_file_is_never_overwritten(
    airlock: Invoke, spoke: SpokeHome, tmp_path: Path
) -> None:
    key = tmp_path / "site-key.txt"
    key.write_text("someone else's file\n")
    result = export_age(airlock, spoke, key)
    assert result.exit_code == 3, result.stderr
    assert "already exists" in result.stderr.splitlines()[0]
    assert key.read_text() == "someone else's file\n"
    action, outcome, details = last_entry(spoke)
    assert (action, outcome, details["error"]) == (ACTION, "failure", "ConflictError")


@pytest.mark.parametrize("target_exists", [True, False])
def test_a_symbolic_link_is_never_followed(
    airlock: Invoke, spoke: SpokeHome, tmp_path: Path, target_exists: bool
) -> None:
    target = tmp_path / "elsewhere" / "authorized_keys"
    target.parent.mkdir()
    if target_exists:
        target.write_text("untouched\n")
    link = tmp_path / "site-key.txt"
    link.symlink_to(target)
    result = export_age(airlock, spoke, link)
    assert result.exit_code == 3, result.stderr
    assert link.is_symlink()
    if target_exists:
        assert target.read_text() == "untouched\n"
    else:
        assert not target.exists()


def test_a_wrong_passphrase_writes_nothing_and_is_audited(
    airlock: Invoke, spoke: SpokeHome, tmp_path: Path
) -> None:
    key = tmp_path / "site-key.txt"
    result = export_age(airlock, spoke, key, passphrase="not the site passphrase")
    assert result.exit_code == 4, result.stderr
    assert "wrong passphrase" in result.stderr
    assert not key.exists()
    action, outcome, details = last_entry(spoke)
    assert (action, outcome, details["error"]) == (ACTION, "failure", "SecretError")


def test_a_missing_directory_is_a_media_error(
    airlock: Invoke, spoke: SpokeHome, tmp_path: Path
) -> None:
    result = export_age(airlock, spoke, tmp_path / "no-such-dir" / "site-key.txt")
    assert result.exit_code == 5, result.stderr
    assert not (tmp_path / "no-such-dir").exists()
