"""Fixtures for the hub tests: one real ceremony per session, a fresh hub per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.hubenv import HUB_TIME, make_ceremony, make_hub
from helpers.identities import SiteKeys, make_site
from helpers.onnx_models import make_onnx_model

from airlock.bundles.clock import FixedClock
from airlock.ceremony.minimal import CeremonyResult
from airlock.hub.context import HubContext


@pytest.fixture(scope="session")
def ceremony(tmp_path_factory: pytest.TempPathFactory) -> CeremonyResult:
    """A default ceremony (2-of-3 roots, 1-of-2 targets). Copy it before tampering."""
    return make_ceremony(tmp_path_factory.mktemp("hub-ceremony") / "ceremony")


@pytest.fixture
def clock() -> FixedClock:
    """The hub's clock for one test (tests may move it)."""
    return FixedClock(HUB_TIME)


@pytest.fixture
def hub(tmp_path: Path, ceremony: CeremonyResult, clock: FixedClock) -> Iterator[HubContext]:
    """A freshly initialised hub home under the test's tmp_path."""
    created = make_hub(tmp_path / "hub-home", ceremony.out_dir, clock)
    yield created
    created.close()


@pytest.fixture(scope="session")
def site() -> SiteKeys:
    """The keys of site ``plant-7``."""
    return make_site("plant-7")


@pytest.fixture(scope="session")
def other_site() -> SiteKeys:
    """The keys of site ``plant-9``."""
    return make_site("plant-9")


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    """A single-file ONNX model."""
    return make_onnx_model(tmp_path / "src" / "classifier.onnx")


@pytest.fixture
def onnx_dir(tmp_path: Path) -> Path:
    """A model directory: the graph plus its external-data file."""
    make_onnx_model(tmp_path / "src-ext" / "model.onnx", external_data=True, seed=3)
    return tmp_path / "src-ext"
