"""The coordinator's and anyone's ``airlock ceremony`` commands.

Coordinator: ``plan new``, ``propose``, ``finalize``, ``seal-transcript``
(the hub passphrase for a new ceremony's online keys comes from
``AIRLOCK_HUB_PASSPHRASE`` or a no-echo prompt asked twice). Officers check
their plan copy with ``plan check``. Anyone: ``verify-transcript``,
``status``. Runbook: docs/security-officer.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from airlock.bundles.atomic import atomic_write_bytes
from airlock.bundles.cli import emit_json
from airlock.bundles.clock import SystemClock, utc_iso
from airlock.bundles.errors import ConflictError, IntegrityError
from airlock.ceremony.cli._options import (
    HUB_SECRET_ENV,
    JSON,
    WORKSPACE,
    console_out,
    secret_from_env_or_prompt,
)
from airlock.ceremony.coordinator._finalize import finalize
from airlock.ceremony.coordinator._propose import propose
from airlock.ceremony.coordinator._transcript import (
    HTML_FILE,
    read_transcript,
    render_html,
    seal_transcript,
)
from airlock.ceremony.coordinator._verify import verify_transcript
from airlock.ceremony.coordinator._workspace import Workspace
from airlock.ceremony.documents import _schedule as schedule
from airlock.ceremony.documents._plan import (
    ROLE_TITLES,
    ROLES,
    CeremonyPlan,
    load_plan,
    new_plan_text,
)
from airlock.ceremony.steps import StepLog


@click.group("plan")
def plan_group() -> None:
    """Write or check the ceremony plan (officers, witnesses, roles, thresholds)."""


@plan_group.command("new")
@WORKSPACE
@click.option("--id", "ceremony_id", required=True, help="The ceremony's id, e.g. 2026-11-roots.")
@click.option("--location", required=True, help="Where the ceremony takes place.")
@click.option("--officer", "officers", multiple=True, required=True, help="An officer (repeat).")
@click.option("--witness", "witnesses", multiple=True, help="A witness (repeat).")
@click.option(
    "--valid-days",
    default=14,
    show_default=True,
    help="Days until the plan expires (no step runs after).",
)
def plan_new(
    workspace: Path,
    ceremony_id: str,
    location: str,
    officers: tuple[str, ...],
    witnesses: tuple[str, ...],
    valid_days: int,
) -> None:
    """Start a workspace with a plan using the default roles; edit it before sharing.

    Defaults: Image and Director root 2-of-3 for 365 days, Image targets 1-of-2
    for 180 days, in-toto layout 1-of-2 for 365 days, all Ed25519.
    """
    clock = SystemClock()
    space = Workspace(workspace)
    with (
        StepLog(workspace, space.audit_db, clock) as steps,
        steps.step("ceremony.plan", ceremony_id, {"officers": list(officers)}) as audit,
    ):
        if space.plan_file.exists():
            raise ConflictError(
                f"{space.plan_file} already exists",
                hint="one workspace per ceremony: choose a new --workspace",
            )
        text = new_plan_text(ceremony_id, location, officers, witnesses, clock.now(), valid_days)
        atomic_write_bytes(space.plan_file, text.encode("utf-8"))
        plan = load_plan(space.plan_file)
        audit["plan_sha256"] = plan.sha256
    click.echo(f"wrote {space.plan_file}")
    click.echo(f"plan SHA-256 {plan.sha256}")
    click.echo(
        "edit it if needed, run `airlock ceremony plan check`, then give every officer a copy"
    )


@plan_group.command("check")
@click.argument("plan_file", type=click.Path(dir_okay=False, path_type=Path))
@JSON
def plan_check(plan_file: Path, as_json: bool) -> None:
    """Validate a plan and show it, with the SHA-256 everyone compares aloud."""
    plan = load_plan(plan_file)
    plan.check_valid(SystemClock().now())
    if as_json:
        emit_json(plan.to_dict())
        return
    _render_plan(plan, console_out())


def _render_plan(plan: CeremonyPlan, console: Console) -> None:
    console.print(f"[bold]Ceremony {plan.ceremony_id}[/] at {plan.location}")
    console.print(f"valid until {utc_iso(plan.valid_until)}")
    console.print(f"plan SHA-256 [bold]{plan.sha256}[/]")
    console.print("officers: " + ", ".join(p.name for p in plan.officers))
    console.print("witnesses: " + (", ".join(p.name for p in plan.witnesses) or "none"))
    for role in ROLES:
        spec = plan.roles[role]
        console.print(
            f"  {ROLE_TITLES[role]:<15} {spec.threshold} of {len(spec.officers)} "
            f"({', '.join(spec.officers)}), {spec.algorithm}, {spec.expiry_days} days"
        )


@click.command("propose")
@WORKSPACE
@click.option(
    "--offer",
    "offers",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="An officer's key offer (repeat: one per officer).",
)
@click.option(
    "--rotate-from",
    type=click.Path(file_okay=False, path_type=Path),
    help="The previous ceremony directory (for a rotation or re-signing).",
)
@click.option("--revoke", multiple=True, help="A key id to remove from every role (repeat).")
def propose_command(
    workspace: Path, offers: tuple[Path, ...], rotate_from: Path | None, revoke: tuple[str, ...]
) -> None:
    """Check the key offers and write the signing request (request.json)."""

    def hub(_name: str) -> str:
        return secret_from_env_or_prompt(HUB_SECRET_ENV, "Hub passphrase for the new online keys")

    request, sha256 = propose(
        Workspace(workspace),
        list(offers),
        rotate_from=rotate_from,
        revoke=list(revoke),
        hub_passphrase=hub if rotate_from is None else None,
        clock=SystemClock(),
    )
    click.echo(f"wrote {Workspace(workspace).request_file} ({request.kind})")
    click.echo(f"request SHA-256 {sha256}")
    click.echo("read the SHA-256 aloud; every officer checks it with `airlock ceremony sign`")


@click.command("finalize")
@WORKSPACE
@click.option(
    "--signatures",
    "signature_files",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="An officer's signature file (repeat).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="New directory for the finished ceremony.",
)
def finalize_command(workspace: Path, signature_files: tuple[Path, ...], out_dir: Path) -> None:
    """Verify every signature and threshold; write the signed roots and the transcript."""
    transcript = finalize(Workspace(workspace), list(signature_files), out_dir, SystemClock())
    click.echo(f"ceremony {transcript.body['ceremony_id']} finalized into {out_dir}")
    for item in transcript.body["metadata"]:
        click.echo(f"  {item['file']}  v{item['version']}  expires {item['expires']}")
    click.echo(f"transcript SHA-256 {transcript.sha256}")
    click.echo(
        f"each officer now signs it: `airlock ceremony sign-transcript --dir {out_dir} …`; "
        f"printable page: {out_dir / HTML_FILE}"
    )


@click.command("seal-transcript")
@WORKSPACE
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.argument("signature_files", nargs=-1, required=True, type=click.Path(path_type=Path))
def seal_transcript_command(
    workspace: Path, directory: Path, signature_files: tuple[Path, ...]
) -> None:
    """Add the officers' transcript signatures to transcript.json (each verified)."""
    space = Workspace(workspace)
    with StepLog(space.directory, space.audit_db, SystemClock()) as log:
        sealed = seal_transcript(directory, list(signature_files), log)
    signed = [s["officer"] for s in sealed.signatures]
    click.echo(f"transcript signed by {', '.join(signed)}; page: {directory / HTML_FILE}")


