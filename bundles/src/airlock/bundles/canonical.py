"""Canonical JSON: one byte-exact encoding for everything Airlock signs or hashes.

Uses the OLPC canonical form that TUF signs with (securesystemslib), so a
document signed by Airlock can be checked with the same rules as TUF metadata.
"""

from __future__ import annotations

import json
from typing import Any

from securesystemslib.formats import encode_canonical


def canonical_bytes(obj: Any) -> bytes:
    """Returns the canonical JSON encoding of ``obj`` as UTF-8 bytes.

    Args:
        obj: JSON-compatible data (dicts, lists, str, int, bool, None; no floats).
    """
    encoded = encode_canonical(obj)
    assert isinstance(encoded, str)
    return encoded.encode("utf-8")


def canonical_safe(value: Any) -> Any:
    """``value`` with every float turned into a decimal string (canonical JSON has no floats)."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): canonical_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical_safe(v) for v in value]
    return value


def pretty_bytes(obj: Any) -> bytes:
    """Returns stable, human-readable JSON (sorted keys, indented) ending in a newline."""
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8")
