"""The schema migration histories ship inside the hub and spoke wheels, with their entry point.

The wheel is built the way ``make setup`` installs the components (hatchling,
no build isolation, no index): every file of ``migrations/`` must be in it, and
its metadata must announce the history under ``airlock.migrations``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("role", ["hub", "spoke"])
def test_the_migration_history_ships_in_the_wheel(role: str, tmp_path: Path) -> None:
    env = os.environ | {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INPUT": "1"}
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", str(ROOT / role), "--wheel-dir", str(tmp_path)],
        check=True, env=env, timeout=300,
    )  # fmt: skip
    [wheel] = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        announced = archive.read(entry_points).decode()
    source = ROOT / role / "src"
    history = [
        path.relative_to(source).as_posix()
        for path in (source / "airlock" / role / "migrations").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    assert f"airlock/{role}/migrations/env.py" in history
    assert f"airlock/{role}/migrations/script.py.mako" in history
    assert any("/versions/" in name for name in history)
    assert set(history) <= names
    assert f"[airlock.migrations]\n{role} = airlock.{role}.migrations" in announced
