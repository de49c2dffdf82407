"""Every documented exit code through the real ``airlock`` command line (docs/exit-codes.md).

One table, one row per situation: the command line, the exit code, a piece of
the ``error:`` line; every refusal must also print ``  what to do:`` with a
hint. A few rows run again with ``--json`` and must print one JSON error
document on standard output. Adding a row is one line in :data:`ROWS`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
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
)
from helpers.hubenv import HUB_PASSPHRASE
from helpers.spokeenv import OTHER_SITE_ID, SITE_ID, SITE_PASSPHRASE, World

from airlock.bundles.cli import main
from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import EXIT_CODES
from airlock.hub.hub import Hub
from airlock.spoke.home import PASSPHRASE_ENV, SpokeHome


@dataclass(frozen=True)
class Situation:
    """What a row sets up: the hub, the spoke and the medium it may write to."""

    world: World
    hub: Hub
    spoke: SpokeHome
    media: Path

    def bundle(self, name: str = "bundle") -> Path:
        """A genuine bundle for the test site."""
        out = self.media / name
        self.hub.export(SITE_ID, out)
        return out

    def import_args(self, bundle: Path) -> list[str]:
        """``spoke import`` of ``bundle`` into the test spoke."""
        return ["spoke", "import", "--home", str(self.spoke.path), str(bundle)]


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
    out = s.bundle()
    flip_byte(out / "payload.age", os.path.getsize(out / "payload.age") // 2)
    return s.import_args(out)


def _symlink(s: Situation) -> list[str]:
    plan = s.hub.plan_export(SITE_ID)
    evil = link(f"blobs/sha256/{plan.blobs[0].sha256}", "/etc/shadow", tarfile.SYMTYPE)
    out = s.media / "symlink"
    forge_raw_bundle(s.hub, plan, out, [*metadata_entries(plan), evil, *blob_entries(plan)])
    return s.import_args(out)


def _expired(s: Situation) -> list[str]:
    clock = s.hub.clock
    assert isinstance(clock, FixedClock)
    clock.advance(dt.timedelta(days=-31))
    return s.import_args(s.bundle())


def _other_site(s: Situation) -> list[str]:
    out = s.media / "other-site"
    s.hub.export(OTHER_SITE_ID, out)
    return s.import_args(out)


def _other_recipient(s: Situation) -> list[str]:
    plan = s.hub.plan_export(SITE_ID)
    out = s.media / "other-recipient"
    forge_bundle(s.hub, plan, out, recipients=[s.world.other_site.identity.age_recipient])
    return s.import_args(out)


@dataclass(frozen=True)
class Row:
    """One documented exit code and a situation that produces it."""

    kind: str
    make: Make
    message: str
    passphrase: str | None = SITE_PASSPHRASE


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
    "integrity": Row("integrity", _flipped_byte, "does not match the SHA-256"),
    "unsafe-archive": Row("unsafe archive", _symlink, "is a symbolic link"),
    "freshness": Row("freshness", _expired, "the bundle expired at"),
    "wrong-site": Row("wrong site", _other_site, "the bundle is for site 'plant-9'"),
    "decryption": Row("decryption", _other_recipient, "not encrypted to this site"),
}
JSON_ROWS = ("usage-wrong-home", "media-missing-bundle", "integrity")


def _run(args: list[str], passphrase: str | None) -> Result:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("AIRLOCK_")}
    env.update({"AIRLOCK_PRINCIPAL": "exit-code-test", "COLUMNS": "200", "NO_COLOR": "1"})
    env[PASSPHRASE_ENV] = passphrase
    env["AIRLOCK_HUB_PASSPHRASE"] = HUB_PASSPHRASE
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False, prog_name="airlock")


@pytest.fixture
def situation(world: World, hub: Hub, spoke: SpokeHome, media: Path) -> Situation:
    return Situation(world, hub, spoke, media)


@pytest.mark.parametrize("row", list(ROWS))
def test_every_documented_exit_code_through_the_cli(situation: Situation, row: str) -> None:
    case = ROWS[row]
    result = _run(case.make(situation), case.passphrase)
    code = EXIT_CODES[case.kind]
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.output
    if code == 0:
        assert result.stderr == ""
        return
    lines = result.stderr.splitlines()
    error = next(line for line in lines if line.startswith("error: "))
    assert case.message in error, result.stderr
    hint = lines[lines.index(error) + 1]
    assert hint.startswith("  what to do: ") and len(hint) > len("  what to do: ") + 5


@pytest.mark.parametrize("row", JSON_ROWS)
def test_under_json_the_error_is_one_json_document_on_stdout(
    situation: Situation, row: str
) -> None:
    case = ROWS[row]
    result = _run([*case.make(situation), "--json"], case.passphrase)
    code = EXIT_CODES[case.kind]
    assert result.exit_code == code, (result.stdout, result.stderr)
    document = json.loads(result.stdout)
    assert set(document) == {"error"}
    error = document["error"]
    assert (error["kind"], error["code"]) == (case.kind, code)
    assert case.message in error["message"] and error["hint"]
    assert result.stderr.startswith("error: ")  # the human form still goes to stderr
