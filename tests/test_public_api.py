"""Each subpackage's public names are pinned, and the folders keep their layers.

Inside a distribution (bundles, ceremony, hub, spoke, node) modules are grouped by
concern into subpackages of private modules (``_name.py``); a subpackage's
``__init__`` re-exports what other components use and lists it in ``__all__``. The
list is pinned in ``tests/public_api.txt`` (as httpx and python-tuf pin theirs): a
change to a component's public surface is a deliberate, reviewed edit of that file.

Two structural rules are checked here too, because an import that breaks them works
until the day it causes an import cycle or couples two components:
- another distribution (and ``scripts/``, ``bench/``) imports a subpackage, never one of
  its private modules;
- the subpackages of one distribution form layers: no import cycle between them.
"""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PINNED = ROOT / "tests" / "public_api.txt"
SOURCES = sorted(p for p in ROOT.glob("**/src/airlock") if ".venv" not in p.parts)


def subpackages() -> list[str]:
    """Dotted names of every ``airlock.<component>.<concern>`` subpackage."""
    found = []
    for src in SOURCES:
        for init in src.glob("*/__init__.py"):  # a distribution's own package, where it exports
            if "__all__" in init.read_text(encoding="utf-8"):
                found.append(f"airlock.{init.parent.name}")
        for init in src.glob("*/*/__init__.py"):
            if init.parent.name != "migrations":  # Alembic histories, not an API
                found.append(".".join(("airlock", *init.parent.relative_to(src).parts)))
    return sorted(found)


def module_name(src: Path, path: Path) -> str:
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
            names.extend(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
    return [n for n in names if n.startswith("airlock.")]


def is_private(dotted: str) -> bool:
    return any(p.startswith("_") and not p.startswith("__") for p in dotted.split("."))


def current_surface() -> list[str]:
    lines = []
    for name in subpackages():
        module = importlib.import_module(name)
        lines.extend(f"{name}: {export}" for export in module.__all__)
    return lines


def test_every_subpackage_lists_importable_names() -> None:
    for name in subpackages():
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"{name} has no __all__"
        assert len(exported) == len(set(exported)), f"{name}.__all__ names something twice"
        for export in exported:
            assert hasattr(module, export), f"{name}.__all__ names {export}, which it lacks"


def test_public_surface_is_the_pinned_one() -> None:
    pinned = [line for line in PINNED.read_text(encoding="utf-8").splitlines() if line]
    current = current_surface()
    added = sorted(set(current) - set(pinned))
    removed = sorted(set(pinned) - set(current))
    assert not added and not removed, (
        f"public names changed; if intended, edit {PINNED.name}\nadded: {added}\nremoved: {removed}"
    )


def python_files() -> list[tuple[Path, list[str]]]:
    """Every source file outside tests, with the component it belongs to (``[]``: none)."""
    files = []
    for src in SOURCES:
        for path in sorted(src.rglob("*.py")):
            files.append((path, module_name(src, path).split(".")[:2]))
    for folder in ("scripts", "bench"):
        files.extend((path, []) for path in sorted((ROOT / folder).rglob("*.py")))
    return files


def test_no_private_module_of_another_component_is_imported() -> None:
    for path, component in python_files():
        for target in imported_modules(path):
            if target.split(".")[:2] != component and is_private(target):
                pytest.fail(f"{path.relative_to(ROOT)} imports the private {target}")


def test_subpackages_of_a_component_form_layers() -> None:
    for src in SOURCES:
        edges: dict[str, set[str]] = defaultdict(set)
        for path in src.rglob("*.py"):
            name = module_name(src, path)
            unit = ".".join(name.split(".")[:3])
            for target in imported_modules(path):
                other = ".".join(target.split(".")[:3])
                if target.split(".")[:2] == name.split(".")[:2] and other != unit:
                    place = src / Path(*other.split(".")[1:])
                    if place.is_dir() or place.with_suffix(".py").is_file():
                        edges[unit].add(other)
        for start in list(edges):
            seen, stack = set(), [start]
            while stack:
                for nxt in edges.get(stack.pop(), ()):
                    assert nxt != start, f"{start} and {nxt} import each other (a layer cycle)"
                    if nxt not in seen:
                        seen.add(nxt)
                        stack.append(nxt)
