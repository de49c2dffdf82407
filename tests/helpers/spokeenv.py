"""A real ceremony, hub and spoke for the spoke and end-to-end tests, and the one refusal check.

:func:`build_world` makes the session templates once: a ceremony (2-of-3
roots), a spoke home for ``plant-7`` (real age identity, passphrase-protected
with scrypt), and a hub that registered that spoke from its
``site-identity.json`` plus a second site ``plant-9``, released three model
versions and assigned two of them to ``plant-7``. Tests copy the templates
(:meth:`World.new_hub`, :meth:`World.new_spoke`) instead of recreating them.

:func:`assert_refused_unchanged` is the single place that says what a refused
import must leave behind: the documented error class and exit code, a hint,
no changed file and no changed row, no scratch left in ``HOME/tmp``, no
format-2 import state left but one the refusal says it kept, exactly one new
audit entry for the refusal, and an intact audit chain.

Only time (:class:`FixedClock`) and the medium (files on disk) are faked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlmodel import Session, SQLModel, select

from airlock.bundles.audit import AuditLog, verify_engine
from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import (
    EXIT_CODES,
    AirlockError,
    AttestationError,
    ConflictError,
    DecryptionError,
    FreshnessError,
    GateError,
    IntegrityError,
    MediaError,
    NotFoundError,
    SecretError,
    SignatureError,
    StaleBundleError,
    StorageError,
    TrustError,
    UnsafeArchiveError,
    UsageError,
    VerificationError,
    WrongSiteError,
)
from airlock.ceremony.minimal import CeremonyResult
from airlock.hub.context import HubContext, open_hub
from airlock.hub.export import assign
from airlock.hub.intake import add_model
from airlock.hub.sites import add_site, add_site_from_file
from airlock.spoke.importing import ImportResult, import_bundle, list_pending
from airlock.spoke.site import (
    IDENTITY_FILE,
    PASSPHRASE_ENV,
    DirectorAssignment,
    SpokeHome,
    SpokeState,
    StagedModel,
    TrustedMetadataFile,
    init_spoke,
)
from helpers.hubenv import HUB_TIME, hub_secrets, make_ceremony, make_hub
from helpers.identities import SiteKeys, make_site
from helpers.onnx_models import make_onnx_model

SITE_ID = "plant-7"
OTHER_SITE_ID = "plant-9"
SITE_PASSPHRASE = "site test passphrase"
SPOKE_INIT_TIME = HUB_TIME - dt.timedelta(minutes=5)
"""When the template spoke was initialised: its first time floor."""
SPOKE_TIME = HUB_TIME + dt.timedelta(minutes=20)
"""The spoke's clock in tests: after every bundle the hub makes, before the real now."""
LOCK_FILE = "import.lock"
PENDING_DIR = "staging/imports/"
"""Where format-2 imports keep their resumable state (relative to the home)."""
IMPORT_ACTION = "spoke.import"
AIRLOCK = Path(sys.executable).parent / "airlock"

Invoke = Callable[..., Result]
"""``airlock ARGS…`` run in-process by click's ``CliRunner`` (the ``airlock`` fixture)."""

DOCUMENTED_EXIT_CODES: dict[type[AirlockError], int] = {
    AirlockError: 1,
    UsageError: 3,
    NotFoundError: 3,
    ConflictError: 3,
    SecretError: 4,
    MediaError: 5,
    StorageError: 7,
    VerificationError: 10,
    SignatureError: 11,
    IntegrityError: 12,
    UnsafeArchiveError: 13,
    FreshnessError: 14,
    StaleBundleError: 14,
    WrongSiteError: 15,
    TrustError: 16,
    DecryptionError: 17,
    GateError: 18,
    AttestationError: 19,
}
"""The exit codes documented in docs/exit-codes.md, by error class."""

SPOKE_TABLES: tuple[type[SQLModel], ...] = (
    SpokeState,
    TrustedMetadataFile,
    StagedModel,
    DirectorAssignment,
)


def site_secrets(_name: str) -> str:
    """The secrets handler tests give the spoke (the CLI would prompt)."""
    return SITE_PASSPHRASE


class RecordingSecrets:
    """The spoke's secrets handler in tests: gives the site passphrase, records each request.

    An empty :attr:`asked` after an import proves the site's age identity was never
    unlocked, so nothing was decrypted.
    """

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, name: str) -> str:
        self.asked.append(name)
        return site_secrets(name)


def spoke_clock(when: dt.datetime = SPOKE_TIME) -> FixedClock:
    """A spoke clock for one import."""
    return FixedClock(when)


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- the session templates ----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSource:
    """A model version as the release engineer handed it to the hub."""

    name: str
    version: str
    path: Path

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    def files(self) -> list[Path]:
        """The files of the model (one ``.onnx`` file, or every file of the directory)."""
        return sorted(self.path.iterdir()) if self.path.is_dir() else [self.path]


