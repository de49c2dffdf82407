"""Pytest plugin (registered by the root conftest): no test reaches beyond loopback.

At start-up it installs :mod:`helpers.netguard` in the test process and, through
``PYTHONPATH``, in every Python process the tests start; both append their
refusals to one log file per test process. Anything refused while a test ran
or was set up fails that test (an error if it was in the teardown), even when
the code under test caught the error.

A test that wants to see a refusal takes the :func:`netguard_refusals` fixture:
the refusals it expects are its own business, not a failure.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from helpers import netguard

SITE_DIR = Path(__file__).resolve().parent / "netguard_site"


class Refusals:
    """The guard's log for this test process, read from a position onwards."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.seen = 0

    def new(self) -> list[str]:
        """The refusals logged since the last call (by this process or its children)."""
        with self.log.open("rb") as stream:
            stream.seek(self.seen)
            data = stream.read()
        self.seen += len(data)
        return data.decode("utf-8", "replace").splitlines()


_STATE: dict[str, Refusals] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Installs the guard here and, by ``PYTHONPATH``, in child Python processes."""
    handle, name = tempfile.mkstemp(prefix="airlock-netguard-", suffix=".log")
    os.close(handle)
    os.environ[netguard.LOG_ENV] = name
    paths = [str(SITE_DIR), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    netguard.install()
    _STATE["refusals"] = Refusals(Path(name))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Removes this process's log."""
    refusals = _STATE.pop("refusals", None)
    if refusals is not None:
        refusals.log.unlink(missing_ok=True)


def _fail_on_refusals() -> None:
    found = _STATE["refusals"].new()
    if found:
        pytest.fail("\n".join(["network access outside loopback:", *found]), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Fails the test if it (or its set-up) tried to leave loopback, even if that was caught."""
    try:
        return (yield)
    finally:
        if "netguard_refusals" not in getattr(item, "fixturenames", ()):
            _fail_on_refusals()


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[None]:
    """Catches what a test's fixtures tried in their teardown (an error of that test)."""
    yield
    _fail_on_refusals()


@pytest.fixture
def netguard_refusals() -> Iterator[Refusals]:
    """For tests of the guard itself: the refusals they provoke are read here, not failed."""
    refusals = _STATE["refusals"]
    refusals.new()
    yield refusals
    refusals.new()
