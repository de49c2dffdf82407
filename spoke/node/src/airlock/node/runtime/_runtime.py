"""The site's runtime, as the validation gate compares it with what the hub signed.

A model version's signed compatibility record names what it needs
(:class:`~airlock.bundles.release._record.Compatibility`); the gate compares it with
:class:`SiteRuntime`:

==================  ===============================================  ===================
value               detected from                                    ``[runtime]`` key
==================  ===============================================  ===================
onnxruntime         ``onnxruntime.__version__``                      — (the gate runs it)
max_opset           asking onnxruntime (:func:`max_supported_opset`)  — (the gate runs it)
providers           ``onnxruntime.get_available_providers()``        ``providers``
architecture        ``platform.machine()``                           ``architecture``
memory_mb           physical memory, capped by a cgroup limit        ``memory_mb``
==================  ===============================================  ===================

The spoke is the site's director, not necessarily an inference node, so the
site admin may declare what the nodes offer in ``airlock.toml``::

    [runtime]
    memory_mb = 16384
    architecture = "aarch64"
    providers = ["CPUExecutionProvider", "CUDAExecutionProvider"]

or with ``AIRLOCK_RUNTIME_MEMORY_MB``, ``AIRLOCK_RUNTIME_ARCHITECTURE`` and
``AIRLOCK_RUNTIME_PROVIDERS`` (comma-separated). The onnxruntime version and
its opsets are not declarable: the gate loads and runs the model with this
very onnxruntime, so it states only what it can back.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airlock.bundles.config import HomeConfig
from airlock.bundles.errors import UsageError

ARCHITECTURE_ALIASES = {
    "amd64": "x86_64",
    "x64": "x86_64",
    "x86-64": "x86_64",
    "arm64": "aarch64",
    "armv8": "aarch64",
    "i686": "x86",
    "i386": "x86",
}
"""Spellings of one CPU architecture, mapped to ``platform.machine()``'s Linux names."""

CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)
MIB = 1024 * 1024
PROBE_CEILING = 64
"""Where the opset probe starts when onnxruntime does not list its operator schemas."""


def normalize_architecture(name: str) -> str:
    """``"AMD64"`` → ``"x86_64"``, ``"arm64"`` → ``"aarch64"``; others lower-cased."""
    lowered = name.strip().lower()
    return ARCHITECTURE_ALIASES.get(lowered, lowered)


@dataclass(frozen=True)
class SiteRuntime:
    """What this site runs models with (detected, or declared in ``[runtime]``)."""

    onnxruntime: str
    max_opset: int
    providers: tuple[str, ...]
    architecture: str
    memory_mb: int
    declared: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; ``declared`` names the values taken from ``[runtime]``."""
        return {
            "onnxruntime": self.onnxruntime,
            "max_opset": self.max_opset,
            "providers": list(self.providers),
            "architecture": self.architecture,
            "memory_mb": self.memory_mb,
            "declared": list(self.declared),
        }


def site_runtime(config: HomeConfig) -> SiteRuntime:
    """The site's runtime: detected values, overridden by ``[runtime]`` (or its env variables).

    Raises:
        UsageError: a ``[runtime]`` value is malformed.
    """
    import onnxruntime

    declared: list[str] = []
    memory = config.get("runtime.memory_mb")
    if memory is None:
        memory_mb = detect_memory_mb()
    else:
        memory_mb = _positive_int(memory, "runtime.memory_mb")
        declared.append("memory_mb")
    architecture = config.get("runtime.architecture")
    if architecture is None:
        architecture = platform.machine()
    else:
        if not isinstance(architecture, str) or not architecture.strip():
            raise UsageError(
                f"runtime.architecture must be a CPU architecture name, not {architecture!r}",
                hint='e.g. architecture = "x86_64" in the [runtime] section of airlock.toml',
            )
        declared.append("architecture")
    providers = config.get("runtime.providers")
    if providers is None:
        provider_names = tuple(onnxruntime.get_available_providers())
    else:
        provider_names = _providers(providers)
        declared.append("providers")
    return SiteRuntime(
        onnxruntime=str(onnxruntime.__version__),
        max_opset=max_supported_opset(),
        providers=provider_names,
        architecture=normalize_architecture(architecture),
        memory_mb=memory_mb,
        declared=tuple(declared),
    )


def _positive_int(value: Any, what: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if isinstance(value, bool) or number <= 0:
        raise UsageError(
            f"{what} must be a positive whole number of MiB, not {value!r}",
            hint="e.g. memory_mb = 16384 in the [runtime] section of airlock.toml",
        )
    return number


def _providers(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    names = (
        tuple(str(p).strip() for p in items if str(p).strip()) if isinstance(items, list) else ()
    )
    if not names:
        raise UsageError(
            f"runtime.providers must list execution providers, not {value!r}",
            hint='e.g. providers = ["CPUExecutionProvider"] in the [runtime] section',
        )
    return names


def detect_memory_mb() -> int:
    """Physical memory in MiB, capped by this process's cgroup memory limit if lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in CGROUP_LIMITS:
        try:
            text = limit_file.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total // MIB


@functools.cache
def max_supported_opset() -> int:
    """The newest ONNX (default-domain) opset this onnxruntime loads models of.

    onnxruntime does not publish the number, so we ask it: from the newest
    opset its operator schemas mention (which includes opsets still under
    development, that it refuses), down, the first one-node ``Identity`` model
    stamped with that opset that an ``InferenceSession`` accepts.
    """
    import onnxruntime

    from airlock.node.runtime._onnxproto import DEFAULT_DOMAINS, identity_model

    try:
        from onnxruntime.capi import _pybind_state

        newest = max(
            schema.since_version
            for schema in _pybind_state.get_all_operator_schema()
            if schema.domain in DEFAULT_DOMAINS
        )
    except (ImportError, AttributeError, ValueError):  # a minimal build without schemas
        newest = PROBE_CEILING
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    for opset in range(newest, 0, -1):
        try:
            onnxruntime.InferenceSession(
                identity_model(opset), options, providers=["CPUExecutionProvider"]
            )
        except Exception:  # noqa: S112 - a refusal is the answer we are looking for
            continue
        return opset
    return 0