@dataclass(frozen=True)
class World:
    """The session templates; copy them with :meth:`new_hub` and :meth:`new_spoke`."""

    ceremony: CeremonyResult
    hub_template: Path
    spoke_template: Path
    other_site: SiteKeys
    sources: dict[str, ModelSource]

    def new_hub(self, dest: Path, clock: FixedClock) -> HubContext:
        """A copy of the template hub at ``dest``, opened with ``clock``."""
        shutil.copytree(self.hub_template, dest, symlinks=True)
        return open_hub(dest, hub_secrets, clock=clock)

    def new_spoke(
        self, dest: Path, secrets: Callable[[str], str] | None = site_secrets
    ) -> SpokeHome:
        """A copy of the template spoke (initialised, nothing imported) at ``dest``."""
        shutil.copytree(self.spoke_template, dest, symlinks=True)
        return SpokeHome(dest, secrets)

    def source_digests(self, *refs: str) -> dict[str, str]:
        """SHA-256 → bytes' origin (``ref/file``) of every file of the given model versions."""
        return {
            sha256_file(f): f"{ref}/{f.name}" for ref in refs for f in self.sources[ref].files()
        }


def build_world(base: Path) -> World:
    """Builds the templates under ``base`` (a fresh directory); see the module docstring."""
    ceremony = make_ceremony(base / "ceremony")
    spoke_home = base / "spoke-template"
    init_spoke(
        spoke_home,
        SITE_ID,
        ceremony.image_root,
        ceremony.director_root,
        SITE_PASSPHRASE,
        clock=FixedClock(SPOKE_INIT_TIME),
    )
    models = base / "models"
    sources = {
        s.ref: s
        for s in (
            ModelSource("classifier", "1", make_onnx_model(models / "c1" / "classifier.onnx")),
            ModelSource(
                "classifier", "2", make_onnx_model(models / "c2" / "classifier.onnx", seed=5)
            ),
            ModelSource(
                "detector",
                "1",
                make_onnx_model(
                    models / "d1" / "model.onnx", external_data=True, seed=3, width=100_000
                ).parent,
            ),
        )
    }
    other_site = make_site(OTHER_SITE_ID)
    hub = make_hub(base / "hub-template", ceremony.out_dir, FixedClock(HUB_TIME))
    try:
        add_site_from_file(hub, spoke_home / IDENTITY_FILE)
        add_site(hub, other_site.identity)
        for source in sources.values():
            add_model(hub, source.name, source.version, source.path)
        assign(hub, SITE_ID, "classifier", "1")
        assign(hub, SITE_ID, "detector", "1")
        assign(hub, OTHER_SITE_ID, "classifier", "1")
    finally:
        hub.close()
    return World(ceremony, base / "hub-template", spoke_home, other_site, sources)


# --- what a refused import must leave behind ----------------------------------------------------


def home_digest(home: SpokeHome) -> dict[str, str]:
    """Relative path → SHA-256 of every file of a spoke home but its database and import lock."""
    return {
        str(p.relative_to(home.path)): sha256_file(p)
        for p in sorted(home.path.rglob("*"))
        if p.is_file() and not p.name.startswith("spoke.db") and p.name != LOCK_FILE
    }


def dump_rows(home: SpokeHome) -> dict[str, list[dict[str, Any]]]:
    """Every row of the spoke's state tables (not the audit log), in a stable order."""
    with Session(home.engine) as session:
        return {
            str(model.__tablename__): sorted(
                (row.model_dump() for row in session.exec(select(model))), key=repr
            )
            for model in SPOKE_TABLES
        }


def pending_imports(home: SpokeHome) -> frozenset[str]:
    """The bundle ids of the format-2 imports whose resumable state the spoke keeps."""
    found, broken = list_pending(home)
    assert broken == [], f"unreadable import states: {broken}"
    return frozenset(p.bundle_id for p in found)


def _outside_pending(files: dict[str, str]) -> dict[str, str]:
    return {name: digest for name, digest in files.items() if not name.startswith(PENDING_DIR)}


@dataclass(frozen=True)
class SpokeSnapshot:
    """What a spoke looked like before an import: files, rows, audit log length, import states."""

    files: dict[str, str]
    rows: dict[str, list[dict[str, Any]]]
    audit_entries: int
    pending: frozenset[str] = frozenset()


def take_snapshot(home: SpokeHome) -> SpokeSnapshot:
    """Records the spoke's files, rows, audit log length and pending format-2 imports."""
    return SpokeSnapshot(
        home_digest(home),
        dump_rows(home),
        AuditLog(home.engine, "spoke").count(),
        pending_imports(home),
    )


