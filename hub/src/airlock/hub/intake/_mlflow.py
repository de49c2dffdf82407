"""Model intake from MLflow: ``models:/NAME@ALIAS`` → one fixed version → a signed release.

:func:`import_model` reads as its steps:

1. parse the model URI: ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``;
2. resolve it in the registry at the tracking URI to a fixed version (an
   alias is read once; the version it named then is what is imported, and
   recorded);
3. download that version's artifacts into a temporary directory inside the
   hub home's ``tmp/`` and keep the ONNX graph (the ``onnx`` flavor's
   ``data`` file) and the external-data files the graph references;
4. read the lineage: run id, LoggedModel id, params, metrics (decimal
   strings), tags, input/output signature, training data digest;
5. hand the files and the release record to
   :func:`~airlock.hub.intake._releases.release_model`, which stages, checks, signs and
   enforces immutability; its audit entry (``hub.model.import``) records the
   URI, the alias and the version it resolved to.

Steps 2 and 4 read the registry (:mod:`airlock.hub.intake._mlflow_registry`), step 3
the model directory (:mod:`airlock.hub.intake._mlflow_model`). A failure in steps 1-4
is audited as ``hub.model.import`` too, with the URI as the object.

``mlflow`` is imported here only, on first use, after telemetry is switched
off (:func:`load_mlflow`): it costs seconds to import, and a hub next to an
air gap phones nobody.

The tracking URI is, in order: the argument (``--tracking-uri``), env
``MLFLOW_TRACKING_URI``, the hub setting ``mlflow.tracking_uri`` (env
``AIRLOCK_MLFLOW_TRACKING_URI``; a relative SQLite path is relative to the
home), else the SQLite store in the hub home (:func:`default_tracking_uri`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from airlock.bundles.errors import AirlockError, MediaError, NotFoundError, UsageError
from airlock.bundles.models import check_name
from airlock.bundles.release import Compatibility, Lineage, ReleaseInfo
from airlock.hub.catalog._release_files import ReleaseParts
from airlock.hub.context._context import HubContext
from airlock.hub.context._operation import record_failure
from airlock.hub.intake._mlflow_model import OnnxModel, collect_onnx
from airlock.hub.intake._mlflow_registry import (
    ModelRef,
    Resolved,
    parse_model_uri,
    read_lineage,
    resolve,
)
from airlock.hub.intake._releases import ModelRelease, release_model

IMPORT_ACTION = "hub.model.import"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
TELEMETRY_ENV = "MLFLOW_DISABLE_TELEMETRY"
HTTP_DEFAULTS = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}


def default_tracking_uri(home: Path) -> str:
    """``sqlite:///<home>/mlflow/mlflow.db``: the hub's own registry when none is configured."""
    return f"sqlite:///{(Path(home) / 'mlflow' / 'mlflow.db').absolute()}"


def default_artifact_root(home: Path) -> str:
    """``file://<home>/mlflow/artifacts``: the artifact root for the default store."""
    return (Path(home) / "mlflow" / "artifacts").absolute().as_uri()


def tracking_uri_for(ctx: HubContext, explicit: str | None = None) -> str:
    """The tracking URI to read from (see the module docstring for the order).

    A relative SQLite path in the hub setting is relative to the hub home.
    """
    configured = str(ctx.config.get("mlflow.tracking_uri") or "")
    database = configured.removeprefix("sqlite:///")
    if configured.startswith("sqlite:///") and database and not database.startswith("/"):
        configured = f"sqlite:///{(ctx.home.root / database).absolute()}"
    return (
        explicit
        or os.environ.get(TRACKING_URI_ENV)
        or configured
        or default_tracking_uri(ctx.home.root)
    )


def redact_uri(uri: str) -> str:
    """The URI without user name, password or query (for audit entries and messages)."""
    return re.sub(r"//[^/@]*@", "//", uri.split("?", 1)[0])


def load_mlflow() -> ModuleType:
    """Imports ``mlflow`` with telemetry disabled (set before the import).

    Also, unless the environment says otherwise: no progress bars, and two
    retries of a failed HTTP request instead of seven with minutes of backoff
    (an unreachable server is reported in seconds).
    """
    os.environ[TELEMETRY_ENV] = "true"
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    import mlflow

    return mlflow


@dataclass(frozen=True)
class Fetched:
    """A resolved version, its ONNX files in a flat directory, and its lineage."""

    resolved: Resolved
    model: OnnxModel
    lineage: Lineage
    skipped_metrics: tuple[str, ...]


@dataclass(frozen=True)
class ImportResult:
    """The outcome of :func:`import_model`."""

    release: ModelRelease
    resolved: Resolved
    tracking_uri: str

    def to_dict(self) -> dict[str, Any]:
        """The ``mlflow`` part of ``--json`` output."""
        return {
            "uri": str(self.resolved.ref),
            "tracking_uri": self.tracking_uri,
            "registered_model": self.resolved.name,
            "registered_version": self.resolved.version,
            "alias": self.resolved.ref.alias,
        }


@contextlib.contextmanager
def mlflow_errors(tracking_uri: str) -> Iterator[None]:
    """Turns MLflow's exceptions into Airlock errors that name the (redacted) tracking URI."""
    from mlflow.exceptions import MlflowException

    shown = redact_uri(tracking_uri)
    try:
        yield
    except MlflowException as exc:
        message = str(exc.message).replace(tracking_uri, shown)
        hint = f"check the model URI against the registry at {shown} (--tracking-uri)"
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise NotFoundError(f"MLflow at {shown}: {message}", hint=hint) from None
        if exc.error_code in ("INVALID_PARAMETER_VALUE", "INVALID_STATE", "BAD_REQUEST"):
            raise UsageError(f"MLflow at {shown}: {message}", hint=hint) from None
        raise MediaError(
            f"MLflow at {shown} failed: {message}",
            hint="check the tracking URI and that the MLflow server is reachable",
        ) from None
    except OSError as exc:
        raise MediaError(
            f"cannot read from MLflow at {shown}: {str(exc).replace(tracking_uri, shown)}",
            hint="check the tracking URI, the network, and the artifact store's permissions",
        ) from None


