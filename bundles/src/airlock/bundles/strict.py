"""Strict readers for signed JSON documents: exact key sets and exact JSON types.

What a key signs must be read exactly as written: no unknown fields, no
duplicate keys, no ``NaN``, a boolean only as ``true``/``false`` (never a
truthy string), a string only as a string (never a number turned into one),
an integer only as an integer (never a boolean, a float or a string) and
within the range every JSON reader holds exactly (``1 … 2**53 − 1``; SQLite's
and PostgreSQL's 64-bit integers hold it too).

Every reader raises :class:`ValueError` or :class:`TypeError` naming the
field; the caller turns it into its own error with a hint.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import Any

MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer a signed document may hold (IEEE 754 doubles hold it exactly)."""

UTC_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", re.ASCII)
"""``YYYY-MM-DDTHH:MM:SSZ``: ISO 8601 in UTC, whole seconds, every field zero-padded."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key[:64]!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def strict_json(data: bytes) -> Any:
    """Parses JSON refusing duplicate object keys and ``NaN``/``Infinity``.

    Raises:
        ValueError: not strict JSON (also for bytes that are not UTF-8).
        RecursionError: nested too deeply.
    """
    return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def exact_keys(
    value: Any, what: str, required: Collection[str], optional: Collection[str] = ()
) -> Mapping[str, Any]:
    """Checks ``value`` is an object with every required key and no key outside both sets.

    Raises:
        TypeError: not an object.
        ValueError: a required key is missing, or an unknown key is present.
    """
    if not isinstance(value, dict):
        raise TypeError(f"{what} is not an object")
    missing = sorted(set(required) - set(value))
    if missing:
        raise ValueError(f"{what} lacks {', '.join(missing)}")
    unknown = sorted(set(value) - set(required) - set(optional))
    if unknown:
        shown = ", ".join(repr(k[:64]) for k in unknown[:5])
        raise ValueError(f"{what} has unknown field(s) {shown}")
    return value


def get_str(data: Mapping[str, Any], key: str) -> str:
    """``data[key]``, which must be a JSON string.

    Raises:
        TypeError: it is not a string.
    """
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string, not {_json_type(value)}")
    return value


def get_bool(data: Mapping[str, Any], key: str) -> bool:
    """``data[key]``, which must be JSON ``true`` or ``false``.

    Raises:
        TypeError: it is not a boolean.
    """
    value = data[key]
    if not isinstance(value, bool):
        raise TypeError(f"{key} must be true or false, not {_json_type(value)}")
    return value


def get_int(data: Mapping[str, Any], key: str, low: int = 0, high: int = MAX_SAFE_INTEGER) -> int:
    """``data[key]``, which must be a JSON integer in ``[low, high]``.

    Raises:
        TypeError: it is not an integer (booleans are not).
        ValueError: it is out of range.
    """
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key} must be an integer, not {_json_type(value)}")
    return check_range(key, value, low, high)


def check_range(key: str, value: int, low: int = 0, high: int = MAX_SAFE_INTEGER) -> int:
    """Returns ``value`` if ``low <= value <= high``.

    Raises:
        ValueError: it is out of range (the message shows at most 40 digits).
    """
    if not low <= value <= high:
        shown = str(value) if len(str(value)) <= 40 else f"{str(value)[:40]}…"
        raise ValueError(f"{key} {shown} is outside {low}…{high}")
    return value


def get_utc(data: Mapping[str, Any], key: str) -> str:
    """``data[key]``, which must be a string of the form ``YYYY-MM-DDTHH:MM:SSZ``.

    Raises:
        TypeError: it is not a string.
        ValueError: it is not in that form.
    """
    text = get_str(data, key)
    if not UTC_TIME.fullmatch(text):
        raise ValueError(f"{key} must be a UTC time like 2026-01-31T12:00:00Z, not {text[:40]!r}")
    return text


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names |= {list: "a list", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)
