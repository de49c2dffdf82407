"""The release engineer's input files: a validation set, its thresholds, a compatibility record.

``airlock hub model add`` and ``airlock hub model import`` take the same three
options and turn them into the signed parts of a
:class:`~airlock.bundles.release._record.ReleaseInfo` plus the extra file of kind
``validation`` that ships with the version:

* ``--validation-set FILE``: a NumPy ``.npz`` archive (no pickled objects)
  with an inputs array and an expected array of the same length, shipped as
  the target named by the thresholds' ``file`` (default ``validation.npz``);
* ``--thresholds FILE``: TOML or JSON with the fields of
  :class:`~airlock.bundles.release._record.ValidationSpec` (``min_accuracy``,
  ``max_error``, ``max_p95_latency_ms``, …);
* ``--compat FILE``: TOML or JSON with the fields of
  :class:`~airlock.bundles.release._record.Compatibility` (``opset``,
  ``min_onnxruntime``, ``providers``, ``architectures``, ``min_memory_mb``,
  ``depends = ["perception>=1.5"]``).

Everything is checked before the hub is touched: a bad file is a
:class:`~airlock.bundles.errors.UsageError` naming the file and the problem.
Unknown keys are refused (a misspelt ``min_acuracy`` must not silently drop
a threshold).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airlock.bundles.errors import AirlockError, MissingFileError, UsageError
from airlock.bundles.models import check_name
from airlock.bundles.release import Compatibility, ValidationSpec, decimal

VALIDATION_FILE = "validation.npz"
VALIDATION_KIND = "validation"
THRESHOLD_KEYS = frozenset(
    {
        "file",
        "task",
        "inputs_key",
        "expected_key",
        "min_accuracy",
        "max_error",
        "max_p95_latency_ms",
        "latency_runs",
    }
)
DECIMAL_KEYS = ("min_accuracy", "max_error", "max_p95_latency_ms")
COMPAT_KEYS = frozenset(
    {"opset", "min_onnxruntime", "providers", "architectures", "min_memory_mb", "depends"}
)


@dataclass(frozen=True)
class ReleaseParts:
    """What the three options amount to: signed parts and the files that ship with them."""

    validation: ValidationSpec | None = None
    compatibility: Compatibility | None = None
    extras: dict[str, tuple[Path, str]] = field(default_factory=dict)


def read_table(path: Path, what: str) -> dict[str, Any]:
    """Reads a TOML (``.toml``) or JSON (anything else) file holding one table.

    Raises:
        NotFoundError: the file does not exist.
        UsageError: it does not parse, or is not a table.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{what} file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        fmt = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise UsageError(
            f"{what} file {path} is not valid {fmt}: {exc}",
            hint="use TOML (a .toml file) or JSON (any other name)",
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"{what} file {path} does not hold a table of settings")
    return data


