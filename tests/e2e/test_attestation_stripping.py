"""Stripped attestations: once a site holds a signed layout, every version must be attested.

The attacker holds the hub's online keys (Image targets, snapshot, timestamp,
Director, envelope) but not the officers' layout keys: they release a version
with a swapped model and without its layout and links — which the hub itself
signs as an ordinary unattested release. A site that has never seen a layout
cannot tell this from a hub that does not attest; a site that holds one (a
staged attested version, or one in the same bundle) refuses it with exit 19
and stages nothing, unless its policy exempts the family explicitly — and
``airlock spoke status`` then shows the exemption.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from helpers.attestenv import (
    MODEL,
    ONNX_NAME,
    Attested,
    attested,  # noqa: F401 - a fixture
    attested_clock,  # noqa: F401 - a fixture
    attested_hub,  # noqa: F401 - a fixture
    attested_spoke,  # noqa: F401 - a fixture
    record_pipeline,
    ship,
    step_signers,
    with_policy,
)
from helpers.onnx_models import make_onnx_model
from helpers.spokeenv import (
    accept_import,
    cli_refuse_import,
    refuse_import,
    run_airlock,
    table_rows,
)

from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import AttestationError, UsageError
from airlock.hub.context import HubContext
from airlock.hub.intake import add_model
from airlock.spoke.importing import read_policy
from airlock.spoke.site import SpokeHome

STRIPPED = "holds a signed in-toto layout"


@pytest.fixture
def hub_v1(attested: Attested, hub: HubContext, tmp_path: Path) -> HubContext:  # noqa: F811
    """The hub with the genuine pipeline's ``classifier@1`` released (layout and links)."""
    onnx = make_onnx_model(tmp_path / "out-1" / ONNX_NAME, seed=1)
    links = record_pipeline(
        tmp_path / "pipe-1", onnx, step_signers(attested.pipeline), tmp_path / "l-1"
    )
    add_model(hub, MODEL, "1", onnx, links=links)
    return hub


def swapped_model(tmp_path: Path) -> Path:
    """The attacker's model: valid ONNX, other weights, no attestations."""
    return make_onnx_model(tmp_path / "swapped" / ONNX_NAME, seed=66)


def test_stripped_version_after_an_attested_one_is_refused_with_exit_19(
    hub_v1: HubContext, spoke: SpokeHome, clock: FixedClock, tmp_path: Path
) -> None:
    assert accept_import(spoke, ship(hub_v1, tmp_path, {MODEL: "1"}, "b1"), clock).attested == [
        "classifier@1"
    ]
    add_model(hub_v1, MODEL, "2", swapped_model(tmp_path))  # signed with the online keys alone
    proc = cli_refuse_import(
        spoke, ship(hub_v1, tmp_path, {MODEL: "2"}, "b2"), AttestationError, STRIPPED
    )
    assert proc.returncode == 19
    assert "classifier@2 carries no in-toto attestations" in proc.stderr
    assert "unsafe_allow_unattested" in proc.stderr


def test_a_layout_in_the_same_bundle_covers_every_family(
    hub_v1: HubContext, spoke: SpokeHome, clock: FixedClock, tmp_path: Path
) -> None:
    add_model(hub_v1, "detector", "1", swapped_model(tmp_path))
    bundle = ship(hub_v1, tmp_path, {MODEL: "1", "detector": "1"}, "b1")
    error = refuse_import(spoke, bundle, AttestationError, STRIPPED, clock)
    assert error.message.startswith("detector@1 carries no in-toto attestations")
    assert "classifier@1 in this bundle" in error.message


def test_the_unsafe_exception_admits_the_family_and_status_shows_it(
    hub_v1: HubContext, spoke: SpokeHome, clock: FixedClock, tmp_path: Path
) -> None:
    accept_import(spoke, ship(hub_v1, tmp_path, {MODEL: "1"}, "b1"), clock)
    add_model(hub_v1, MODEL, "2", swapped_model(tmp_path))
    add_model(hub_v1, "detector", "1", swapped_model(tmp_path))
    bundle = ship(hub_v1, tmp_path, {MODEL: "2", "detector": "1"}, "b2")
    clock.advance(dt.timedelta(minutes=1))
    exempt = with_policy(spoke, '\n[policy]\nunsafe_allow_unattested = ["classifier"]\n')
    # one family exempted: the other still needs attestations
    refuse_import(exempt, bundle, AttestationError, "detector@1 carries no", clock)
    exempt.engine.dispose()

    (spoke.path / "airlock.toml").write_text(
        (spoke.path / "airlock.toml")
        .read_text()
        .replace('["classifier"]', '["classifier", "detector"]')
    )
    both = SpokeHome(spoke.path, spoke.secrets)
    result = accept_import(both, bundle, clock)
    assert result.staged == ["classifier@2", "detector@1"] and result.attested == []
    both.engine.dispose()

    proc = run_airlock("spoke", "status", "--home", str(spoke.path), "--json")
    assert proc.returncode == 0, proc.stderr
    policy = json.loads(proc.stdout)["attestations"]
    assert policy == {
        "require_attestations": False,
        "unsafe_allow_unattested": ["classifier", "detector"],
        "layout_held": "staged version classifier@1",
        "enforced": True,
    }
    table = run_airlock("spoke", "status", "--home", str(spoke.path))
    assert table.returncode == 0, table.stderr
    rows = {row[0]: row[1] for row in table_rows(table.stdout) if len(row) == 2}
    assert rows["UNSAFE: unattested allowed"].startswith("classifier, detector")
    assert rows["attestations"].startswith("required: the site holds a signed layout")


def test_status_of_a_site_without_a_layout_shows_no_enforcement(spoke: SpokeHome) -> None:
    proc = run_airlock("spoke", "status", "--home", str(spoke.path), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["attestations"] == {
        "require_attestations": False,
        "unsafe_allow_unattested": [],
        "layout_held": None,
        "enforced": False,
    }
    table = run_airlock("spoke", "status", "--home", str(spoke.path))
    assert "UNSAFE" not in table.stdout


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", "all"), ("classifier, detector", ["classifier", "detector"]), ("no", [])],
)
def test_the_exception_can_come_from_the_environment(
    spoke: SpokeHome, monkeypatch: pytest.MonkeyPatch, value: str, expected: object
) -> None:
    monkeypatch.setenv("AIRLOCK_POLICY_UNSAFE_ALLOW_UNATTESTED", value)
    assert read_policy(SpokeHome(spoke.path)).to_dict()["unsafe_allow_unattested"] == expected


@pytest.mark.parametrize("value", ["3", '[""]', "[1]", "{}"])
def test_a_malformed_exception_fails_closed(spoke: SpokeHome, value: str) -> None:
    home = with_policy(spoke, f"\n[policy]\nunsafe_allow_unattested = {value}\n")
    with pytest.raises(UsageError, match="unsafe_allow_unattested must be"):
        read_policy(home)
