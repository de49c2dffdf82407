"""An officer signs the in-toto layout on their machine: summary, refusals, audit."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.attestenv import Attested, attested  # noqa: F401 - the session fixture
from helpers.ceremonyflow import audit_entries, secrets_for
from in_toto.models.metadata import Metablock

from airlock.bundles import intoto as layouts
from airlock.bundles import tuf as tufrepo
from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import FreshnessError, SecretError, UsageError
from airlock.ceremony.officer import AUDIT_DB, SIGN_LAYOUT_ACTION, sign_layout
from airlock.hub.context import load_image_repo, open_hub


def keys_copy(attested: Attested, officer: str, tmp_path: Path) -> Path:  # noqa: F811
    """A copy of the officer's key directory (its audit log is asserted on)."""
    return Path(shutil.copytree(attested.flow.keys(officer), tmp_path / officer))


def sign(
    attested: Attested,  # noqa: F811
    officer: str,
    keys: Path,
    layout: Path,
    out: Path,
    confirm: Any = None,
    secrets: Any = None,
    **kwargs: Any,
) -> Metablock:
    sign_layout(
        layout,
        officer,
        keys,
        out,
        secrets=secrets or secrets_for(officer),
        confirm=confirm or (lambda _s: True),
        clock=FixedClock(attested.hub_time),
        **kwargs,
    )
    return layouts.parse_layout(out.read_bytes())


def test_two_officers_sign_the_same_content(
    attested: Attested,  # noqa: F811
    tmp_path: Path,
) -> None:
    shown: list[dict[str, Any]] = []
    alice, bob = keys_copy(attested, "alice", tmp_path), keys_copy(attested, "bob", tmp_path)
    first = sign(
        attested, "alice", alice, attested.layout_unsigned, tmp_path / "a.json",
        confirm=lambda s: shown.append(s) or True, plan_path=attested.flow.plan,
    )  # fmt: skip
    both = sign(attested, "bob", bob, tmp_path / "a.json", tmp_path / "ab.json")
    again = sign(attested, "alice", alice, tmp_path / "ab.json", tmp_path / "aba.json")
    assert len(first.signatures) == 1 and len(both.signatures) == len(again.signatures) == 2
    unsigned = layouts.parse_layout(attested.layout_unsigned.read_bytes())
    assert {layouts.content_sha256(m) for m in (first, both, again)} == {
        layouts.content_sha256(unsigned)
    }
    summary = shown[0]
    assert [s["name"] for s in summary["steps"]] == ["train", "evaluate", "convert", "package"]
    assert summary["signing_key"]["officer"] == "alice" and summary["signatures"] == []
    anchored, _threshold, _expires = tufrepo.layout_keys(_image_root(attested))
    assert layouts.signing_keys(both, anchored, 2).keys() == anchored.keys()
    action, outcome, details = audit_entries(alice, AUDIT_DB)[-1]
    assert (action, outcome) == (SIGN_LAYOUT_ACTION, "success")
    assert details["content_sha256"] == summary["content_sha256"]


def _image_root(attested: Attested) -> Any:  # noqa: F811
    hub = open_hub(attested.hub_template, lambda _n: "")
    try:
        return load_image_repo(hub).root.signed
    finally:
        hub.close()


@pytest.mark.parametrize(
    ("officer", "expected", "match"),
    [
        ("carol", UsageError, "carol has no layout key"),
        ("carol-plan", UsageError, "holds no layout key in ceremony"),
        ("declined", UsageError, "did not confirm"),
        ("expired", FreshnessError, "the layout expired"),
        ("wrong-passphrase", SecretError, "cannot open"),
    ],
)
def test_refusals_write_nothing_and_are_audited(
    attested: Attested,  # noqa: F811
    tmp_path: Path,
    officer: str,
    expected: type[Exception],
    match: str,
) -> None:
    name = "carol" if officer.startswith("carol") else "alice"
    keys = keys_copy(attested, name, tmp_path)
    layout, kwargs = attested.layout_unsigned, {}
    if officer == "carol-plan":
        kwargs["plan_path"] = attested.flow.plan
    if officer == "declined":
        kwargs["confirm"] = lambda _s: False
    if officer == "wrong-passphrase":
        kwargs["secrets"] = lambda _n: "not alice's passphrase"
    if officer == "expired":
        md = layouts.parse_layout(layout.read_bytes())
        md.signed.expires = (attested.hub_time - dt.timedelta(days=1)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        layout = tmp_path / "old.json"
        layout.write_bytes(layouts.layout_bytes(md))
    before = len(audit_entries(keys, AUDIT_DB))
    with pytest.raises(expected, match=match):
        sign(attested, name, keys, layout, tmp_path / "out.json", **kwargs)
    assert not (tmp_path / "out.json").exists()
    entries = audit_entries(keys, AUDIT_DB)
    assert len(entries) == before + 1
    action, outcome, details = entries[-1]
    assert action == SIGN_LAYOUT_ACTION and outcome in ("refused", "failure")
    assert details["error"] == expected.__name__
