"""``airlock bundle``: look at a bundle on media without any key (site admins, couriers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from airlock.bundles.bundle._inspect import inspect_bundle
from airlock.bundles.cli._tables import print_table
from airlock.bundles.cli._toolkit import emit_json, json_option
from airlock.bundles.clock import SystemClock


@click.group()
def bundle() -> None:
    """Look at a bundle on media, with no key: what its envelope says, what is missing.

    \b
      airlock bundle inspect /media/dvd1 /media/dvd2 …
    """


@bundle.command("inspect")
@click.argument(
    "directories",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option("--site", "site_id", help="Which site's envelope, on media made for several sites.")
@click.option(
    "--identity",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The site's age identity file (`airlock spoke identity export-age`): also list "
    "the model files the per-site part names (decrypted, not verified).",
)
@json_option()
def inspect(
    directories: tuple[Path, ...], site_id: str | None, identity: Path | None, as_json: bool
) -> None:
    """What the plaintext envelope says and which volumes DIRECTORIES hold (nothing verified)."""
    report = inspect_bundle(list(directories), SystemClock().now(), site_id)
    if identity is not None:
        report["contents"] = _contents(list(directories), site_id, identity)
    if as_json:
        emit_json(report)
        return
    _print(report)


def _contents(directories: list[Path], site_id: str | None, identity: Path) -> list[dict[str, Any]]:
    """The model files the per-site part's newest Director targets name (format 2 only).

    Raises:
        UsageError: a format-1 bundle, or no per-site part on the media.
        DecryptionError: the identity does not open the per-site part.
    """
    from airlock.bundles.agestream import parse_identity
    from airlock.bundles.bundle import locate_bundle
    from airlock.bundles.errors import UsageError
    from airlock.bundles.strict import strict_json
    from airlock.bundles.volumes import read_site_part

    located = locate_bundle(directories, site_id)
    part = located.envelope.site_part
    if part is None or located.site_part is None:
        raise UsageError(
            "no per-site part to list (a format-1 bundle, or site.age is not on these media)",
            hint="give the medium that carries site.age",
        )
    keys = [parse_identity(identity.read_text(encoding="utf-8"))]
    site_part = read_site_part(located.site_part, keys, size=part.size, sha256=part.sha256)
    targets = [n for n in site_part.metadata if n.startswith("metadata/director/")]
    targets = [n for n in targets if n.endswith(".targets.json")]
    if not targets:
        return []
    newest = max(targets, key=lambda n: int(n.rsplit("/", 1)[1].split(".", 1)[0]))
    signed = strict_json(site_part.metadata[newest])["signed"]
    rows = []
    for path, target in sorted(signed.get("targets", {}).items()):
        custom = target.get("custom", {}).get("airlock", {})
        sha256 = target.get("hashes", {}).get("sha256", "")
        rows.append(
            {
                "path": path,
                "model": custom.get("model"),
                "version": custom.get("version"),
                "file": custom.get("file"),
                "length": target.get("length"),
                "sha256": sha256,
                "carried": sha256 in site_part.indexes,
            }
        )
    return rows


def _print(report: dict[str, Any]) -> None:
    console = Console()
    expiry = "EXPIRED" if report["expired"] else "valid"
    console.print(
        f"Bundle {report['bundle_id']} for site [bold]{report['site_id']}[/] — "
        f"{report['kind']}, sequence {report['sequence']}, format {report['format_version']}\n"
        f"created {report['created']}, expires {report['expires']} ({expiry}); "
        f"{'encrypted (age)' if report['encrypted'] else 'NOT encrypted'}\n"
        "[dim]Nothing is verified here: `airlock spoke import` checks the signature and "
        "every chunk.[/]"
    )
    if report["format_version"] == 1:
        parts = [(p["name"], str(p["size"]), p["state"]) for p in report["parts"]]
        print_table("payload parts", ("file", "signed size", "state"), parts, console=console)
        return
    part = report["site_part"]
    console.print(f"per-site part {part['name']}: {part['size']} bytes, {part['state']}")
    rows = [
        (
            v["name"],
            f"{v['kind']} {v['number']} of {v['of']}",
            str(v["size"]),
            v["state"],
            v["path"] or "",
        )
        for v in report["volumes"]
    ]
    if rows:
        print_table(
            "volumes", ("file", "volume", "size", "state", "found at"), rows, console=console
        )
    if "contents" in report:
        listed = [
            (
                f"{c['model']}@{c['version']}",
                str(c["file"]),
                f"{c['length']:,}",
                "yes" if c["carried"] else "no (site holds it)",
            )
            for c in report["contents"]
        ]
        print_table(
            "contents (decrypted, not verified)",
            ("model", "file", "bytes", "carried"),
            listed,
            console=console,
        )
    for series in report["series"]:
        if series["complete"]:
            verdict = "every data volume is present"
        elif series["rebuildable"]:
            verdict = f"can be rebuilt from parity ({', '.join(series['lost_data'])} missing)"
        else:
            verdict = (
                f"cannot be imported yet: bring {series['needed']} more volume(s) of this "
                f"series ({', '.join(series['lost_data'])} missing)"
            )
        console.print(
            f"series {series['id']}: {series['data']} data + {series['parity']} parity volumes, "
            f"{series['present']} present — {verdict}"
        )
