"""Each component installs only what it needs, and dependencies point one way.

The closure is computed from the declared dependencies (the components'
pyproject.toml files, then each third-party distribution's own metadata as
installed from the lockfile), the way pip would resolve them.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
COMPONENTS = {
    "airlock-bundles": ROOT / "bundles",
    "airlock-ceremony": ROOT / "keys-ceremony",
    "airlock-hub": ROOT / "hub",
    "airlock-spoke": ROOT / "spoke",
}
WEB_AND_ML = {"mlflow", "mlflow-skinny", "onnxruntime", "fastapi", "uvicorn", "pandas"}


def declared(component: str) -> list[Requirement]:
    data = tomllib.loads((COMPONENTS[component] / "pyproject.toml").read_text())
    return [Requirement(r) for r in data["project"]["dependencies"]]


def closure(component: str) -> set[str]:
    """Every distribution that installing ``component`` alone pulls in."""
    seen: set[str] = set()
    queue: list[tuple[Requirement, frozenset[str]]] = [
        (r, frozenset(r.extras)) for r in declared(component)
    ]
    while queue:
        req, extras = queue.pop()
        name = canonicalize_name(req.name)
        if name in seen and not extras:
            continue
        seen.add(name)
        if name in COMPONENTS:
            queue.extend((r, frozenset(r.extras)) for r in declared(name))
            continue
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:  # pragma: no cover - lockfile drift
            pytest.fail(f"{name} is declared but not installed from requirements.lock")
        for text in requires:
            sub = Requirement(text)
            if sub.marker is not None:
                env = default_environment()
                if not any(sub.marker.evaluate({**env, "extra": e}) for e in (extras or {""})):
                    continue
            queue.append((sub, frozenset(sub.extras)))
    return seen


def test_ceremony_pulls_in_no_ml_or_web_stack() -> None:
    deps = closure("airlock-ceremony")
    assert "tuf" in deps and "securesystemslib" in deps
    assert not deps & WEB_AND_ML, deps & WEB_AND_ML


def test_spoke_pulls_in_no_mlflow() -> None:
    deps = closure("airlock-spoke")
    assert "pyrage" in deps
    assert not deps & {"mlflow", "mlflow-skinny"}


def test_components_depend_only_on_the_shared_core() -> None:
    for component in ("airlock-ceremony", "airlock-hub", "airlock-spoke"):
        names = {canonicalize_name(r.name) for r in declared(component)}
        assert "airlock-bundles" in names
        assert not names & (set(COMPONENTS) - {"airlock-bundles"}), component
    assert not {canonicalize_name(r.name) for r in declared("airlock-bundles")} & set(COMPONENTS)


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("bundles/src/airlock/bundles", ("airlock.ceremony", "airlock.hub", "airlock.spoke")),
        ("keys-ceremony/src/airlock/ceremony", ("airlock.hub", "airlock.spoke")),
        ("hub/src/airlock/hub", ("airlock.spoke", "airlock.ceremony")),
        ("spoke/src/airlock/spoke", ("airlock.hub", "airlock.ceremony")),
    ],
)
def test_imports_point_one_way(package: str, forbidden: tuple[str, ...]) -> None:
    pattern = re.compile(
        r"^\s*(from|import)\s+(" + "|".join(map(re.escape, forbidden)) + r")\b", re.M
    )
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / package).rglob("*.py")
        if pattern.search(path.read_text())
    ]
    assert offenders == []


def test_lockfile_covers_every_declared_dependency() -> None:
    locked = {
        canonicalize_name(m.group(1))
        for m in re.finditer(
            r"^([A-Za-z0-9_.-]+)==", (ROOT / "requirements.lock").read_text(), re.M
        )
    }
    for component in COMPONENTS:
        for req in declared(component):
            name = canonicalize_name(req.name)
            if name not in COMPONENTS:
                assert name in locked, f"{component} needs {name}, which requirements.lock lacks"
    assert "--hash=sha256:" in (ROOT / "requirements.lock").read_text()


def _imported_top_levels(package: Path) -> set[str]:
    found: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found


def test_bundles_declares_every_third_party_import() -> None:
    """What bundles imports is a dependency or an extra of it (an extra only where the
    hub and the spoke, which run that code, require the extra)."""
    data = tomllib.loads((COMPONENTS["airlock-bundles"] / "pyproject.toml").read_text())
    extras = data["project"].get("optional-dependencies", {})
    names = {canonicalize_name(r.name) for r in declared("airlock-bundles")}
    names |= {canonicalize_name(Requirement(r).name) for reqs in extras.values() for r in reqs}
    provided = packages_distributions()
    third_party = _imported_top_levels(COMPONENTS["airlock-bundles"] / "src/airlock/bundles")
    third_party -= set(sys.stdlib_module_names) | {"airlock", "__future__"}
    undeclared = {
        module
        for module in third_party
        if not {canonicalize_name(d) for d in provided.get(module, [module])} & closure_of(names)
    }
    assert undeclared == set()
    for component in ("airlock-hub", "airlock-spoke"):
        core = next(r for r in declared(component) if r.name == "airlock-bundles")
        assert set(extras) <= core.extras, f"{component} runs bundles code that needs {extras}"


def closure_of(names: set[str]) -> set[str]:
    """``names`` and every distribution they pull in."""
    seen: set[str] = set()
    queue = list(names)
    while queue:
        name = canonicalize_name(queue.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        queue.extend(Requirement(text).name for text in requires)
    return seen
