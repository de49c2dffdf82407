"""``airlock spoke import``: a bundle from one or several media, its status, abandoning it.

``airlock spoke import DIR [DIR…]`` takes a format-1 bundle (one directory) or
the media of a format-2 bundle (one directory per medium, in any order);
``--status`` lists what a pending format-2 import still needs, per volume;
``--abandon [BUNDLE_ID]`` drops a pending import's state; ``--receipt FILE``
also writes the signed import receipt to a new file. The work is in
:mod:`airlock.spoke.importing`; this module only parses and prints.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from airlock.bundles.cli import closing_home, emit_json
from airlock.bundles.errors import ConflictError
from airlock.spoke.cli._options import HOME_OPTION, JSON_OPTION, open_home
from airlock.spoke.site._names import PASSPHRASE_ENV

ABANDON_ANY = "\0any"
"""``--abandon`` without a bundle id: the one pending import."""


@click.command("import")
@HOME_OPTION
@click.argument("bundle", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--status",
    is_flag=True,
    help="List what the pending import(s) hold and still need, per volume (with DIRs: "
    "also which volumes the given media carry).",
)
@click.option(
    "--abandon",
    metavar="[BUNDLE_ID]",
    is_flag=False,
    flag_value=ABANDON_ANY,
    default=None,
    help="Drop a pending import's verified volumes (the only one, or BUNDLE_ID).",
)
@click.option(
    "--receipt",
    "receipt_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the signed import receipt to this new file.",
)
@JSON_OPTION
def import_command(
    home: Path,
    bundle: tuple[Path, ...],
    status: bool,
    abandon: str | None,
    receipt_path: Path | None,
    as_json: bool,
) -> None:
    """Verify a bundle from removable media and stage its models.

    BUNDLE is the bundle's directory; a bundle on several media (format 2)
    takes one directory per medium, in any order. Checks, in order: envelope
    signature and fields, the per-site part (or payload), TUF (Image and
    Director), every chunk against its signed index, in-toto, the validation
    gate (exit 18 on failure), then stages atomically. Any failure changes
    nothing. Volumes still missing or damaged: exit 9, naming them; what was
    verified is kept, and importing again with more media continues.
    """
    _check_usage(bundle, status, abandon, receipt_path)
    if status:
        _status(home, bundle, as_json)
    elif abandon is not None:
        _abandon(home, None if abandon == ABANDON_ANY else abandon, as_json)
    else:
        _import(home, bundle, receipt_path, as_json)


def _check_usage(
    bundle: tuple[Path, ...], status: bool, abandon: str | None, receipt: Path | None
) -> None:
    if status and abandon is not None:
        raise click.UsageError("--status and --abandon do not go together")
    if (status or abandon is not None) and receipt is not None:
        raise click.UsageError("--receipt goes with an import, not with --status or --abandon")
    if abandon is not None and bundle:
        raise click.UsageError("--abandon takes a bundle id, not bundle directories")
    if not bundle and not status and abandon is None:
        raise click.UsageError(
            "Missing argument 'BUNDLE'. Give the bundle's directory (one per medium)."
        )
    if receipt is not None and (receipt.exists() or receipt.is_symlink()):
        raise ConflictError(
            f"{receipt} already exists: a receipt is never overwritten",
            hint="name a new file for the receipt",
        )


def _import(home: Path, bundle: tuple[Path, ...], receipt: Path | None, as_json: bool) -> None:
    from airlock.spoke.site._unlock import unlock_ahead

    passphrase = os.environ.get(PASSPHRASE_ENV)  # no prompt needed: unlock while the rest loads
    unlocking = unlock_ahead(home, passphrase) if passphrase else None
    from rich.console import Console

    from airlock.bundles.cli import progress_for
    from airlock.spoke.importing import import_media, write_receipt_file

    with closing_home(open_home(home, unlocking)) as spoke_home:
        result = import_media(spoke_home, list(bundle), progress=progress_for(as_json))
    if receipt is not None and result.receipt is not None:
        write_receipt_file(receipt, result.receipt)
    if as_json:
        emit_json(result.to_dict(), sort_keys=False)
        return
    console = Console()
    console.print(
        f"[green]imported[/green] {result.kind} bundle {result.bundle_id} "
        f"(sequence {result.sequence}): {result.new_blobs} new file(s)"
    )
    for ref in result.staged:
        console.print(f"  staged   {ref}{_gate_note(result.gate.get(ref, {}))}")
    for ref in result.already_staged:
        console.print(f"  present  {ref}")
    for entry in result.revoked:
        console.print(
            f"  [red]revoked[/red]  {entry['model']}@{entry['version']} ({entry['reason']}): "
            "the rollout engine moves every node off it"
        )
    if result.volumes:
        for label, key in (("read", "read"), ("rebuilt", "rebuilt"), ("resumed", "resumed")):
            if result.volumes.get(key):
                console.print(f"  volumes {label}: {len(result.volumes[key])}")
    if receipt is not None:
        console.print(f"  signed receipt written to {receipt}")


def _gate_note(figures: dict[str, Any]) -> str:
    from airlock.spoke.status import gate_row

    outcome, result, latency, _thresholds, _runtime = gate_row(figures)
    if result == "not signed" and _runtime == "not signed":
        return ""
    return f"  (gate {outcome}: {result}, p95 {latency})"


def _status(home: Path, bundle: tuple[Path, ...], as_json: bool) -> None:
    from rich.console import Console

    from airlock.spoke.importing import import_status
    from airlock.spoke.site._home import SpokeHome

    with closing_home(SpokeHome(home)) as spoke_home:
        pending = import_status(spoke_home, list(bundle))
    if as_json:
        emit_json({"pending": [p.to_dict() for p in pending]}, sort_keys=False)
        return
    console = Console(highlight=False)
    if not pending:
        console.print("no pending import")
        return
    for item in pending:
        for line in item.lines(media=bool(bundle)):
            console.print(line, markup=False)


def _abandon(home: Path, bundle_id: str | None, as_json: bool) -> None:
    from airlock.spoke.importing import abandon_import
    from airlock.spoke.site._home import SpokeHome

    with closing_home(SpokeHome(home)) as spoke_home:
        dropped = abandon_import(spoke_home, bundle_id)
    if as_json:
        emit_json({"abandoned": dropped}, sort_keys=False)
        return
    click.echo(
        f"abandoned the pending import of bundle {dropped['bundle_id']} "
        f"(sequence {dropped['sequence']}): what it had verified is removed"
    )
