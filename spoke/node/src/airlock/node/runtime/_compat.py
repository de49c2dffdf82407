"""The validation gate's compatibility checks: the site's runtime and the version's dependencies.

:func:`check_compatibility` compares a signed
:class:`~airlock.bundles.release._record.Compatibility` record with the site's
:class:`~airlock.node.runtime._runtime.SiteRuntime` and with the model versions
available at the site, and returns the figures (or raises :class:`GateError`
naming the check). :mod:`airlock.spoke.gate._gate` runs it first, before any model
is loaded.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from airlock.bundles.errors import AirlockError, GateError
from airlock.bundles.release import Compatibility, version_tuple
from airlock.node.runtime._onnxproto import read_opsets
from airlock.node.runtime._runtime import SiteRuntime, normalize_architecture

NOT_SIGNED = "not signed"
"""What the figures say for a threshold or record the hub did not sign."""
REPORT_HINT = (
    "do not use this version; send the figures (this refusal's audit entry) to the release engineer"
)


def refuse(check: str, message: str, hint: str, partial: dict[str, Any] | None = None) -> NoReturn:
    """Raises the gate's error for ``check``; ``partial`` holds the figures so far."""
    raise GateError(
        f"validation gate: {message}", hint=hint, figures={"failed": check, **(partial or {})}
    )


def check_compatibility(
    ref: str,
    compat: Compatibility,
    runtime: SiteRuntime,
    available: Mapping[str, Iterable[str]],
    graph: Path,
) -> dict[str, Any]:
    """Checks a signed compatibility record; returns its figures::

        {onnxruntime, min_onnxruntime, providers, architectures, min_memory_mb,
         opset: {signed, model, supported}, depends: [{model, min_version, found}]}

    Args:
        ref: ``name@version`` of the version, for messages.
        compat: The signed record.
        runtime: The site's runtime.
        available: Model name → versions staged here or by the same bundle.
        graph: The verified primary ONNX file (its ``opset_import`` is read).

    Raises:
        GateError: the first requirement the site does not meet.
    """
    model_opset = read_opsets(graph).get("")
    figures: dict[str, Any] = {
        "onnxruntime": runtime.onnxruntime,
        "min_onnxruntime": compat.min_onnxruntime or NOT_SIGNED,
        "providers": list(compat.providers),
        "architectures": list(compat.architectures) or "any",
        "min_memory_mb": compat.min_memory_mb if compat.min_memory_mb is not None else NOT_SIGNED,
        "opset": {
            "signed": compat.opset if compat.opset is not None else NOT_SIGNED,
            "model": model_opset,
            "supported": runtime.max_opset,
        },
        "depends": [],
    }
    partial = {"compatibility": figures}
    if compat.min_onnxruntime and _runtime_version(runtime.onnxruntime) < version_tuple(
        compat.min_onnxruntime
    ):
        refuse(
            "onnxruntime",
            f"{ref} needs onnxruntime >= {compat.min_onnxruntime}, "
            f"this site runs {runtime.onnxruntime}",
            f"upgrade onnxruntime at the site, or ask the hub for a build for "
            f"onnxruntime {runtime.onnxruntime}",
            partial,
        )
    missing = [p for p in compat.providers if p not in runtime.providers]
    if missing:
        refuse(
            "providers",
            f"{ref} needs execution provider(s) {', '.join(missing)}, this site offers "
            f"{', '.join(runtime.providers) or 'none'}",
            "install the provider on the nodes and declare it in [runtime] providers of "
            "airlock.toml, or ask the hub for a build for the providers this site has",
            partial,
        )
    wanted = {normalize_architecture(a) for a in compat.architectures}
    if wanted and runtime.architecture not in wanted:
        refuse(
            "architecture",
            f"{ref} is built for {', '.join(sorted(wanted))}, this site is {runtime.architecture}",
            "if the nodes differ from the spoke, declare [runtime] architecture in "
            "airlock.toml; otherwise ask the hub for a build for this architecture",
            partial,
        )
    if compat.min_memory_mb is not None and runtime.memory_mb < compat.min_memory_mb:
        refuse(
            "memory",
            f"{ref} needs {compat.min_memory_mb} MB of memory, this site has "
            f"{runtime.memory_mb} MB",
            "add memory to the nodes and declare it in [runtime] memory_mb of airlock.toml, "
            "or ask the hub for a smaller model",
            partial,
        )
    for what, opset in (("the signed opset", compat.opset), ("its graph's opset", model_opset)):
        if opset is not None and opset > runtime.max_opset:
            refuse(
                "opset",
                f"{ref} needs ONNX opset {opset} ({what}), onnxruntime {runtime.onnxruntime} "
                f"at this site supports opsets up to {runtime.max_opset}",
                "upgrade onnxruntime at the site, or ask the hub to convert the model "
                f"with target opset {runtime.max_opset} or lower",
                partial,
            )
    for dependency in compat.depends:
        found = _newest(available.get(dependency.model, ()))
        entry = {
            "model": dependency.model,
            "min_version": dependency.min_version,
            "found": found,
        }
        figures["depends"].append(entry)
        if found is None or version_tuple(found) < version_tuple(dependency.min_version):
            have = f"only version {found}" if found else "no version of it"
            refuse(
                "dependency",
                f"{ref} depends on {dependency.model} >= {dependency.min_version}, and this "
                f"site has {have} staged or in this bundle",
                f"import a bundle with {dependency.model} {dependency.min_version} or newer "
                "first, or ask the hub to assign both to this site",
                partial,
            )
    return figures


def _runtime_version(text: str) -> tuple[int, ...]:
    """``"1.31.1"`` → ``(1, 31, 1)``; a suffix (``1.32.0.dev20250101``) is ignored."""
    match = re.match(r"[0-9]+(\.[0-9]+)*", text)
    return version_tuple(match.group(0)) if match else (0,)


def _newest(versions: Iterable[str]) -> str | None:
    """The newest comparable version (``1.10`` > ``1.9``); others are ignored."""
    comparable = []
    for version in versions:
        with contextlib.suppress(AirlockError):
            comparable.append((version_tuple(version), version))
    return max(comparable)[1] if comparable else None
