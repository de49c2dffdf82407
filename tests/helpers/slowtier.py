"""Pytest plugin (registered by the root conftest): marks the tests listed in
``tests/slow_tests.txt`` as ``slow``.

``make test-fast`` runs ``pytest -m "not slow"``; ``make test`` runs everything.
The list is the one place where "slow" is decided (the rule is in its header and
in tests/README.md). So that it cannot rot, the run stops when an entry names a
test that no longer exists, or when a test is marked slow in its own file without
being listed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
LIST = TESTS / "slow_tests.txt"
ROOT = TESTS.parent


@dataclass(frozen=True)
class Entry:
    """One line of the list: a module, a class or a test function (every case of it)."""

    line: int
    node: str

    @property
    def path(self) -> Path:
        """The test module the entry names."""
        return ROOT / self.node.split("::", 1)[0]

    def covers(self, nodeid: str) -> bool:
        """Whether the collected test ``nodeid`` is (part of) what the entry names."""
        base = nodeid.split("[", 1)[0]
        return base == self.node or base.startswith(self.node + "::")

    def problem(self) -> str | None:
        """Why the entry names nothing, or ``None`` if it names something that exists."""
        if not self.path.is_file():
            return f"no file {self.path.relative_to(ROOT)}"
        source = self.path.read_text(encoding="utf-8")
        for name in self.node.split("::")[1:]:
            defined = rf"^\s*(?:async\s+)?(?:def|class)\s+{re.escape(name)}\b"
            if not re.search(defined, source, re.M):
                return f"no test or class {name} in {self.path.relative_to(ROOT)}"
        return None


def read_list(path: Path = LIST) -> list[Entry]:
    """The entries of the list, in order (comments and blank lines dropped)."""
    entries = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        node = raw.split("#", 1)[0].strip()
        if node:
            entries.append(Entry(number, node))
    return entries


_ENTRIES: list[Entry] = []


def _from_root(item: pytest.Item) -> str:
    """The item's node id relative to the repository, whatever pytest's rootdir."""
    if not item.path.is_relative_to(ROOT):
        return item.nodeid
    return item.path.relative_to(ROOT).as_posix() + "::" + item.nodeid.split("::", 1)[-1]


def pytest_configure(config: pytest.Config) -> None:
    """Reads the list and stops the run if an entry names nothing."""
    entries = read_list()
    stale = [f"line {e.line}: {e.node}: {e.problem()}" for e in entries if e.problem()]
    if stale:
        raise pytest.UsageError(f"{LIST} names tests that do not exist:\n" + "\n".join(stale))
    _ENTRIES[:] = entries


@pytest.hookimpl(tryfirst=True)  # before -m "not slow" deselects anything
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks the listed tests ``slow``; refuses a slow mark that the list does not hold."""
    unlisted = []
    for item in items:
        if any(entry.covers(_from_root(item)) for entry in _ENTRIES):
            item.add_marker(pytest.mark.slow)
        elif item.get_closest_marker("slow") is not None:
            unlisted.append(item.nodeid)
    if unlisted:
        raise pytest.UsageError(
            f"marked slow in the test file but not listed in {LIST}:\n" + "\n".join(unlisted)
        )
