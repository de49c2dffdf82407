"""``airlock hub``: the release engineer's commands.

Every command takes ``--home`` (env ``AIRLOCK_HUB_HOME``, default
``./hub-home``) and ``--json``; the hub passphrase comes from
``AIRLOCK_HUB_PASSPHRASE`` or a no-echo prompt, and only commands that sign
ask for it. Errors are raised as :class:`~airlock.bundles.errors.AirlockError`
and reported by the root group's single catch point.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import UsageError
from airlock.bundles.keys import FILE_SCHEME, env_or_prompt_secrets
from airlock.bundles.models import ModelVersion, SiteIdentity
from airlock.bundles.release import ReleaseInfo
from airlock.hub.catalog import _release_view as release_view
from airlock.hub.catalog import _revocation_view as revocation_view
from airlock.hub.catalog._catalog import list_models
from airlock.hub.catalog._release_files import release_parts
from airlock.hub.context._context import HubContext, open_hub
from airlock.hub.export._assignments import assign as assign_version
from airlock.hub.export._assignments import unassign as unassign_version
from airlock.hub.export._planner import export
from airlock.hub.intake._releases import release_model
from airlock.hub.repos._signing import parse_tenant_secret
from airlock.hub.revocation._revoke import revoke as revoke_version
from airlock.hub.sites._sites import (
    add_site,
    add_site_from_file,
    list_sites,
    read_public_key_file,
)
from airlock.hub.sites._status import hub_status
from airlock.hub.sites._tenants import (
    add_tenant,
    family_tenants,
    list_tenants,
    read_public_key,
)
from airlock.hub.store._home import DEFAULT_HOME, HOME_ENV, PASSPHRASE_ENV, tenant_secret_env
from airlock.hub.trust._bootstrap import init_hub
from airlock.hub.trust._update import update_trust

HOME_OPTION = click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=str(DEFAULT_HOME),
    show_default=True,
    envvar=HOME_ENV,
    help=f"Hub home directory (env {HOME_ENV}).",
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
_FILE = click.Path(dir_okay=False, path_type=Path)
RELEASE_FILE_OPTIONS = (
    click.option(
        "--validation-set",
        type=_FILE,
        help="An .npz with arrays `inputs` and `expected`, shipped as validation.npz "
        "(needs --thresholds).",
    ),
    click.option(
        "--thresholds",
        type=_FILE,
        help="TOML/JSON: min_accuracy, max_error, max_p95_latency_ms, … for the validation set.",
    ),
    click.option(
        "--compat",
        type=_FILE,
        help="TOML/JSON: opset, min_onnxruntime, providers, architectures, min_memory_mb, depends.",
    ),
)


def _prompt(secret_name: str) -> str:
    return str(click.prompt(f"Hub {secret_name}", hide_input=True, err=True))


def _secrets() -> Any:
    """The hub passphrase; a tenant-held key's secret from its own variable or prompt."""
    hub_secrets = env_or_prompt_secrets(PASSPHRASE_ENV, _prompt)

    def handler(name: str) -> str:
        tenant_secret = parse_tenant_secret(name)
        if tenant_secret is None:
            return hub_secrets(name)
        tenant, secret = tenant_secret

        def prompt(_name: str) -> str:
            return str(click.prompt(f"Tenant {tenant}'s key {secret}", hide_input=True, err=True))

        return env_or_prompt_secrets(tenant_secret_env(tenant), prompt)(secret)

    return handler


def _open(home: Path) -> HubContext:
    return open_hub(home, _secrets())


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


@click.group()
def hub() -> None:
    """Release engineer: sign models and export bundles for air-gapped sites.

    \b
    Typical flow:
      airlock hub init --from CEREMONY
      airlock hub site add --identity site-identity.json
      airlock hub model add NAME VERSION model.onnx   (or: model import models:/NAME@ALIAS)
      airlock hub assign SITE NAME VERSION [--plan plan.toml] [--change CHG…]
      airlock hub export --site SITE --out /media/usb/bundle
    To take a bad version back everywhere:
      airlock hub revoke NAME VERSION --reason "…"   (then export for each site)
    Change requests (create, approve, import from ServiceNow): airlock hub change --help
    After the security officers rotate or re-sign the offline roles:
      airlock hub trust update --from CEREMONY
    The hub passphrase comes from AIRLOCK_HUB_PASSPHRASE or a prompt.
    """


