"""``airlock spoke init``: a new home, real site keys, and trust only in threshold-signed roots."""

from __future__ import annotations

import hashlib
import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.hubenv import HUB_TIME
from helpers.spokeenv import (
    DOCUMENTED_EXIT_CODES,
    Invoke,
    World,
    assert_error_output,
    table_rows,
)
from tuf.api.metadata import Metadata, Root

from airlock.bundles import tuf as tufrepo
from airlock.bundles.audit import AuditLog, verify_engine
from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import (
    AirlockError,
    ConflictError,
    MediaError,
    SecretError,
    SignatureError,
    TrustError,
    UsageError,
)
from airlock.bundles.keys import KeyStore
from airlock.hub.sites import add_site_from_file, list_sites
from airlock.spoke.site import (
    AGE_IDENTITY_FILE,
    IDENTITY_FILE,
    SIGNING_KEY_FILE,
    SIGNING_KEYREF_FILE,
    SpokeHome,
)
from airlock.spoke.status import read_status

NEW_PASSPHRASE = "a new site passphrase"


def init_args(world: World, home: Path, site_id: str = "plant-3") -> list[str]:
    return [
        "spoke",
        "init",
        "--home",
        str(home),
        "--site-id",
        site_id,
        "--image-root",
        str(world.ceremony.image_root),
        "--director-root",
        str(world.ceremony.director_root),
    ]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_init_json_creates_the_home_and_prints_the_site_identity(
    world: World, airlock: Invoke, tmp_path: Path
) -> None:
    home = tmp_path / "site" / "spoke-home"
    result = airlock(*init_args(world, home), "--json", passphrase=NEW_PASSPHRASE)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)

    identity = json.loads((home / IDENTITY_FILE).read_text())
    assert report["home"] == str(home) and report["identity"] == identity
    assert identity["site_id"] == "plant-3" and identity["age_recipient"].startswith("age1")
    records = world.ceremony.record.roots
    assert report["root_sha256"] == {
        "image": sha256_of(world.ceremony.image_root),
        "director": sha256_of(world.ceremony.director_root),
    }
    assert report["root_sha256"] == {repo: rec.sha256 for repo, rec in records.items()}

    for secret in (AGE_IDENTITY_FILE, SIGNING_KEY_FILE):
        assert stat.S_IMODE((home / secret).stat().st_mode) == 0o600
    assert b"AGE-SECRET-KEY" not in (home / AGE_IDENTITY_FILE).read_bytes()
    spoke = SpokeHome(home, lambda _name: NEW_PASSPHRASE)
    assert str(spoke.age_identity().to_public()) == identity["age_recipient"]
    signing = spoke.signing_key()
    assert signing.keyid == identity["signing_key"]["keyid"]
    assert json.loads((home / SIGNING_KEYREF_FILE).read_text())["uri"].endswith(SIGNING_KEY_FILE)
    KeyStore(home, lambda _name: NEW_PASSPHRASE).signer(signing)  # opens with the passphrase

    status = read_status(spoke)
    assert (status.site_id, status.last_sequence, status.staged, status.assigned) == (
        "plant-3",
        0,
        [],
        [],
    )
    assert (status.image_root_version, status.director_root_version) == (1, 1)
    assert spoke.require_encryption is True
    log = AuditLog(spoke.engine, "spoke").entries()
    assert [(e.action, e.outcome, e.object) for e in log] == [("spoke.init", "success", "plant-3")]
    assert json.loads(log[0].details)["image_root_sha256"] == records["image"].sha256
    assert verify_engine(spoke.engine).ok

    hub = world.new_hub(tmp_path / "hub", FixedClock(HUB_TIME))
    try:  # what init wrote is exactly what the hub needs to register the site
        add_site_from_file(hub, home / IDENTITY_FILE)
        assert [s.site_id for s in list_sites(hub)] == ["plant-3", "plant-7", "plant-9"]
    finally:
        hub.close()
    spoke.engine.dispose()


