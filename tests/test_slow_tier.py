"""The slow tier's list names real tests, and what it names is what gets marked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.slowtier import LIST, Entry, read_list

TESTS = Path(__file__).resolve().parent


def test_every_entry_names_a_test_that_exists() -> None:
    entries = read_list()
    assert len(entries) > 100
    assert [e for e in entries if e.problem()] == []
    assert len({e.node for e in entries}) == len(entries), "an entry is listed twice"


@pytest.mark.parametrize(
    ("node", "problem"),
    [
        ("tests/test_slow_tier.py", None),
        ("tests/test_slow_tier.py::test_every_entry_names_a_test_that_exists", None),
        ("tests/test_slow_tier.py::test_that_was_renamed", "no test or class"),
        ("tests/e2e/test_gone.py", "no file"),
    ],
)
def test_an_entry_that_names_nothing_is_a_problem(node: str, problem: str | None) -> None:
    found = Entry(1, node).problem()
    assert found is None if problem is None else problem in str(found)


@pytest.mark.parametrize(
    ("nodeid", "covered"),
    [
        ("tests/hub/test_x.py::test_a", True),
        ("tests/hub/test_x.py::test_a[case-1]", True),
        ("tests/hub/test_x.py::test_ab", False),
        ("tests/hub/test_x.py::TestA::test_a", False),
        ("tests/hub/test_x.pyc::test_a", False),
    ],
)
def test_an_entry_covers_its_test_and_every_case_of_it(nodeid: str, covered: bool) -> None:
    assert Entry(1, "tests/hub/test_x.py::test_a").covers(nodeid) is covered
    assert Entry(1, "tests/hub/test_x.py").covers(nodeid) is not nodeid.startswith(
        "tests/hub/test_x.pyc"
    )


def test_the_list_marks_its_tests_and_refuses_an_unlisted_mark(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ["PYTHONPATH"]])}
    command = [sys.executable, "-m", "pytest", "-p", "helpers.slowtier", "-p", "no:cacheprovider"]
    command += ["--noconftest", "-o", "addopts=", "--collect-only", "-q"]
    listed = subprocess.run(
        [*command, "-m", "not slow", str(TESTS / "bundles" / "test_key_files.py")],
        env=env,
        cwd=TESTS.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "(1 deselected)" in listed.stdout, listed.stdout + listed.stderr  # one is listed

    (tmp_path / "test_marked.py").write_text(
        "import pytest\n\n@pytest.mark.slow\ndef test_unlisted():\n    pass\n"
    )
    unlisted = subprocess.run(
        [*command, str(tmp_path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert unlisted.returncode != 0
    assert f"not listed in {LIST}" in unlisted.stderr + unlisted.stdout
    assert "test_marked.py::test_unlisted" in unlisted.stderr + unlisted.stdout