@hub.command("init")
@HOME_OPTION
@click.option(
    "--from",
    "ceremony",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The ceremony's output directory (`airlock ceremony init --out`).",
)
@JSON_OPTION
def init(home: Path, ceremony: Path, as_json: bool) -> None:
    """Create a hub home from a key ceremony's output.

    Checks every root's threshold signatures, the Image targets' signatures,
    and that each online key is the one the roots name for its role and opens
    with the hub passphrase. Copies the public metadata and the online keys
    (never the offline keys) and creates the Image `models` role.
    """
    created = init_hub(home, ceremony, _secrets())
    report = hub_status(created)
    created.close()
    if as_json:
        _emit_json(report)
        return
    Console().print(f"[green]hub home created:[/green] {home}")
    _roles_table(report)


def _roles_table(report: dict[str, Any]) -> None:
    rows = []
    for role, info in report["roles"].items():
        left = "" if info["days_left"] is None else f"{info['days_left']}"
        style = "[yellow]" if info.get("expiring") else ""
        rows.append([role, str(info["version"]), str(info["expires"]), f"{style}{left}"])
    _table("signed roles", ["role", "version", "expires", "days left"], rows)


@hub.group("site")
def site() -> None:
    """Register and list sites."""


@site.command("add")
@HOME_OPTION
@click.argument("site_id", required=False)
@click.option(
    "--identity",
    type=click.Path(dir_okay=False, path_type=Path),
    help="site-identity.json written by `airlock spoke init`.",
)
@click.option("--recipient", help="The site's age recipient (age1…), instead of --identity.")
@click.option(
    "--signing-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON file with the site's public signing key, instead of --identity.",
)
@click.option("--transit-days", type=int, help="Days a bundle may take to reach the site.")
@click.option("--no-encryption", is_flag=True, help="Export plain tar payloads to this site.")
@JSON_OPTION
def site_add(
    home: Path,
    site_id: str | None,
    identity: Path | None,
    recipient: str | None,
    signing_key: Path | None,
    transit_days: int | None,
    no_encryption: bool,
    as_json: bool,
) -> None:
    """Register a site: its age recipient, signing key and transit budget.

    Either --identity FILE, or SITE_ID --recipient age1… --signing-key KEY.json.
    """
    hub_ = _open(home)
    if identity is not None:
        if site_id or recipient or signing_key:
            raise UsageError("pass either --identity, or SITE_ID --recipient --signing-key")
        info = add_site_from_file(hub_, identity, transit_days, not no_encryption)
    else:
        if not (site_id and recipient and signing_key):
            raise UsageError(
                "no site identity given",
                hint="pass --identity site-identity.json (or SITE_ID --recipient --signing-key)",
            )
        keyid, key = read_public_key_file(signing_key)
        ident = SiteIdentity(site_id, recipient, keyid, key)
        info = add_site(hub_, ident, transit_days, not no_encryption)
    if as_json:
        _emit_json(info.to_dict())
        return
    encryption = "on" if info.encrypt else "[yellow]off[/yellow]"
    Console().print(
        f"[green]site {info.site_id} registered[/green]: transit budget {info.transit_days} "
        f"days, encryption {encryption}"
    )


@site.command("list")
@HOME_OPTION
@JSON_OPTION
def site_list(home: Path, as_json: bool) -> None:
    """List registered sites."""
    sites = list_sites(_open(home))
    if as_json:
        _emit_json([s.to_dict() for s in sites])
        return
    rows = [
        [
            s.site_id,
            str(s.transit_days),
            "yes" if s.encrypt else "no",
            str(s.sequence),
            ", ".join(f"{n}@{v}" for n, v in s.assignments.items()) or "-",
            s.age_recipient,
        ]
        for s in sites
    ]
    columns = ["site", "transit days", "encrypted", "last sequence", "assigned", "recipient"]
    _table("sites", columns, rows)


