"""``airlock audit``: verify the tamper-evident log, sign checkpoints, prove entries.

``verify``, ``prove``, ``verify-proof`` and ``verify-receipt`` only read; ``checkpoint`` appends
an entry and a signed checkpoint (it needs the hub's or site's passphrase).
``verify-proof`` needs no home and no database: only the proof, the signed
checkpoint and the public key. ``query`` and ``report`` come from
:mod:`._audit_query`; this module registers them on the group.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from securesystemslib.signer import SecretsHandler

from airlock.bundles.atomic import atomic_write_bytes, atomic_write_json
from airlock.bundles.audit._checkpoint import verify_checkpoint
from airlock.bundles.audit._checkpoint_store import (
    CHECKPOINT_ACTION,
    KEY_PEM,
    checkpoint_signer,
    home_checkpoint_key,
    home_origin,
    read_checkpoint_key,
    write_checkpoint,
)
from airlock.bundles.audit._log import AuditLog, AuditRecord, failure_details, failure_outcome
from airlock.bundles.audit._log_verify import LogReport, verify_log
from airlock.bundles.audit._proof import prove_entry, read_proof_file, verify_inclusion_proof
from airlock.bundles.cli._audit_options import (
    HOME_OPTION,
    KEPT_CHECKPOINTS_OPTION,
    TRUSTED_KEY_OPTION,
    checkpoint_keys,
    read_key_file,
    read_text,
)
from airlock.bundles.cli._audit_query import query_command, report_command
from airlock.bundles.cli._audit_receipt import verify_receipt_command
from airlock.bundles.cli._toolkit import emit_json, home_database, json_option
from airlock.bundles.clock import SystemClock
from airlock.bundles.config import HomeConfig, load_config
from airlock.bundles.errors import AirlockError, VerificationError
from airlock.bundles.keys._signers import env_or_prompt_secrets


@click.group()
def audit() -> None:
    """Verify the tamper-evident audit log, sign checkpoints, prove entries."""


@audit.command("verify")
@HOME_OPTION
@TRUSTED_KEY_OPTION
@KEPT_CHECKPOINTS_OPTION
@json_option()
def verify(home: Path, key_path: Path | None, notes: tuple[Path, ...], as_json: bool) -> None:
    """Recompute the Merkle tree and check every checkpoint; name the first bad entry.

    Also checks that every checkpoint an `audit.checkpoint` entry records is
    still stored, and, on a spoke, the checkpoint the hub acknowledged (its
    cosignature, and that the log still extends it). Exits 0 when the log is
    intact, 10 when it was altered (the kind and the first bad entry are printed).
    """
    config = load_config(home)
    keys = checkpoint_keys(home, key_path)
    external = [read_text(note, "checkpoint") for note in notes]
    with home_database(config, AuditRecord) as engine:
        report = verify_log(engine, keys, external=external)
    if not report.ok:  # under --json the report goes out with the error, as one document
        where = f" at entry {report.first_bad_seq}" if report.first_bad_seq else ""
        raise VerificationError(
            f"audit log check failed{where} ({report.kind}): {report.problem}",
            hint="the log or its checkpoints were altered after they were written; "
            "preserve the database and compare with checkpoints kept elsewhere",
            report=report.to_dict(),
        )
    if as_json:
        emit_json(report.to_dict(), sort_keys=False)
    else:
        _print_ok(report)


def _print_ok(report: LogReport) -> None:
    click.secho(f"audit log OK: {report.entries} entries, root {report.root}", fg="green")
    latest = report.latest_checkpoint
    if latest:
        click.echo(
            f"  {report.checkpoints_checked} checkpoint(s) verified; newest: "
            f"{latest['size']} entries, signed by {latest['origin']}"
        )
        unsigned = report.entries - int(latest["size"])
        if unsigned:
            click.echo(f"  {unsigned} entries since the newest checkpoint are not yet signed")
    else:
        click.echo("  no checkpoint yet: write one with `airlock audit checkpoint`")
    if report.acknowledged_checked is not None:
        click.echo(
            f"  the checkpoint the hub acknowledged ({report.acknowledged_checked} entries) "
            "verified: cosigned by the hub, and the log extends it"
        )


def _secrets(config: HomeConfig) -> SecretsHandler:
    env = f"AIRLOCK_{config.role.upper()}_PASSPHRASE"
    prompt = None
    if os.isatty(0):

        def prompt(name: str) -> str:
            return str(click.prompt(f"{config.role} {name}", hide_input=True))

    handler = env_or_prompt_secrets(env, prompt)
    cache: dict[str, str] = {}

    def cached(name: str) -> str:
        if name not in cache:
            cache[name] = handler(name)
        return cache[name]

    return cached


@audit.command("checkpoint")
@HOME_OPTION
@json_option()
def checkpoint(home: Path, as_json: bool) -> None:
    """Sign a checkpoint of the log now (asks for the hub's or site's passphrase).

    The passphrase comes from AIRLOCK_HUB_PASSPHRASE / AIRLOCK_SPOKE_PASSPHRASE
    or a prompt. A hub makes its checkpoint key on first use.
    """
    config = load_config(home)
    site = str(config.get("site_id", "")) if config.role == "spoke" else ""
    clock = SystemClock()
    with home_database(config, AuditRecord) as engine:
        log = AuditLog(engine, component=config.role, site=site)
        try:
            home_origin(config)  # refuses homes that do not sign checkpoints, before any change
            secrets = _secrets(config)
            key = home_checkpoint_key(config, secrets)
            signer = checkpoint_signer(config, key, secrets)
            made = write_checkpoint(log, signer, key.origin, clock.now())
        except AirlockError as exc:
            log.record(
                CHECKPOINT_ACTION,
                failure_outcome(exc),
                object=str(home),
                details=failure_details(exc),
                when=clock.now(),
            )
            raise
    if as_json:
        emit_json(made.to_dict() | {"key": str(home / KEY_PEM)}, sort_keys=False)
        return
    click.secho(f"checkpoint of {made.size} entries signed by {made.origin}", fg="green")
    click.echo(made.note, nl=False)
    click.echo(f"public key for auditors: {home / KEY_PEM}")


@audit.command("prove")
@HOME_OPTION
@click.argument("seq", type=click.IntRange(min=1))
@click.option(
    "--checkpoint",
    "which",
    default="latest",
    show_default=True,
    help="The stored checkpoint to prove against: its size, or `latest`.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="proof.json"
)
@click.option(
    "--note-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the signed checkpoint [default: checkpoint-SIZE.txt next to --out].",
)
@json_option()
def prove(
    home: Path, seq: int, which: str, out: Path, note_out: Path | None, as_json: bool
) -> None:
    """Write an inclusion proof of entry SEQ that anyone can check offline.

    Writes the proof and the signed checkpoint it is against; with the home's
    audit-checkpoint-key.pem, `airlock audit verify-proof` checks them anywhere.
    """
    config = load_config(home)
    size = None if which == "latest" else _size(which)
    with home_database(config, AuditRecord) as engine:
        proof = prove_entry(engine, seq, size)
    published = read_checkpoint_key(home)
    if published is not None:
        verify_checkpoint(proof.checkpoint, published.keys)
    note_path = note_out or Path(out).parent / f"checkpoint-{proof.tree_size}.txt"
    atomic_write_json(Path(out), proof.to_dict())
    atomic_write_bytes(note_path, proof.checkpoint.encode("utf-8"))
    files = {"proof": str(out), "checkpoint": str(note_path), "key": str(home / KEY_PEM)}
    if as_json:
        emit_json({"seq": seq, "tree_size": proof.tree_size} | files, sort_keys=False)
        return
    click.secho(f"proof of entry {seq} in the checkpoint of {proof.tree_size} entries", fg="green")
    click.echo(
        f"  check it anywhere: airlock audit verify-proof --proof {out} "
        f"--checkpoint {note_path} --key {home / KEY_PEM}"
    )


def _size(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise click.BadParameter("a checkpoint size (a positive number) or `latest`")
    return int(text)


@audit.command("verify-proof")
@click.option(
    "--proof", "proof_path", type=click.Path(dir_okay=False, path_type=Path), required=True
)
@click.option(
    "--checkpoint",
    "note_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The signed checkpoint note.",
)
@click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The hub's or site's audit-checkpoint-key.pem (or .json).",
)
@json_option()
def verify_proof(proof_path: Path, note_path: Path, key_path: Path, as_json: bool) -> None:
    """Check an inclusion proof offline: no home, no database, only the three files.

    Exits 0 when the entry is in the signed log; 11 when the checkpoint's
    signature does not verify with the key; 12 when the entry or the proof was
    altered (or does not match the checkpoint).
    """
    proof = read_proof_file(read_text(proof_path, "proof"))
    note = read_text(note_path, "checkpoint")
    result = verify_inclusion_proof(proof, note, read_key_file(key_path))
    if as_json:
        emit_json(result.to_dict(), sort_keys=False)
        return
    entry = result.entry
    click.secho(
        f"entry {entry.get('seq')} is in the log of {result.checkpoint.origin} "
        f"(checkpoint of {result.checkpoint.size} entries)",
        fg="green",
    )
    click.echo(
        f"  {entry.get('time')}  {entry.get('principal')}  {entry.get('action')}  "
        f"{entry.get('object')}  {entry.get('outcome')}"
    )


audit.add_command(query_command)
audit.add_command(report_command)
audit.add_command(verify_receipt_command)
