"""``airlock hub model import`` (intake from MLflow) and ``airlock hub model show``.

Guide: docs/release-engineer.md, "Intake from MLflow". ``mlflow`` is imported
only when ``model import`` runs (see :mod:`airlock.hub.intake._mlflow`), never
for ``--help`` or any other command.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from airlock.bundles.cli import closing_home, emit_json, print_table
from airlock.bundles.errors import NotFoundError
from airlock.bundles.release import ReleaseInfo
from airlock.hub.catalog import _release_view as release_view
from airlock.hub.catalog import _revocation_view as revocation_view
from airlock.hub.catalog._catalog import list_models
from airlock.hub.catalog._release_files import release_parts
from airlock.hub.cli._options import (
    HOME_OPTION,
    JSON_OPTION,
    RELEASE_FILE_OPTIONS,
    files_table,
    open_home,
)
from airlock.hub.intake._mlflow import TRACKING_URI_ENV, import_model
from airlock.hub.intake._releases import release_model
from airlock.hub.sites._tenants import (
    family_tenants,
)


@click.group("model")
def model() -> None:
    """Release and list model versions."""


@model.command("add")
@HOME_OPTION
@click.argument("name")
@click.argument("version")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--tenant",
    help="The tenant family NAME belongs to (a new family: default `default`; "
    "an existing family: must be its tenant).",
)
@click.option(
    "--links",
    type=click.Path(file_okay=False, path_type=Path),
    help="The training pipeline's in-toto links (<step>.<keyid8>.link): attach them, "
    "the current layout and the hub's package link (needs `airlock hub layout set`).",
)
@RELEASE_FILE_OPTIONS[0]
@RELEASE_FILE_OPTIONS[1]
@RELEASE_FILE_OPTIONS[2]
@JSON_OPTION
def model_add(
    home: Path,
    name: str,
    version: str,
    path: Path,
    tenant: str | None,
    links: Path | None,
    validation_set: Path | None,
    thresholds: Path | None,
    compat: Path | None,
    as_json: bool,
) -> None:
    """Release NAME VERSION from PATH (an .onnx file or a flat directory with external data).

    The ONNX graph is checked, every file is stored by SHA-256 and signed as
    an Image target of family NAME, in the role of the family's tenant.
    Versions are immutable; a family's tenant never changes. A validation set
    with its thresholds, and a compatibility record, are signed with the version.
    """
    parts = release_parts(validation_set, thresholds, compat)
    record = ReleaseInfo(validation=parts.validation, compatibility=parts.compatibility)
    with closing_home(open_home(home)) as hub_:
        release = release_model(
            hub_, name, version, path, record, parts.extras, tenant=tenant, links=links
        )
        owner = family_tenants(hub_).get(name)
        if as_json:
            emit_json({"created": release.created, "tenant": owner, **release.model.to_dict()})
            return
        console = Console()
        if not release.created:
            console.print(
                f"{release.model.ref} is already released with identical files: nothing changed"
            )
            return
        console.print(f"[green]released {release.model.ref}[/green] (tenant {owner})")
        files_table(release.model)


@model.command("list")
@HOME_OPTION
@JSON_OPTION
def model_list(home: Path, as_json: bool) -> None:
    """List released model versions with their family's tenant."""
    with closing_home(open_home(home)) as hub_:
        models, owners = list_models(hub_), family_tenants(hub_)
        flags = revocation_view.version_flags(hub_.engine)
        if as_json:
            emit_json(
                [
                    {
                        "tenant": owners.get(m.name),
                        **m.to_dict(),
                        **revocation_view.fields(flags, m.name, m.version),
                    }
                    for m in models
                ]
            )
            return
        rows = [
            [
                m.name,
                m.version,
                owners.get(m.name, "-"),
                str(len(m.files)),
                str(sum(f.length for f in m.files)),
                release_view.summary(m.release),
                revocation_view.label(flags, m.name, m.version),
            ]
            for m in models
        ]
        columns = ["name", "version", "tenant", "files", "bytes", "release", "status"]
        print_table("models", columns, rows)