def _check_keys(path: Path, what: str, data: Mapping[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(
            f"{what} file {path} has unknown keys: {', '.join(unknown)}",
            hint=f"the keys are: {', '.join(sorted(known))}",
        )


def _scalar(path: Path, key: str, value: Any, types: tuple[type, ...]) -> None:
    if isinstance(value, bool) or not isinstance(value, types):
        raise UsageError(f"{path}: {key} must be a {' or '.join(t.__name__ for t in types)}")


def read_thresholds(path: Path) -> ValidationSpec:
    """Parses a thresholds file into a :class:`ValidationSpec` (``file``: ``validation.npz``).

    Raises:
        NotFoundError: the file does not exist.
        UsageError: unparsable, unknown keys, wrong types, or no threshold.
    """
    data = read_table(path, "thresholds")
    _check_keys(path, "thresholds", data, THRESHOLD_KEYS)
    for key in DECIMAL_KEYS:
        if data.get(key) is not None:
            _scalar(path, key, data[key], (int, float, str))
    for key in ("file", "task", "inputs_key", "expected_key"):
        if key in data:
            _scalar(path, key, data[key], (str,))
    if "latency_runs" in data:
        _scalar(path, "latency_runs", data["latency_runs"], (int,))
    try:
        spec = ValidationSpec.from_dict({"file": VALIDATION_FILE, **data})
        check_name("validation set file name", spec.file)
        _check_ranges(spec)
    except AirlockError as exc:
        raise UsageError(f"thresholds file {path}: {exc.message}", hint=exc.hint) from None
    return spec


def _check_ranges(spec: ValidationSpec) -> None:
    """Thresholds that no model could meet, or that mean nothing, are mistakes."""
    if spec.min_accuracy is not None and not 0 <= decimal(spec.min_accuracy, "min_accuracy") <= 1:
        raise UsageError("min_accuracy must be between 0 and 1 (a fraction of the rows)")
    for key in ("max_error", "max_p95_latency_ms"):
        value = getattr(spec, key)
        if value is not None and decimal(value, key) < 0:
            raise UsageError(f"{key} must not be negative")


def _string_list(path: Path, key: str, value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str | dict) for v in value):
        raise UsageError(f"{path}: {key} must be a list of strings")
    if key != "depends" and not all(isinstance(v, str) for v in value):
        raise UsageError(f"{path}: {key} must be a list of strings")


def read_compat(path: Path) -> Compatibility:
    """Parses a compatibility file into a :class:`Compatibility`.

    Raises:
        NotFoundError: the file does not exist.
        UsageError: unparsable, unknown keys, wrong types, a bad version or dependency.
    """
    data = read_table(path, "compatibility")
    _check_keys(path, "compatibility", data, COMPAT_KEYS)
    for key in ("opset", "min_memory_mb"):
        if data.get(key) is not None:
            _scalar(path, key, data[key], (int,))
            if data[key] < 1:
                raise UsageError(f"{path}: {key} must be a positive number")
    if data.get("min_onnxruntime") is not None:
        _scalar(path, "min_onnxruntime", data["min_onnxruntime"], (str,))
    for key in ("providers", "architectures", "depends"):
        if key in data:
            _string_list(path, key, data[key])
    try:
        return Compatibility.from_dict(data)
    except AirlockError as exc:
        raise UsageError(f"compatibility file {path}: {exc.message}", hint=exc.hint) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(
            f"compatibility file {path}: malformed ({type(exc).__name__}: {exc})",
            hint='write dependencies as "NAME>=VERSION" or {model = NAME, min_version = VERSION}',
        ) from None


def check_validation_set(path: Path, spec: ValidationSpec) -> None:
    """Checks that ``path`` is an ``.npz`` archive the spoke's validation gate can use.

    Its ``spec.inputs_key`` and ``spec.expected_key`` arrays must exist, hold
    numbers (or strings, for labels), no pickled objects, and the same
    number (at least one) of rows.

    Raises:
        NotFoundError: the file does not exist.
        UsageError: any of the above does not hold.
    """
    import zipfile

    import numpy as np  # keep numpy out of CLI start-up

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"validation set {path} does not exist")
    hint = "save it with numpy.savez(FILE, inputs=…, expected=…)"
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise UsageError(f"validation set {path} is a single array, not an .npz archive")
        with loaded as archive:
            arrays = {}
            for key in (spec.inputs_key, spec.expected_key):
                if key not in archive.files:
                    raise UsageError(
                        f"validation set {path} has no array {key!r} "
                        f"(it has: {', '.join(archive.files) or 'none'})",
                        hint=hint,
                    )
                arrays[key] = archive[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UsageError(
            f"validation set {path} is not a readable .npz archive without pickled objects: {exc}",
            hint=hint,
        ) from None
    inputs, expected = arrays[spec.inputs_key], arrays[spec.expected_key]
    for key, array in arrays.items():
        if array.dtype.kind not in "biufU" or array.ndim == 0:
            raise UsageError(
                f"validation set {path}: array {key!r} is not an array of numbers "
                f"(dtype {array.dtype}, {array.ndim} dimensions)",
                hint=hint,
            )
    if len(inputs) == 0 or len(inputs) != len(expected):
        raise UsageError(
            f"validation set {path}: {len(inputs)} inputs but {len(expected)} expected values",
            hint="give one expected value (row) per input row, and at least one row",
        )


def release_parts(
    validation_set: Path | None, thresholds: Path | None, compat: Path | None
) -> ReleaseParts:
    """Reads and checks the three options (each may be None).

    A validation set and thresholds come together: thresholds name a file
    that must ship, and a validation set without thresholds would tell the
    site nothing to check.

    Raises:
        NotFoundError, UsageError: a file is missing or bad, or only one of the pair is given.
    """
    if (validation_set is None) != (thresholds is None):
        given, missing = (
            ("--validation-set", "--thresholds")
            if thresholds is None
            else ("--thresholds", "--validation-set")
        )
        raise UsageError(
            f"{given} needs {missing}",
            hint="pass the validation set and the thresholds it must meet together",
        )
    spec = None
    extras: dict[str, tuple[Path, str]] = {}
    if validation_set is not None and thresholds is not None:
        spec = read_thresholds(thresholds)
        check_validation_set(validation_set, spec)
        extras[spec.file] = (Path(validation_set), VALIDATION_KIND)
    compatibility = read_compat(compat) if compat is not None else None
    return ReleaseParts(validation=spec, compatibility=compatibility, extras=extras)
