"""Puts the loopback guard into every Python process the tests start.

The test session prepends this directory to ``PYTHONPATH`` (see
:mod:`helpers.netguard_plugin`), so that Python imports this module at start-up
in child processes (``airlock …`` commands, ``python -c …`` workers). It loads
``../netguard.py`` by path (nothing else of the test tree lands on the child's
``sys.path``), installs the guard, then runs any ``sitecustomize`` that this one
hides (a distribution's, for instance).
"""

import importlib.util
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path) -> None:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


_load("tests_netguard", _HERE.parent / "netguard.py")
sys.modules["tests_netguard"].install()

for _entry in sys.path:
    _other = Path(_entry or ".").resolve() / "sitecustomize.py"
    if _entry and _other.is_file() and _other.parent != _HERE:
        _load("_hidden_sitecustomize", _other)
        break
