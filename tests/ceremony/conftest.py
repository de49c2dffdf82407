"""Shared fixtures for the ceremony tests: real ceremonies (minimal and multi-officer), SoftHSM2."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator

import pytest
from helpers.ceremonyflow import Flow, run_ceremony
from helpers.hubenv import CEREMONY_TIME
from helpers.softhsm import TokenKey, make_tokens

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


# --- the multi-officer protocol -----------------------------------------------------------------


@pytest.fixture
def flow_clock() -> FixedClock:
    """A clock for one multi-officer ceremony, an hour in the past (TUF clients use real time)."""
    return FixedClock(CEREMONY_TIME)


@pytest.fixture(scope="session")
def initial_flow(tmp_path_factory: pytest.TempPathFactory) -> Flow:
    """A finished three-officer ceremony (file keys). Copy its files before tampering."""
    return run_ceremony(tmp_path_factory.mktemp("initial"), FixedClock(CEREMONY_TIME), "initial")


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TokenKey]]:
    """Real SoftHSM2 tokens with EC keys, made once (PKCS#11 reads its config once per process)."""
    keys = {
        "carol-p256": TokenKey("officer-carol", "01", "prime256v1"),
        "carol-p384": TokenKey("officer-carol", "02", "secp384r1"),
        "bob-p256": TokenKey("officer-bob", "03", "prime256v1"),
    }
    env = make_tokens(tmp_path_factory.mktemp("softhsm"), list(keys.values()))
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    yield keys
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