@model.command("import")
@HOME_OPTION
@click.argument("uri", metavar="MODEL_URI")
@click.option(
    "--tracking-uri",
    envvar=TRACKING_URI_ENV,
    help=f"MLflow tracking/registry URI (env {TRACKING_URI_ENV}; default: the hub "
    "setting mlflow.tracking_uri, else sqlite:///HOME/mlflow/mlflow.db).",
)
@click.option("--name", help="The Airlock model name (default: the registered model's name).")
@click.option("--version", help="The Airlock version (default: the MLflow version number).")
@click.option(
    "--tenant",
    help="The tenant a new family belongs to (default `default`; an existing family: its tenant).",
)
@RELEASE_FILE_OPTIONS[0]
@RELEASE_FILE_OPTIONS[1]
@RELEASE_FILE_OPTIONS[2]
@click.option(
    "--links",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The training pipeline's in-toto links (train, evaluate, convert) to attach.",
)
@JSON_OPTION
def model_import(
    home: Path,
    uri: str,
    tracking_uri: str | None,
    name: str | None,
    version: str | None,
    tenant: str | None,
    validation_set: Path | None,
    thresholds: Path | None,
    compat: Path | None,
    links: Path | None,
    as_json: bool,
) -> None:
    """Release a registered MLflow version: MODEL_URI is models:/NAME@ALIAS or models:/NAME/VERSION.

    The alias is resolved once, to a fixed version; that version's ONNX graph
    and external-data files are copied, and its lineage (registered model
    and version, alias, run and model ids, params, metrics, tags, signature,
    training data digest) is signed with it. Without --compat the graph's
    opset is recorded. Versions are immutable: importing the same version
    again is "nothing changed" (whatever alias it came through); other
    bytes or another record under the same name and version are refused.
    """
    parts = release_parts(validation_set, thresholds, compat)
    with closing_home(open_home(home)) as hub_:
        console = Console(stderr=True)
        with console.status(f"importing {uri} from MLflow…"):
            result = import_model(
                hub_,
                uri,
                tracking_uri=tracking_uri,
                name=name,
                version=version,
                parts=parts,
                tenant=tenant,
                links=links,
            )
        released = result.release
        owner = family_tenants(hub_).get(released.model.name)
        if as_json:
            emit_json(
                {
                    "created": released.created,
                    "tenant": owner,
                    "mlflow": result.to_dict(),
                    **released.model.to_dict(),
                }
            )
            return
        resolved = result.resolved
        origin = f"{resolved.ref} → version {resolved.version}"
        if not released.created:
            Console().print(
                f"{released.model.ref} ({origin}) is already released with identical files: "
                "nothing changed"
            )
            return
        Console().print(
            f"[green]released {released.model.ref}[/green] from {origin} (tenant {owner})"
        )
        files_table(released.model)


@model.command("show")
@HOME_OPTION
@click.argument("name")
@click.argument("version")
@JSON_OPTION
def model_show(home: Path, name: str, version: str, as_json: bool) -> None:
    """Show NAME VERSION: its files and its signed release record (lineage, validation, compat)."""
    with closing_home(open_home(home)) as hub_:
        found = [m for m in list_models(hub_) if (m.name, m.version) == (name, version)]
        if not found:
            raise NotFoundError(
                f"model version {name}@{version} is not released",
                hint="see `airlock hub model list`",
            )
        shown = found[0]
        owner = family_tenants(hub_).get(name)
        flags = revocation_view.version_flags(hub_.engine)
        if as_json:
            emit_json(
                {"tenant": owner, **shown.to_dict(), **revocation_view.fields(flags, name, version)}
            )
            return
        console = Console()
        console.print(f"{shown.ref} (tenant {owner})")
        flagged = revocation_view.fields(flags, name, version)
        if flagged["revoked"]:
            revoked = flagged["revoked"]
            console.print(
                f"[red]REVOKED[/red] at {revoked['revoked_at']} by {revoked['principal']}: "
                f"{revoked['reason']}"
            )
        for site in flagged["rolled_back_at"]:
            console.print(
                f"[yellow]rolled back[/yellow] at {site['site_id']} ({site['rolled_back_at']})"
            )
        files_table(shown)
        rows = release_view.rows(shown.release)
        if rows:
            print_table("release record", ["field", "value"], rows)
