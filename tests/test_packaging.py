"""Each component installs only what it needs, and dependencies point one way.

The closure is computed from the declared dependencies (the components'
pyproject.toml files with the extras asked for, then each third-party
distribution's own metadata as installed from the lockfile), the way pip would
resolve them. The node agent is also run with the site service's packages made
unimportable, as on a node that installed ``airlock-node`` alone.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
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
    "airlock-node": ROOT / "spoke" / "node",
}
WEB_AND_ML = {
    "mlflow",
    "mlflow-skinny",
    "onnxruntime",
    "fastapi",
    "uvicorn",
    "pandas",
    "starlette",
    "prometheus-client",
}
SITE_SERVICE = {
    "mlflow",
    "mlflow-skinny",
    "psycopg",
    "psycopg-binary",
    "opendp",
    "in-toto",
    "airlock-spoke",
    "airlock-hub",
    "airlock-ceremony",
}
"""What a node must not pull in: MLflow, PostgreSQL drivers, DP noise, in-toto, the site service."""
BLOCKED_ON_A_NODE = (
    "mlflow",
    "psycopg",
    "psycopg_binary",
    "psycopg2",
    "opendp",
    "in_toto",
    "airlock.spoke",
    "airlock.hub",
    "airlock.ceremony",
)


def declared(component: str, extras: frozenset[str] = frozenset()) -> list[Requirement]:
    """``component``'s dependencies, with those of the ``extras`` asked for."""
    project = tomllib.loads((COMPONENTS[component] / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"])
    for extra in sorted(extras):
        texts += project.get("optional-dependencies", {})[extra]
    return [Requirement(r) for r in texts]


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
            queue.extend((r, frozenset(r.extras)) for r in declared(name, extras))
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
    assert {"pyrage", "in-toto", "airlock-node", "prometheus-client"} <= deps
    assert not deps & {"mlflow", "mlflow-skinny"}


def test_node_pulls_in_no_site_service() -> None:
    deps = closure("airlock-node")
    assert {"tuf", "pyrage", "onnxruntime", "fastapi", "prometheus-client", "starlette"} <= deps
    assert not deps & SITE_SERVICE, deps & SITE_SERVICE


def test_components_depend_only_on_the_shared_core() -> None:
    # the spoke runs real node agents (simulated nodes), so it may depend on the node
    allowed = {"airlock-spoke": {"airlock-bundles", "airlock-node"}}
    for component in ("airlock-ceremony", "airlock-hub", "airlock-spoke", "airlock-node"):
        names = {canonicalize_name(r.name) for r in declared(component)}
        assert "airlock-bundles" in names
        extra = names & (set(COMPONENTS) - allowed.get(component, {"airlock-bundles"}))
        assert not extra, component
    assert not {canonicalize_name(r.name) for r in declared("airlock-bundles")} & set(COMPONENTS)


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        (
            "bundles/src/airlock/bundles",
            ("airlock.ceremony", "airlock.hub", "airlock.spoke", "airlock.node"),
        ),
        ("spoke/node/src/airlock/node", ("airlock.spoke", "airlock.hub", "airlock.ceremony")),
        ("keys-ceremony/src/airlock/ceremony", ("airlock.hub", "airlock.spoke", "airlock.node")),
        ("hub/src/airlock/hub", ("airlock.spoke", "airlock.ceremony", "airlock.node")),
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
    for component, folder in COMPONENTS.items():
        project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        for req in declared(component, frozenset(project.get("optional-dependencies", {}))):
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
    for component in ("airlock-hub", "airlock-spoke"):  # both deliver events to webhooks
        core = next(r for r in declared(component) if r.name == "airlock-bundles")
        assert "webhooks" in core.extras, f"{component} delivers events but lacks httpx"


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


NODE_SCRIPT = textwrap.dedent(
    """
    import importlib, importlib.abc, json, pkgutil, sys

    BLOCKED = tuple(sys.argv[1].split(","))

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                raise ImportError(f"{name} is not installed on a node")
            return None

    sys.meta_path.insert(0, Refuse())
    import airlock.node
    for info in pkgutil.walk_packages(airlock.node.__path__, "airlock.node."):
        importlib.import_module(info.name)
    from airlock.bundles.cli import main

    sys.argv = ["airlock", *sys.argv[2:]]
    try:
        main()
    finally:
        loaded = sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".")
                                                       for b in BLOCKED))
        print(json.dumps({"blocked_loaded": loaded}), file=sys.stderr)
    """
)


def _node_only(*args: str, blocked: tuple[str, ...] = BLOCKED_ON_A_NODE) -> dict[str, object]:
    """Runs ``airlock ARGS`` in a fresh interpreter where ``blocked`` cannot be imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    env["AIRLOCK_AGENT_PASSPHRASE"] = "node passphrase for tests"
    proc = subprocess.run(
        [sys.executable, "-c", NODE_SCRIPT, ",".join(blocked), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    tail = json.loads(proc.stderr.strip().splitlines()[-1])
    return {"stdout": proc.stdout, **tail}


def test_node_runs_without_the_site_service(tmp_path: Path) -> None:
    home = tmp_path / "node-home"
    helped = _node_only("agent", "--help")
    assert "enroll" in str(helped["stdout"])
    made = _node_only("agent", "init", "--home", str(home), "--node-id", "node-1", "--json")
    assert json.loads(str(made["stdout"]))["node_id"] == "node-1"
    status = _node_only("agent", "status", "--home", str(home), "--json")
    assert json.loads(str(status["stdout"]))["node_id"] == "node-1"
    assert made["blocked_loaded"] == status["blocked_loaded"] == []


def test_the_node_check_would_see_a_forbidden_import() -> None:
    """The blocker really blocks: refusing a module the node needs makes the run fail."""
    with pytest.raises(AssertionError, match="fastapi is not installed on a node"):
        _node_only("agent", "--help", blocked=(*BLOCKED_ON_A_NODE, "fastapi"))