def test_init_prompts_twice_for_a_new_passphrase_and_prints_a_table(
    world: World, airlock: Invoke, tmp_path: Path
) -> None:
    home = tmp_path / "spoke-home"
    typed = f"{NEW_PASSPHRASE}\n{NEW_PASSPHRASE}\n"
    result = airlock(*init_args(world, home), "--allow-unencrypted", passphrase=None, input=typed)
    assert result.exit_code == 0, result.stderr

    assert "New site passphrase" in result.stderr and "Repeat for confirmation" in result.stderr
    assert NEW_PASSPHRASE not in result.stdout + result.stderr
    identity = json.loads((home / IDENTITY_FILE).read_text())
    out = result.stdout
    assert f"spoke home created: {home}" in out
    assert "site plant-3: give these to the hub (site-identity.json)" in out
    rows = table_rows(out)
    assert ["age recipient", identity["age_recipient"]] in rows
    assert ["signing key id", identity["signing_key"]["keyid"]] in rows
    assert ["image root sha256", sha256_of(world.ceremony.image_root)] in rows
    assert ["director root sha256", sha256_of(world.ceremony.director_root)] in rows
    assert "Compare the root SHA-256 values with the ceremony record" in out
    spoke = SpokeHome(home)
    assert spoke.require_encryption is False
    KeyStore(home, lambda _name: NEW_PASSPHRASE).signer(spoke.signing_key())


def _single_signature(world: World, tmp_path: Path) -> list[str]:
    md = Metadata[Root].from_bytes(world.ceremony.image_root.read_bytes())
    first = next(iter(md.signatures))
    md.signatures = {first: md.signatures[first]}
    path = tmp_path / "under-signed-image-root.json"
    path.write_bytes(tufrepo.to_bytes(md))
    return ["--image-root", str(path)]


REFUSALS: dict[str, tuple[Callable[[World, Path], list[str]], type[AirlockError], str]] = {
    "invalid-site-id": (lambda w, t: ["--site-id", "Plant_7"], UsageError, "invalid site id"),
    "root-below-threshold": (_single_signature, SignatureError, "not signed by a threshold"),
    "roots-swapped": (
        lambda w, t: [
            "--image-root",
            str(w.ceremony.director_root),
            "--director-root",
            str(w.ceremony.image_root),
        ],
        TrustError,
        "anchors no envelope key",
    ),
    "same-root-twice": (
        lambda w, t: ["--image-root", str(w.ceremony.director_root)],
        TrustError,
        "the same file",
    ),
    "missing-root": (
        lambda w, t: ["--image-root", str(t / "no-such-root.json")],
        MediaError,
        "does not exist",
    ),
    "targets-not-root": (
        lambda w, t: ["--director-root", str(w.ceremony.image_targets)],
        MediaError,
        "is not root metadata",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_init_refuses_bad_input_and_creates_nothing(
    world: World, airlock: Invoke, tmp_path: Path, case: str
) -> None:
    make_args, expected, message = REFUSALS[case]
    parent = tmp_path / "site"
    parent.mkdir()
    args = [*init_args(world, parent / "spoke-home"), *make_args(world, tmp_path)]
    result = airlock(*args, passphrase=NEW_PASSPHRASE)
    assert result.exit_code == DOCUMENTED_EXIT_CODES[expected] == expected.exit_code
    assert_error_output(result.stderr, message)
    assert list(parent.iterdir()) == [], "nothing, not even a staging directory, is left"


def test_init_refuses_a_short_passphrase(world: World, airlock: Invoke, tmp_path: Path) -> None:
    result = airlock(*init_args(world, tmp_path / "spoke-home"), passphrase="short")
    assert result.exit_code == DOCUMENTED_EXIT_CODES[SecretError]
    assert_error_output(result.stderr, "passphrase is too short")
    assert not (tmp_path / "spoke-home").exists()


def test_init_refuses_a_directory_that_is_not_empty(
    world: World, airlock: Invoke, tmp_path: Path
) -> None:
    home = tmp_path / "busy"
    home.mkdir()
    (home / "notes.txt").write_text("the admin's notes")
    result = airlock(*init_args(world, home), passphrase=NEW_PASSPHRASE)
    assert result.exit_code == DOCUMENTED_EXIT_CODES[ConflictError]
    assert_error_output(result.stderr, "is not empty")
    assert [p.name for p in home.iterdir()] == ["notes.txt"]
    assert (home / "notes.txt").read_text() == "the admin's notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]