@click.command("verify-transcript")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--any-tool", is_flag=True, help="Skip the check of the installed packages.")
@JSON
def verify_transcript_command(directory: Path, any_tool: bool, as_json: bool) -> None:
    """Check a ceremony's transcript against its files; exit 12 on any mismatch."""
    report = verify_transcript(directory, check_tool=not any_tool)
    if as_json:
        if report.ok:  # a failed report goes out with its error, as one document
            emit_json(report.to_dict())
    else:
        for check in report.checks:
            mark = "[green]ok  [/]" if check["ok"] else "[red]FAIL[/]"
            console_out().print(f"{mark} {check['check']}: {check['detail']}")
    if not report.ok:
        failed = ", ".join(check["check"] for check in report.checks if not check["ok"])
        error = IntegrityError(
            f"the transcript does not match the ceremony's files (failed: {failed})",
            hint="do not use this ceremony directory; take it again from an officer's copy "
            "and verify that copy",
            report=report.to_dict(),
        )
        raise error


@click.command("render-transcript")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="New HTML file for the printable page.",
)
def render_transcript_command(directory: Path, out: Path) -> None:
    """Print a fresh transcript.html from the signed transcript.json (to replace a lost page)."""
    if out.exists():
        raise ConflictError(f"{out} already exists", hint="choose another --out")
    page = render_html(read_transcript(directory))
    atomic_write_bytes(out, page.encode("utf-8"))
    click.echo(f"wrote {out}; check the record with `airlock ceremony verify-transcript`")


@click.command("status")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--lead-days",
    default=schedule.DEFAULT_LEAD_DAYS,
    show_default=True,
    help="Re-sign this many days before an expiry.",
)
@JSON
def status_command(directory: Path, lead_days: int, as_json: bool) -> None:
    """Each offline role's expiry and the date of the next re-signing ceremony.

    \b
    Exit codes: 0 nothing due; 20 a role is inside the lead time; 21 a role
    has expired. Suitable for cron and monitoring.
    """
    entries = schedule.ceremony_calendar(directory, SystemClock().now(), lead_days)
    code = schedule.exit_code(entries)
    next_by = utc_iso(min(entry.resign_by for entry in entries))
    if as_json:
        emit_json(
            {
                "lead_days": lead_days,
                "roles": [e.to_dict() for e in entries],
                "next_ceremony_by": next_by,
                "exit_code": code,
            }
        )
    else:
        console = console_out()
        for entry in entries:
            colour = {"ok": "green", "due": "yellow", "expired": "red"}[entry.state]
            console.print(
                f"[{colour}]{entry.state:<7}[/] {entry.role:<20} v{entry.version:<3} "
                f"expires {utc_iso(entry.expires)}  re-sign by {utc_iso(entry.resign_by)} "
                f"({entry.days_left} days left)"
            )
        console.print(f"next re-signing ceremony by {next_by} (lead time {lead_days} days)")
    sys.exit(code)
