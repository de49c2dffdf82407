"""Every documented exit code through the real ``airlock`` command line (docs/exit-codes.md).

One table, one row per situation: the command line, the exit code, a piece of
the ``error:`` line; every refusal must also print ``  what to do:`` with a
hint. A few rows run again with ``--json`` and must print one JSON error
document on standard output. Adding a row is one line in :data:`ROWS`.

``airlock ceremony status`` exits 20 (a role is due for re-signing) and 21 (a
role expired) by design without an error line: those two codes have their own
test, which checks the code and the printed state. A last test reads the table
of docs/exit-codes.md and fails when a documented code has no row here.

Code 1 is "an unexpected failure": a bug has no honest trigger, so its row is
the one documented refusal that exits 1 — the database server cannot be
reached (site-admin.md). Only time (``FixedClock``, and ``SystemClock.now``
for ``ceremony status``), the medium and the disks are faked: the storage rows
run on a real tmpfs or a real read-only bind mount (:mod:`helpers.smalldisk`,
skipped without root). The module takes 25-60 s on a shared machine: it is ``slow``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers.bundlecraft import (
    blob_entries,
    edit_envelope,
    flip_byte,
    forge_bundle,
    forge_raw_bundle,
    link,
    metadata_entries,
    resign_director_snapshot,
)
from helpers.gatemodels import make_opset_model, release, ship
from helpers.hubenv import HUB_PASSPHRASE
from helpers.metricsenv import MetricsSite
from helpers.smalldisk import read_only_file, remount, small_tmpfs
from helpers.spokeenv import OTHER_SITE_ID, SITE_ID, SITE_PASSPHRASE, World
from helpers.v2env import big_bundle
from sqlalchemy import text
from tuf.api.metadata import Snapshot

from airlock.bundles import tuf as tufrepo
from airlock.bundles.cli import main
from airlock.bundles.clock import FixedClock, SystemClock
from airlock.bundles.errors import EXIT_CODES
from airlock.bundles.release import Compatibility
from airlock.ceremony import documents as schedule
from airlock.hub.context import HubContext
from airlock.hub.export import export, plan_export
from airlock.hub.fleet import import_metrics
from airlock.node.runtime import max_supported_opset
from airlock.spoke.site import PASSPHRASE_ENV, SpokeHome

pytestmark = pytest.mark.slow

DOCS = Path(__file__).resolve().parents[2] / "docs" / "exit-codes.md"
MiB = 1 << 20


@dataclass(frozen=True)
class Situation:
    """What a row sets up: the hub, the spoke and the medium it may write to.

    ``stack`` undoes what a row mounted, after the command ran; ``request``
    gives a row the fixtures only it needs.
    """

    world: World
    hub: HubContext
    spoke: SpokeHome
    media: Path
    tmp: Path
    stack: contextlib.ExitStack
    request: pytest.FixtureRequest

    def bundle(self, name: str = "bundle") -> Path:
        """A genuine bundle for the test site."""
        out = self.media / name
        export(self.hub, SITE_ID, out)
        return out

    def import_args(self, bundle: Path) -> list[str]:
        """``spoke import`` of ``bundle`` into the test spoke."""
        return ["spoke", "import", "--home", str(self.spoke.path), str(bundle)]

    @property
    def hub_clock(self) -> FixedClock:
        """The hub's clock (rows move it)."""
        clock = self.hub.clock
        assert isinstance(clock, FixedClock)
        return clock


Make = Callable[[Situation], list[str]]


def _ok(s: Situation) -> list[str]:
    return ["spoke", "status", "--home", str(s.spoke.path)]


def _click_usage(s: Situation) -> list[str]:
    return ["spoke", "import", "--home", str(s.spoke.path)]  # no BUNDLE argument


def _usage(s: Situation) -> list[str]:
    return ["spoke", "status", "--home", str(s.media / "not-a-home")]


def _missing_bundle(s: Situation) -> list[str]:
    return s.import_args(s.media / "no-such-bundle")