def assert_refused_unchanged(
    home: SpokeHome,
    before: SpokeSnapshot,
    expected: type[AirlockError],
    error: AirlockError | None = None,
    exit_code: int | None = None,
) -> None:
    """The one check of a refused import, from the API (``error``) or the CLI (``exit_code``).

    Asserts: the error is exactly ``expected`` with its documented exit code and a
    hint; no file of the home (staged blobs, keys, config) and no row of the state
    tables changed; ``HOME/tmp`` holds nothing but the import lock; exactly one
    audit entry was appended, a "refused" (verification) or "failure" (anything
    else) ``spoke.import`` naming the error; the audit chain verifies; and no
    format-2 import state (``HOME/staging/imports``) is left but the refused
    bundle's, when its audit entry says the state was kept for a retry (never
    after a verification failure).
    """
    documented = DOCUMENTED_EXIT_CODES[expected]
    assert documented in EXIT_CODES.values()
    if error is not None:
        assert type(error) is expected, f"expected {expected.__name__}, got {error!r}"
        assert error.exit_code == documented
        assert error.message and error.hint, "a refusal must say what failed and what to do"
    if exit_code is not None:
        assert exit_code == documented
    after = home_digest(home)
    changed = _outside_pending(after) != _outside_pending(before.files)
    assert not changed, "a refused import changed files of the home"
    assert dump_rows(home) == before.rows, "a refused import changed the spoke's state"
    leftovers = sorted(p.name for p in home.tmp_dir.iterdir())
    assert leftovers in ([], [LOCK_FILE]), f"scratch left behind in {home.tmp_dir}: {leftovers}"
    entries = AuditLog(home.engine, "spoke").entries()
    assert len(entries) == before.audit_entries + 1, "exactly one audit entry per refusal"
    last = entries[-1]
    outcome = "refused" if issubclass(expected, VerificationError) else "failure"
    assert (last.action, last.outcome, last.site) == (IMPORT_ACTION, outcome, SITE_ID)
    details = json.loads(last.details)
    assert details["error"] == expected.__name__
    if error is not None:
        assert details["message"] == error.message
    kept = {last.object} if details.get("state") == "kept" else set()
    pending = pending_imports(home)
    assert kept <= pending, "the audit entry says the import state was kept; it is not there"
    assert pending <= before.pending | kept, f"a refused import left state behind: {pending}"
    if issubclass(expected, VerificationError):
        assert last.object not in pending, "a refused bundle's import state was kept"
    if pending == before.pending and not kept:
        assert after == before.files, "a refused import changed an import state"
    report = verify_engine(home.engine)
    assert report.ok and report.entries == len(entries), report.problem


def refuse_import(
    home: SpokeHome,
    bundle: Path,
    expected: type[AirlockError],
    match: str,
    clock: FixedClock | None = None,
) -> AirlockError:
    """Imports ``bundle`` expecting ``expected`` (message matching ``match``); checks the aftermath.

    Returns:
        The error, for further checks by the test.
    """
    before = take_snapshot(home)
    with pytest.raises(expected, match=match) as caught:
        import_bundle(home, bundle, clock or spoke_clock())
    assert_refused_unchanged(home, before, expected, error=caught.value)
    return caught.value


def accept_import(home: SpokeHome, bundle: Path, clock: FixedClock | None = None) -> ImportResult:
    """Imports ``bundle`` and checks the success is audited and the scratch space is empty."""
    entries = AuditLog(home.engine, "spoke").count()
    result = import_bundle(home, bundle, clock or spoke_clock())
    log = AuditLog(home.engine, "spoke").entries()
    assert len(log) == entries + 1
    assert (log[-1].action, log[-1].outcome, log[-1].object) == (
        IMPORT_ACTION,
        "success",
        result.bundle_id,
    )
    assert sorted(p.name for p in home.tmp_dir.iterdir()) == [LOCK_FILE]
    assert verify_engine(home.engine).ok
    return result


# --- the real command line ----------------------------------------------------------------------


def run_airlock(
    *args: str, passphrase: str | None = SITE_PASSPHRASE, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs ``.venv/bin/airlock`` with a clean Airlock environment and the site passphrase."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    env.update({"AIRLOCK_PRINCIPAL": "site-admin", "COLUMNS": "200", "NO_COLOR": "1"})
    if passphrase is not None:
        env[PASSPHRASE_ENV] = passphrase
    return subprocess.run(
        [str(AIRLOCK), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def cli_refuse_import(
    home: SpokeHome, bundle: Path, expected: type[AirlockError], match: str
) -> subprocess.CompletedProcess[str]:
    """``airlock spoke import`` of ``bundle`` in a real process, expected to be refused.

    Checks the process exit code, that standard error names what failed (``match``,
    a plain substring of the message) and what to do, that nothing went to standard
    output, and everything :func:`assert_refused_unchanged` checks.
    """
    before = take_snapshot(home)
    proc = run_airlock("spoke", "import", "--home", str(home.path), str(bundle))
    first, *rest = proc.stderr.splitlines() or [""]
    assert first.startswith("error: ") and match in proc.stderr, proc.stderr
    assert any(line.startswith("  what to do: ") and len(line) > 16 for line in rest), proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert_refused_unchanged(home, before, expected, exit_code=proc.returncode)
    return proc


def table_rows(text: str) -> list[list[str]]:
    """The cells of every body row of the rich tables in a command's output."""
    return [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in text.splitlines()
        if line.startswith("│")
    ]


def assert_error_output(stderr: str, message: str) -> None:
    """The CLI's error format: one ``error:`` line naming what failed, then ``what to do:``."""
    lines = stderr.splitlines()
    assert lines and lines[0].startswith("error: ") and message in lines[0], stderr
    assert len(lines) >= 2 and lines[1].startswith("  what to do: ") and lines[1][14:], stderr