@hub.group("model")
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
    hub_ = _open(home)
    release = release_model(
        hub_, name, version, path, record, parts.extras, tenant=tenant, links=links
    )
    owner = family_tenants(hub_).get(name)
    if as_json:
        _emit_json({"created": release.created, "tenant": owner, **release.model.to_dict()})
        return
    console = Console()
    if not release.created:
        console.print(
            f"{release.model.ref} is already released with identical files: nothing changed"
        )
        return
    console.print(f"[green]released {release.model.ref}[/green] (tenant {owner})")
    _files_table(release.model)


def _files_table(model: ModelVersion) -> None:
    """The files of a version, then the one-line summary of its release record."""
    rows = [
        [f.filename, f.kind, str(f.length), f.sha256, "yes" if f.primary else ""]
        for f in model.files
    ]
    _table("files", ["file", "kind", "bytes", "sha256", "graph"], rows)
    Console().print(f"release: {release_view.summary(model.release)}")


@model.command("list")
@HOME_OPTION
@JSON_OPTION
def model_list(home: Path, as_json: bool) -> None:
    """List released model versions with their family's tenant."""
    hub_ = _open(home)
    models, owners = list_models(hub_), family_tenants(hub_)
    flags = revocation_view.version_flags(hub_.engine)
    if as_json:
        _emit_json(
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
    _table("models", columns, rows)


@hub.group("tenant")
def tenant() -> None:
    """Add and list tenants: each signs its own model families with its own key."""


@tenant.command("add")
@HOME_OPTION
@click.argument("name")
@click.option(
    "--key-uri",
    help="A key the tenant holds: hsm:… or airlock-file:/path/key.pem (default: a new "
    "hub-held key, encrypted with the hub passphrase).",
)
@click.option(
    "--public-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The tenant-held key's public key: PEM, or JSON with its keyid (with --key-uri).",
)
@JSON_OPTION
def tenant_add(
    home: Path, name: str, key_uri: str | None, public_key: Path | None, as_json: bool
) -> None:
    """Add tenant NAME, whose Image role `tenant-NAME` will sign its model families.

    Without --key-uri the hub makes the tenant's key and keeps it encrypted
    with the hub passphrase. With --key-uri the tenant holds the key: the hub
    opens it only when it signs the tenant's role (releasing one of its
    models, or an export re-signing the role before it expires) and then asks
    for the key's own passphrase or PIN (prompt, or AIRLOCK_TENANT_SECRET_<NAME>).
    """
    key = read_public_key(public_key) if public_key is not None else None
    info = add_tenant(_open(home), name, _absolute_file_uri(key_uri), key)
    if as_json:
        _emit_json(info.to_dict())
        return
    Console().print(
        f"[green]tenant {info.name} added[/green]: key {info.keyid} held by {info.held_by}"
    )


def _absolute_file_uri(uri: str | None) -> str | None:
    """An ``airlock-file:`` URI with a relative path, made absolute from the working directory."""
    prefix = f"{FILE_SCHEME}:"
    if uri is None or not uri.startswith(prefix):
        return uri
    return f"{prefix}{Path(uri.removeprefix(prefix)).absolute()}"


@tenant.command("list")
@HOME_OPTION
@JSON_OPTION
def tenant_list(home: Path, as_json: bool) -> None:
    """List tenants, their keys and model families."""
    tenants = list_tenants(_open(home))
    if as_json:
        _emit_json([t.to_dict() for t in tenants])
        return
    rows = [[t.name, t.held_by, t.keyid, t.key_uri, ", ".join(t.families) or "-"] for t in tenants]
    _table("tenants", ["tenant", "key held by", "key id", "key URI", "families"], rows)


@hub.command("assign")
@HOME_OPTION
@click.argument("site_id")
@click.argument("name")
@click.argument("version")
@click.option(
    "--plan",
    "plan_file",
    type=_FILE,
    help="Rollout plan (TOML: interval_seconds, [health], [[rings]]); default: the "
    "default plan (canary 5 %, quarter, all).",
)
@click.option(
    "--change",
    metavar="CHG…",
    help="The change request it is done under (approved, in implement, covering "
    "SITE:NAME@VERSION); required when the hub's [change] required is true.",
)
@JSON_OPTION
def assign(
    home: Path,
    site_id: str,
    name: str,
    version: str,
    plan_file: Path | None,
    change: str | None,
    as_json: bool,
) -> None:
    """Tell SITE to run NAME@VERSION (replaces the site's previous version of NAME).

    The rollout plan is signed into the site's Director targets with the
    assignment, and with --change the change request's number, window and
    approval next to it; assigning the same version with another plan
    re-signs it. Revoked versions are refused.
    """
    changed = assign_version(
        _open(home), site_id, name, version, plan_file=plan_file, change=change
    )
    if as_json:
        _emit_json({"site_id": site_id, "model": name, "version": version, "changed": changed})
    elif changed:
        Console().print(f"[green]{site_id} now runs {name}@{version}[/green] (in its next bundle)")
    else:
        Console().print(f"{site_id} already runs {name}@{version} with that plan: nothing changed")


@hub.command("revoke")
@HOME_OPTION
@click.argument("name")
@click.argument("version")
@click.option("--reason", required=True, help="Why: every site is told, and it is audited.")
@click.option(
    "--change",
    metavar="CHG…",
    help="An open change request to record it against (default: a new emergency one).",
)
@JSON_OPTION
def revoke(
    home: Path, name: str, version: str, reason: str, change: str | None, as_json: bool
) -> None:
    """Revoke NAME@VERSION everywhere: never signed, assigned or released again.

    Removes the version from the Image repository (re-signing its tenant's
    role: a tenant-held key's secret is asked for), points every site that
    runs it at its previous good version (never one that site reported as
    rolled back; with none left it is unassigned), and lists the
    revocation and its reason in every site's Director metadata. Then export
    for each site: the bundles are small, as the sites already hold the
    previous version. A revocation never waits for a change window: without
    --change it is recorded against an emergency change request made after
    the fact.
    """
    result = revoke_version(_open(home), name, version, reason, change)
    if as_json:
        _emit_json(result.to_dict())
        return
    console = Console()
    console.print(f"[green]revoked {result.ref}[/green] ({result.reason})")
    console.print(f"recorded against change request {result.change_request}")
    rows = [[s.site_id, s.previous, s.now or "(unassigned)", s.note] for s in result.sites]
    if rows:
        _table("sites moved off the revoked version", ["site", "was", "now", "why"], rows)
    console.print(
        f"{len(result.notified)} site(s) to export for: {', '.join(result.notified) or '-'}"
    )


@hub.command("unassign")
@HOME_OPTION
@click.argument("site_id")
@click.argument("name")
@JSON_OPTION
def unassign(home: Path, site_id: str, name: str, as_json: bool) -> None:
    """Remove SITE's assignment of model NAME."""
    unassign_version(_open(home), site_id, name)
    if as_json:
        _emit_json({"site_id": site_id, "model": name, "removed": True})
    else:
        Console().print(f"[green]{name} removed from {site_id}[/green] (in its next bundle)")


@hub.command("export")
@HOME_OPTION
@click.option("--site", "site_id", required=True, help="The site to export for.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="New (or empty) bundle directory, e.g. on removable media.",
)
@click.option(
    "--full",
    is_flag=True,
    help="Send every assigned version's files again (for a site that lost a bundle).",
)
@JSON_OPTION
def export_(home: Path, site_id: str, out: Path, full: bool, as_json: bool) -> None:
    """Write SITE's next bundle: signed envelope.json + encrypted payload.

    Files of versions already sent to the site are left out (a `delta`
    bundle, or a `revocation` bundle when only revocations changed); --full
    sends everything. Refuses when the Image root, Image targets or Director
    root would expire before the bundle (run a re-signing ceremony and
    `airlock hub trust update` first).
    """
    hub_ = _open(home)
    if as_json:
        envelope = export(hub_, site_id, out, full=full)
        _emit_json({"out": str(out), "envelope": envelope.to_dict()})
        return
    console = Console()
    with console.status(f"exporting the bundle for {site_id}…"):
        envelope = export(hub_, site_id, out, full=full)
    console.print(
        f"[green]{envelope.kind} bundle {envelope.sequence} for {site_id} written to {out}"
        f"[/green] (expires {envelope.expires:%Y-%m-%d %H:%M}Z)"
    )
    if envelope.omitted:
        console.print(f"already at the site, not sent again: {', '.join(envelope.omitted)}")
    rows = [[p.name, str(p.size), p.sha256] for p in envelope.parts]
    _table("payload parts", ["part", "bytes", "sha256"], rows)


@hub.group("trust")
def trust() -> None:
    """Adopt the security officers' root and targets rotations."""


@trust.command("update")
@HOME_OPTION
@click.option(
    "--from",
    "ceremony",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The rotation or re-signing ceremony's output directory.",
)
@JSON_OPTION
def trust_update(home: Path, ceremony: Path, as_json: bool) -> None:
    """Adopt new root versions and a re-signed Image targets from a ceremony's output.

    Checks that the ceremony names this hub's online keys, that every root is
    signed by its own threshold and the previous root's, that the Image
    targets is signed by the newest root's targets threshold, that the hub's
    roots are unchanged at the start of the ceremony's chain, that something
    is newer and nothing goes back, and that nothing has expired. Then adds
    the new versions (keeping the old ones) and re-signs the Image snapshot
    and timestamp. Every site's next bundle carries the new chain.
    """
    hub_ = _open(home)
    update = update_trust(hub_, ceremony)
    if as_json:
        _emit_json(update.to_dict())
        return
    Console().print(f"[green]trust updated[/green] from ceremony {update.ceremony_id or '?'}")
    rows = [
        [
            role.role,
            str(role.old_version),
            str(role.new_version) if role.changed else "unchanged",
            utc_iso(role.expires),
        ]
        for role in update.roles
    ]
    _table("offline roles", ["role", "was", "now", "expires"], rows)


@hub.command("status")
@HOME_OPTION
@JSON_OPTION
def status(home: Path, as_json: bool) -> None:
    """Show role versions and expiries, sites, models and assignments."""
    report = hub_status(_open(home))
    if as_json:
        _emit_json(report)
        return
    _roles_table(report)
    site_rows = [
        [
            s["site_id"],
            str(s["sequence"]),
            str(s["director_targets"]["version"]),
            ", ".join(f"{n}@{v}" for n, v in s["assignments"].items()) or "-",
        ]
        for s in report["sites"]
    ]
    _table("sites", ["site", "last sequence", "director targets", "assigned"], site_rows)
    flags = {(m["name"], m["version"]): m for m in report["models"]}
    model_rows = [
        [
            m["name"],
            m["version"],
            m["tenant"] or "-",
            str(m["files"]),
            str(m["bytes"]),
            revocation_view.label(flags, m["name"], m["version"]),
        ]
        for m in report["models"]
    ]
    _table("models", ["name", "version", "tenant", "files", "bytes", "status"], model_rows)
    if report["revocations"]:
        revoked_rows = [
            [f"{r['model']}@{r['version']}", r["revoked_at"], r["reason"]]
            for r in report["revocations"]
        ]
        _table("revoked versions", ["version", "revoked at", "reason"], revoked_rows)


# `change …` (change requests, approvers, ServiceNow import), the in-toto layout
# commands, `import-metrics` and `report fleet` register themselves on the group above.
from airlock.hub.cli import _changes as _changes  # noqa: E402
from airlock.hub.cli import _fleet as _fleet  # noqa: E402
from airlock.hub.cli import _layout as _layout  # noqa: E402
from airlock.hub.cli import _metrics as _metrics  # noqa: E402

# `model import` (MLflow intake) and `model show` register themselves on the model group.
from airlock.hub.cli import _models as _models  # noqa: E402