def _missing_model_file(s: Situation) -> list[str]:
    return ["hub", "model", "add", "iris", "9", str(s.media / "no-such-model.onnx"),
            "--home", str(s.hub.home.root)]  # fmt: skip


def _edited_envelope(s: Situation) -> list[str]:
    out = s.bundle()
    edit_envelope(out, lambda doc: doc["signed"].update(sequence=99))
    return s.import_args(out)


def _flipped_byte(s: Situation) -> list[str]:
    """One bit of the per-site part (``site.age``), whose SHA-256 the envelope signs."""
    out = s.bundle()
    flip_byte(out / "site.age", os.path.getsize(out / "site.age") // 2)
    return s.import_args(out)


def _symlink(s: Situation) -> list[str]:
    plan = plan_export(s.hub, SITE_ID)
    evil = link(f"blobs/sha256/{plan.blobs[0].sha256}", "/etc/shadow", tarfile.SYMTYPE)
    out = s.media / "symlink"
    forge_raw_bundle(s.hub, plan, out, [*metadata_entries(plan), evil, *blob_entries(plan)])
    return s.import_args(out)


def _expired(s: Situation) -> list[str]:
    s.hub_clock.advance(dt.timedelta(days=-31))
    return s.import_args(s.bundle())


def _missing_volume(s: Situation) -> list[str]:
    bundle = big_bundle(s.hub, s.media / "volumes", s.tmp / "models")
    bundle.path(bundle.data_volumes()[-1]).unlink()
    return s.import_args(bundle.root)


def _other_site(s: Situation) -> list[str]:
    out = s.media / "other-site"
    export(s.hub, OTHER_SITE_ID, out)
    return s.import_args(out)


def _other_recipient(s: Situation) -> list[str]:
    plan = plan_export(s.hub, SITE_ID)
    out = s.media / "other-recipient"
    forge_bundle(s.hub, plan, out, recipients=[s.world.other_site.identity.age_recipient])
    return s.import_args(out)


UNREACHABLE_DATABASE = "postgresql+psycopg://postgres@/airlock?host=/nonexistent/no-server"
"""A PostgreSQL server that is not there (a socket directory that does not exist)."""


def _audit_unwritable(s: Situation) -> list[str]:
    """The database file is on a read-only mount: it opens and reads, no entry can be appended.

    The bundle is missing (exit 5 alone); the refusal's audit entry cannot be
    written, and that is what the command reports.
    """
    s.stack.enter_context(read_only_file(s.spoke.path / "spoke.db"))
    return s.import_args(s.media / "no-such-bundle")


def _read_only_home(s: Situation) -> list[str]:
    bundle = s.bundle()
    disk = s.stack.enter_context(small_tmpfs(s.tmp / "disk", 6 * MiB))
    home = s.world.new_spoke(disk / "spoke")
    remount(disk, read_only=True)
    s.stack.callback(remount, disk, False)
    return ["spoke", "import", "--home", str(home.path), str(bundle)]


def _pre_migration_database(s: Situation) -> list[str]:
    """The spoke's database as the release before schema migrations left it: no version."""
    with s.spoke.engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
    s.spoke.engine.dispose()
    return _ok(s)


def _altered_audit_log(s: Situation) -> list[str]:
    with s.spoke.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET principal = 'mallory' WHERE seq = 1"))
    s.spoke.engine.dispose()
    return ["audit", "verify", "--home", str(s.spoke.path)]


def _snapshot_without_targets(s: Situation) -> list[str]:
    """The Director snapshot, re-signed with the hub's online key, no longer lists targets."""

    def drop_targets(snapshot: Snapshot) -> None:
        del snapshot.meta["targets.json"]

    plan = plan_export(s.hub, SITE_ID)
    metadata = resign_director_snapshot(s.hub, plan.metadata, drop_targets)
    forge_bundle(s.hub, plan, s.media / "bundle", metadata=metadata)
    return s.import_args(s.media / "bundle")


def _newer_opset(s: Situation) -> list[str]:
    model = make_opset_model(s.tmp / "future" / "identity.onnx", max_supported_opset() + 1)
    release(s.hub, "future", "1", model, compatibility=Compatibility())
    return s.import_args(ship(s.hub, s.hub_clock, s.media / "bundle", assign=("future@1",)))


def _rewritten_site_log(s: Situation) -> list[str]:
    """The hub witnessed the site's checkpoint; the site then deleted a witnessed entry."""
    s.bundle()  # the export signs the hub's return path into the site's Director targets
    site = MetricsSite.of(s.spoke, s.hub, s.hub_clock.now())
    first = import_metrics(s.hub, site.bundle(s.media / "metrics-1"))
    site.rewrite_log(keep=first.checkpoint_size - 1)
    bundle = site.bundle(s.media / "metrics-2")
    return ["hub", "import-metrics", "--home", str(s.hub.home.root), str(bundle)]


@dataclass(frozen=True)
class Row:
    """One documented exit code and a situation that produces it."""

    kind: str
    make: Make
    message: str
    passphrase: str | None = SITE_PASSPHRASE
    env: dict[str, str] = field(default_factory=dict)


ROWS: dict[str, Row] = {
    "ok": Row("ok", _ok, ""),
    "click-usage": Row("click usage", _click_usage, "Missing argument 'BUNDLE'"),
    "usage-wrong-home": Row("usage", _usage, "is not an initialised spoke home"),
    "secret-wrong-passphrase": Row(
        "secret",
        lambda s: s.import_args(s.bundle()),
        "passphrase",
        passphrase="not the site passphrase",
    ),
    "media-missing-bundle": Row("media", _missing_bundle, "no-such-bundle"),
    "media-missing-model-file": Row("media", _missing_model_file, "does not exist"),
    "signature": Row("signature", _edited_envelope, "not signed by a trusted key"),
    "integrity": Row("integrity", _flipped_byte, "site.age does not match the SHA-256"),
    "unsafe-archive": Row("unsafe archive", _symlink, "is a symbolic link"),
    "freshness": Row("freshness", _expired, "the bundle expired at"),
    "wrong-site": Row("wrong site", _other_site, "the bundle is for site 'plant-9'"),
    "incomplete-missing-volume": Row(
        "incomplete", _missing_volume, "not enough volumes to complete the import"
    ),
    "decryption": Row("decryption", _other_recipient, "not encrypted to this site"),
    "error-database-unreachable": Row(
        "error",
        _ok,
        "cannot use the spoke database",
        env={"AIRLOCK_DATABASE_URL": UNREACHABLE_DATABASE},
    ),
    "audit-read-only-database": Row(
        "audit",
        _audit_unwritable,
        "the audit event 'spoke.import' could not be written: attempt to write a readonly database",
    ),
    "storage-read-only-home": Row("storage", _read_only_home, "cannot be written"),
    "schema-behind": Row("schema", _pre_migration_database, "has no schema version"),
    "verification-altered-audit-log": Row(
        "verification", _altered_audit_log, "audit log check failed at entry 1 (modified)"
    ),
    "trust": Row("trust", _snapshot_without_targets, "Director metadata does not verify"),
    "gate": Row("gate", _newer_opset, "validation gate: future@1 needs ONNX opset"),
    "attestation-required": Row(
        "attestation",
        lambda s: s.import_args(s.bundle()),
        "carries no in-toto attestations and this site requires them",
        env={"AIRLOCK_POLICY_REQUIRE_ATTESTATIONS": "true"},
    ),
    "log-consistency": Row(
        "log consistency", _rewritten_site_log, "audit log was rewritten after checkpoint"
    ),
}
JSON_ROWS = (
    "usage-wrong-home",
    "media-missing-bundle",
    "integrity",
    "error-database-unreachable",
    "schema-behind",
)


def _run(args: list[str], passphrase: str | None, extra: dict[str, str] | None = None) -> Result:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("AIRLOCK_")}
    env.update({"AIRLOCK_PRINCIPAL": "exit-code-test", "COLUMNS": "200", "NO_COLOR": "1"})
    env[PASSPHRASE_ENV] = passphrase
    env["AIRLOCK_HUB_PASSPHRASE"] = HUB_PASSPHRASE
    env.update(extra or {})
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False, prog_name="airlock")


