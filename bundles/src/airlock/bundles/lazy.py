"""Lazy exports for a package's ``__init__``: names whose module is imported on first use.

A command-line process imports the packages on its path, and so every module
their ``__init__`` re-exports: ``airlock spoke import`` would load the node
agent's web server because the agent's package exports it next to the runtime
facts the validation gate needs. A package lists such names with
:func:`lazy_exports` (PEP 562: the module's ``__getattr__`` and ``__dir__``) and
imports them for type checkers only::

    if TYPE_CHECKING:
        from airlock.bundles.audit._report import render_report
    __getattr__, __dir__ = lazy_exports(__name__, {"render_report": "_report"})

``from airlock.bundles.audit import render_report`` then works as before, and
imports ``airlock.bundles.audit._report`` at that moment.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` for its lazily imported names.

    Args:
        package: The package's ``__name__``.
        exports: Each lazy name and the module it lives in, relative to the
            package (``"_serve"``).
    """
    names = dict(exports)

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # the next lookup is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
