"""Human-readable views of a release record, for ``airlock hub model list/show/add/import``.

``--json`` output carries the record itself (``release``); these are the
one-line summary of the model list and the rows of ``model show``.
"""

from __future__ import annotations

import json

from airlock.bundles.release import ReleaseInfo

THRESHOLDS = ("min_accuracy", "max_error", "max_p95_latency_ms")


def summary(release: ReleaseInfo) -> str:
    """One line: where it came from, what it must achieve, what it needs (``-`` when empty)."""
    parts = []
    lineage = release.lineage
    if lineage is not None:
        if lineage.registered_model:
            alias = f" @{lineage.alias}" if lineage.alias else ""
            parts.append(f"mlflow {lineage.registered_model}/{lineage.registered_version}{alias}")
        else:
            parts.append(lineage.source)
    validation = release.validation
    if validation is not None:
        limits = validation.to_dict()
        shown = [f"{key} {limits[key]}" for key in THRESHOLDS if limits[key] is not None]
        parts.append(f"validated ({', '.join(shown)})")
    compat = release.compatibility
    if compat is not None:
        needs = [f"opset {compat.opset}"] if compat.opset is not None else []
        if compat.min_onnxruntime:
            needs.append(f"onnxruntime >= {compat.min_onnxruntime}")
        needs += [f"{d.model} >= {d.min_version}" for d in compat.depends]
        if needs:
            parts.append(", ".join(needs))
    return "; ".join(parts) or "-"


def _mapping(prefix: str, values: object) -> list[list[str]]:
    if not isinstance(values, dict):
        return []
    return [[f"{prefix}.{key}", str(value)] for key, value in sorted(values.items())]


def rows(release: ReleaseInfo) -> list[list[str]]:
    """``[field, value]`` rows of every part of the record, for a two-column table."""
    result: list[list[str]] = []
    record = release.to_dict()
    lineage = record["lineage"]
    if lineage is not None:
        for key in ("source", "registered_model", "registered_version", "alias"):
            result.append([f"lineage.{key}", str(lineage[key] or "-")])
        for key in ("run_id", "model_id", "training_data_sha256"):
            result.append([f"lineage.{key}", str(lineage[key] or "-")])
        for key in ("params", "metrics", "tags"):
            result += _mapping(f"lineage.{key}", lineage[key])
        if lineage["signature"] is not None:
            text = json.dumps(lineage["signature"], sort_keys=True, separators=(",", ":"))
            result.append(["lineage.signature", text])
    for part in ("validation", "compatibility"):
        if record[part] is not None:
            for key, value in record[part].items():
                shown = json.dumps(value) if isinstance(value, list | dict) else str(value)
                result.append([f"{part}.{key}", "-" if value is None else shown])
    return result
