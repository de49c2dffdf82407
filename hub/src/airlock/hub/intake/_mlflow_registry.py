"""Reading an MLflow registry: which fixed version a model URI names, and that version's lineage.

:func:`resolve` turns ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``
into a :class:`Resolved` version (an alias is read exactly once);
:func:`read_lineage` collects what the signed
:class:`~airlock.bundles.release._record.Lineage` records: run id, LoggedModel id,
params, metrics as decimal strings, tags, and the training data digest.
Callers pass a client bound to one tracking URI; ``mlflow`` itself is
imported by :mod:`airlock.hub.intake._mlflow`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airlock.bundles.errors import NotFoundError, UsageError
from airlock.bundles.models import SHA256_PATTERN
from airlock.bundles.release import Lineage

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

URI_PREFIX = "models:/"
TRAINING_CONTEXT = "training"
DATA_TAG = "airlock.training_data"
SHA256_TAG = "airlock.training_data_sha256"
# Registry bookkeeping that changes after the fact (the versions a LoggedModel was
# registered as, the models a run logged): not lineage, and not part of the record.
BOOKKEEPING_TAGS = frozenset({"mlflow.modelVersions", "mlflow.log-model.history"})


@dataclass(frozen=True)
class ModelRef:
    """A registered model version as asked for: by alias or by version number."""

    name: str
    alias: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.alias is not None:
            return f"{URI_PREFIX}{self.name}@{self.alias}"
        return f"{URI_PREFIX}{self.name}/{self.version}"


def parse_model_uri(text: str) -> ModelRef:
    """Parses ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` (VERSION a number).

    Raises:
        UsageError: any other form (a LoggedModel id, ``latest``, a stage name).
    """
    hint = "name a registered version: models:/NAME@ALIAS or models:/NAME/VERSION"
    rest = text.removeprefix(URI_PREFIX) if text.startswith(URI_PREFIX) else None
    if rest and "@" in rest:
        name, _, alias = rest.rpartition("@")
        if name and alias and "/" not in alias:
            return ModelRef(name=name, alias=alias)
    elif rest and "/" in rest:
        name, _, version = rest.rpartition("/")
        if name and version.isdigit():
            return ModelRef(name=name, version=str(int(version)))
    raise UsageError(f"{text!r} is not a registered model version URI", hint=hint)


@dataclass(frozen=True)
class Resolved:
    """The fixed registry version a :class:`ModelRef` named at import time."""

    ref: ModelRef
    name: str
    version: str
    run_id: str
    model_id: str

    @property
    def fixed_uri(self) -> str:
        """``models:/NAME/VERSION``."""
        return f"{URI_PREFIX}{self.name}/{self.version}"


def resolve(client: MlflowClient, ref: ModelRef) -> Resolved:
    """Resolves ``ref`` to a fixed, ready version (an alias is read exactly once).

    Raises:
        NotFoundError: no such registered model, alias or version.
        UsageError: the version is not ready (still registering, or failed).
    """
    registered = client.get_registered_model(ref.name)
    version = ref.version
    if ref.alias is not None:
        aliases = {str(k): str(v) for k, v in (registered.aliases or {}).items()}
        if ref.alias not in aliases:
            known = ", ".join(f"@{a}" for a in sorted(aliases)) or "none"
            raise NotFoundError(
                f"registered model {ref.name!r} has no alias {ref.alias!r}",
                hint=f"its aliases: {known}; or name a version: models:/{ref.name}/VERSION",
            )
        version = aliases[ref.alias]
    found = client.get_model_version(ref.name, str(version))
    if str(found.status) != "READY":
        raise UsageError(
            f"{ref.name} version {found.version} is not ready (status {found.status})",
            hint="wait until the registration finished, or import another version",
        )
    source = str(found.source or "")
    model_id = getattr(found, "model_id", None) or (
        source.removeprefix(URI_PREFIX) if source.startswith(f"{URI_PREFIX}m-") else ""
    )
    return Resolved(
        ref=ref,
        name=str(found.name),
        version=str(found.version),
        run_id=str(found.run_id or ""),
        model_id=str(model_id),
    )


def _finite_metrics(values: Mapping[str, float]) -> tuple[dict[str, str], tuple[str, ...]]:
    """Metrics as decimal strings; NaN and infinities cannot be signed and are skipped."""
    kept, skipped = {}, []
    for key, value in sorted(values.items()):
        if math.isfinite(float(value)):
            kept[key] = repr(float(value))
        else:
            skipped.append(key)
    return kept, tuple(skipped)


def _training_data(run: Run | None) -> tuple[dict[str, str], str | None]:
    """Tags describing the run's training dataset(s), and its digest when it is a SHA-256."""
    if run is None or run.inputs is None:
        return {}, None
    inputs = list(run.inputs.dataset_inputs or [])

    def context(item: Any) -> str:
        return next((t.value for t in item.tags or [] if t.key == "mlflow.data.context"), "")

    training = [i for i in inputs if context(i) == TRAINING_CONTEXT] or (
        inputs if len(inputs) == 1 else []
    )
    tags: dict[str, str] = {}
    for index, item in enumerate(training):
        prefix = DATA_TAG if len(training) == 1 else f"{DATA_TAG}.{index}"
        tags[f"{prefix}.name"] = str(item.dataset.name)
        tags[f"{prefix}.digest"] = str(item.dataset.digest)
        tags[f"{prefix}.source_type"] = str(item.dataset.source_type)
    digest = str(training[0].dataset.digest).lower() if len(training) == 1 else ""
    return tags, digest if SHA256_PATTERN.fullmatch(digest) else None


def read_lineage(
    client: MlflowClient, resolved: Resolved, signature: Mapping[str, Any] | None
) -> tuple[Lineage, tuple[str, ...]]:
    """The lineage of a resolved version: its run's (and LoggedModel's) params, metrics, tags.

    Run values win over the LoggedModel's; registry version tags are added
    as ``registry.<key>``; the training dataset as ``airlock.training_data.*``.

    Returns:
        The lineage, and the names of metrics that were skipped (not finite).
    """
    run = client.get_run(resolved.run_id) if resolved.run_id else None
    logged = client.get_logged_model(resolved.model_id) if resolved.model_id else None
    params: dict[str, str] = {}
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    if logged is not None:
        params.update({str(k): str(v) for k, v in (logged.params or {}).items()})
        latest = sorted(logged.metrics or [], key=lambda m: (m.step, m.timestamp))
        metrics.update({str(m.key): m.value for m in latest})
        tags.update({str(k): str(v) for k, v in (logged.tags or {}).items()})
    if run is not None:
        params.update({str(k): str(v) for k, v in run.data.params.items()})
        metrics.update({str(k): v for k, v in run.data.metrics.items()})
        tags.update({str(k): str(v) for k, v in run.data.tags.items()})
    version = client.get_model_version(resolved.name, resolved.version)
    tags.update({f"registry.{k}": str(v) for k, v in (version.tags or {}).items()})
    data_tags, data_sha256 = _training_data(run)
    tags.update(data_tags)
    claimed = tags.get(SHA256_TAG)
    if claimed is not None:
        if not SHA256_PATTERN.fullmatch(claimed):
            raise UsageError(
                f"the run's tag {SHA256_TAG} is not a SHA-256 hex digest: {claimed!r}",
                hint="tag the run with hashlib.sha256(training data).hexdigest()",
            )
        data_sha256 = claimed
    for key in BOOKKEEPING_TAGS:
        tags.pop(key, None)
    kept, skipped = _finite_metrics(metrics)
    lineage = Lineage(
        source=resolved.fixed_uri,
        registered_model=resolved.name,
        registered_version=resolved.version,
        alias=resolved.ref.alias or "",
        run_id=resolved.run_id,
        model_id=resolved.model_id,
        params=params,
        metrics=kept,
        tags=tags,
        signature=signature,
        training_data_sha256=data_sha256,
    )
    return lineage, skipped