@pytest.fixture
def situation(
    world: World,
    hub: HubContext,
    spoke: SpokeHome,
    media: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Situation]:
    with contextlib.ExitStack() as stack:
        yield Situation(world, hub, spoke, media, tmp_path, stack, request)


@pytest.mark.parametrize("row", list(ROWS))
def test_every_documented_exit_code_through_the_cli(situation: Situation, row: str) -> None:
    case = ROWS[row]
    result = _run(case.make(situation), case.passphrase, case.env)
    code = EXIT_CODES[case.kind]
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.output
    if code == 0:
        assert result.stderr == ""
        return
    lines = result.stderr.splitlines()
    error = next(line for line in lines if line.startswith("error: "))
    assert case.message in error, result.stderr
    hint = ([*lines, ""])[lines.index(error) + 1]
    assert hint.startswith("  what to do: "), f"no hint after the error line: {result.stderr}"
    assert len(hint) > len("  what to do: ") + 5


@pytest.mark.parametrize("row", JSON_ROWS)
def test_under_json_the_error_is_one_json_document_on_stdout(
    situation: Situation, row: str
) -> None:
    case = ROWS[row]
    result = _run([*case.make(situation), "--json"], case.passphrase, case.env)
    code = EXIT_CODES[case.kind]
    assert result.exit_code == code, (result.stdout, result.stderr)
    document = json.loads(result.stdout)
    assert set(document) == {"error"}
    error = document["error"]
    assert (error["kind"], error["code"]) == (case.kind, code)
    assert case.message in error["message"] and error["hint"]
    assert result.stderr.startswith("error: ")  # the human form still goes to stderr


