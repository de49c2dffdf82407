"""Shared fixtures for the ceremony tests: one real ceremony per test session."""

from __future__ import annotations

import datetime as dt

import pytest

from airlock.bundles.clock import FixedClock
from airlock.ceremony.minimal import CeremonyResult, run_minimal_ceremony

OFFICER_PASSPHRASE = "correct horse battery staple"
HUB_PASSPHRASE = "hub-online-passphrase"
NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def ceremony(tmp_path_factory: pytest.TempPathFactory) -> CeremonyResult:
    """A default (Ed25519, 2-of-3 roots, 1-of-2 targets) ceremony made at :data:`NOW`.

    Tests must not modify it; copy it first (``shutil.copytree``) to tamper with it.
    """
    parent = tmp_path_factory.mktemp("ceremony")
    return run_minimal_ceremony(
        parent / "out", OFFICER_PASSPHRASE, HUB_PASSPHRASE, clock=FixedClock(NOW)
    )


@pytest.fixture(scope="session")
def officer_passphrase() -> str:
    """The officers' passphrase of the session ceremony."""
    return OFFICER_PASSPHRASE


@pytest.fixture(scope="session")
def hub_passphrase() -> str:
    """The hub passphrase of the session ceremony."""
    return HUB_PASSPHRASE


@pytest.fixture(scope="session")
def ceremony_now() -> dt.datetime:
    """The (fixed) time the session ceremony ran at."""
    return NOW