def _check_store(tracking_uri: str) -> None:
    """A SQLite store must exist: MLflow would otherwise create an empty one."""
    if not tracking_uri.startswith("sqlite:///"):
        return
    database = tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
    if database and database != ":memory:" and not Path(database).is_file():
        raise NotFoundError(
            f"there is no MLflow database at {database}",
            hint=f"pass --tracking-uri (or set {TRACKING_URI_ENV}): the registry of the model",
        )


def fetch(ref: ModelRef, tracking_uri: str, work_dir: Path) -> Fetched:
    """Steps 2-4: resolve, download the ONNX files into ``work_dir``, read the lineage.

    Raises:
        NotFoundError: no such store, model, alias or version.
        UsageError: not an ONNX model, or its files break the layout rules.
        MediaError: MLflow or its artifact store cannot be read.
    """
    _check_store(tracking_uri)
    mlflow = load_mlflow()
    with mlflow_errors(tracking_uri):
        client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        resolved = resolve(client, ref)
        # Not the models:/ URI itself: MLflow 3.17 resolves that through the
        # process-wide default registry whatever registry_uri says.
        location = client.get_model_version_download_uri(resolved.name, resolved.version)
        downloaded = mlflow.artifacts.download_artifacts(
            artifact_uri=location,
            dst_path=str(work_dir / "download"),
            tracking_uri=tracking_uri,
            registry_uri=tracking_uri,
        )
        model = collect_onnx(Path(downloaded), work_dir / "model")
        lineage, skipped = read_lineage(client, resolved, model.signature)
    return Fetched(resolved=resolved, model=model, lineage=lineage, skipped_metrics=skipped)


def _airlock_name(kind: str, value: str) -> str:
    try:
        return check_name(kind, value)
    except UsageError as exc:
        option = "--name" if kind == "model name" else "--version"
        raise UsageError(
            f"{exc.message}: the MLflow {kind} is not a valid Airlock {kind}",
            hint=f"pass {option} with 1-128 characters from A-Z a-z 0-9 . _ -",
        ) from None


def import_model(
    ctx: HubContext,
    uri: str,
    *,
    tracking_uri: str | None = None,
    name: str | None = None,
    version: str | None = None,
    parts: ReleaseParts | None = None,
    tenant: str | None = None,
    links: Path | None = None,
) -> ImportResult:
    """Imports a registered MLflow model version into the hub as a signed release.

    Args:
        ctx: The hub (its home's ``tmp/`` receives the download).
        uri: ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``.
        tracking_uri: The MLflow tracking and registry URI (see the module docstring).
        name: The Airlock model name (default: the registered model's name).
        version: The Airlock version (default: the MLflow version number).
        parts: Validation set, thresholds and compatibility
            (:mod:`airlock.hub.catalog._release_files`);
            without a compatibility record, the graph's default-domain opset is
            recorded, and a record without ``opset`` gets it too.
        tenant: The tenant of a new family (see
            :func:`~airlock.hub.intake._releases.release_model`).
        links: The training pipeline's in-toto links (train, evaluate, convert),
            attached with the hub's layout and its own ``package`` link.

    Raises:
        NotFoundError: no such store, registered model, alias or version.
        UsageError: a bad URI or name, not an ONNX model, bad files.
        ConflictError: the Airlock version exists with other files or another record.
        MediaError: MLflow or its artifact store cannot be read.
    """
    parts = parts or ReleaseParts()
    tracking = tracking_uri_for(ctx, tracking_uri)
    ctx.home.tmp_dir.mkdir(exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="mlflow-", dir=ctx.home.tmp_dir))
    try:
        try:
            fetched = fetch(parse_model_uri(uri), tracking, work_dir)
            target_name = _airlock_name("model name", name or fetched.resolved.name)
            target_version = _airlock_name("model version", version or fetched.resolved.version)
        except AirlockError as exc:
            record_failure(ctx.audit, ctx.clock, IMPORT_ACTION, uri, exc)
            raise
        except Exception as exc:  # messages may quote the tracking URI: record it redacted
            error = MediaError(
                f"{IMPORT_ACTION} failed: {type(exc).__name__}: "
                f"{str(exc).replace(tracking, redact_uri(tracking))}",
                hint="check the tracking URI, the network and the artifact store; "
                "nothing was released",
            )
            record_failure(ctx.audit, ctx.clock, IMPORT_ACTION, uri, error)
            if isinstance(exc, OSError):
                raise error from None
            raise
        compatibility = parts.compatibility or Compatibility()
        if compatibility.opset is None:
            compatibility = dataclasses.replace(compatibility, opset=fetched.model.opset)
        release = ReleaseInfo(
            lineage=fetched.lineage, validation=parts.validation, compatibility=compatibility
        )
        result = ImportResult(
            release=release_model(
                ctx,
                target_name,
                target_version,
                fetched.model.directory,
                release,
                parts.extras,
                tenant=tenant,
                links=links,
                intake={
                    "uri": uri,
                    "tracking_uri": redact_uri(tracking),
                    "registered_model": fetched.resolved.name,
                    "registered_version": fetched.resolved.version,
                    "alias": fetched.resolved.ref.alias,
                    "skipped_metrics": list(fetched.skipped_metrics),
                },
            ),
            resolved=fetched.resolved,
            tracking_uri=redact_uri(tracking),
        )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return result