# --- ceremony status: exit codes that are states, not errors ----------------------------------


@pytest.mark.parametrize(
    ("state", "code", "days_later"),
    [
        pytest.param(
            schedule.DUE,
            schedule.EXIT_DUE,
            min(tufrepo.ROOT_EXPIRY_DAYS, tufrepo.TARGETS_EXPIRY_DAYS) - 10,
            id="due",
        ),
        pytest.param(schedule.EXPIRED, schedule.EXIT_EXPIRED, 3650, id="expired"),
    ],
)
def test_ceremony_status_exits_by_the_state_it_prints(
    world: World, monkeypatch: pytest.MonkeyPatch, state: str, code: int, days_later: int
) -> None:
    """Days after the ceremony, inside the 30-day lead time of its first expiry, or past all."""
    later = SystemClock().now() + dt.timedelta(days=days_later)
    monkeypatch.setattr(SystemClock, "now", lambda _self: later)
    result = _run(["ceremony", "status", "--dir", str(world.ceremony.out_dir)], None)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stderr == "" and "Traceback" not in result.output  # a state, not an error
    first = result.stdout.splitlines()[0]
    assert first.split()[0] == state, result.stdout
    assert "next re-signing ceremony by" in result.stdout


# --- the table covers the documentation -------------------------------------------------------


def test_every_documented_code_has_a_row() -> None:
    """The table of docs/exit-codes.md, and the two ``ceremony status`` codes under it."""
    docs = DOCS.read_text()
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", docs, re.M)}
    assert documented == set(EXIT_CODES.values())
    statuses = {schedule.EXIT_DUE, schedule.EXIT_EXPIRED}
    assert all(f"**{code}**" in docs for code in statuses)
    covered = {EXIT_CODES[row.kind] for row in ROWS.values()} | statuses
    assert documented | statuses == covered, f"without a row: {documented - covered}"
