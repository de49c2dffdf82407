"""``airlock hub layout``: draft the in-toto layout, install the officers' signed one, show it.

Guide: docs/release-engineer.md, "Supply-chain attestations (in-toto)".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from airlock.bundles.cli import closing_home, emit_json, print_table
from airlock.bundles.errors import UsageError
from airlock.bundles.intoto import PIPELINE_STEPS
from airlock.hub.cli._options import HOME_OPTION, JSON_OPTION, open_home
from airlock.hub.intake._attestations import draft_layout, layout_info, set_layout

DEFAULT_EXPIRES_DAYS = 90


@click.group("layout", short_help="Draft, set and show the in-toto supply-chain layout.")
def layout() -> None:
    """The in-toto supply-chain layout that attested model versions are checked against.

    \b
      airlock hub layout draft --functionary train=pipeline.pub.pem … --out layout.json
      (each officer: airlock ceremony sign-layout --layout … --out …)
      airlock hub layout set layout.signed.json
      airlock hub model add NAME VERSION model.onnx --links LINKS_DIR
    """


def _functionaries(specs: tuple[str, ...]) -> dict[str, list[Path]]:
    steps: dict[str, list[Path]] = {}
    for spec in specs:
        step, sep, path = spec.partition("=")
        if not sep or not path:
            raise UsageError(
                f"--functionary {spec!r} is not STEP=PUBLIC_KEY.pem",
                hint="e.g. --functionary train=pipeline.pub.pem "
                f"(steps: {', '.join(PIPELINE_STEPS)})",
            )
        steps.setdefault(step, []).append(Path(path))
    return steps


def _show(summary: dict[str, Any]) -> None:
    console = Console(highlight=False)
    console.print(f"layout content SHA-256 [bold]{summary['content_sha256']}[/] (read it out)")
    console.print(f"file SHA-256 {summary['sha256']}, expires [bold]{summary['expires']}[/]")
    rows = []
    for step in summary["steps"]:
        keys = ", ".join(
            f"{k['fingerprint']}{' (' + k['holder'] + ')' if k['holder'] else ''}"
            for k in step["functionaries"]
        )
        rows.append(
            [
                step["name"],
                keys,
                "\n".join(step["materials"]),
                "\n".join(step["products"]),
            ]
        )
    for item in summary["inspections"]:
        rows.append(
            [
                f"{item['name']} (inspection: {' '.join(item['run'])})",
                "-",
                "\n".join(item["materials"]),
                "\n".join(item["products"]),
            ]
        )
    print_table("steps", ["step", "functionaries", "materials", "products"], rows)
    signatures = [[s["fingerprint"], s["holder"] or "-", s["keyid"]] for s in summary["signatures"]]
    if signatures:
        print_table("signatures", ["key", "holder", "key id"], signatures)
    else:
        console.print("not signed yet")


@layout.command("draft")
@HOME_OPTION
@click.option(
    "--functionary",
    "functionaries",
    multiple=True,
    metavar="STEP=PUB.pem",
    help="A pipeline step (train, evaluate, convert) and a PEM public key allowed to sign "
    "its link; repeat for every step (and for several keys of one step).",
)
@click.option(
    "--expires-days",
    type=int,
    default=DEFAULT_EXPIRES_DAYS,
    show_default=True,
    help="Lifetime of the layout (not beyond the officers' layout role).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The unsigned layout to write (a new file) for the officers to sign.",
)
@JSON_OPTION
def draft(
    home: Path, functionaries: tuple[str, ...], expires_days: int, out: Path, as_json: bool
) -> None:
    """Write an unsigned layout: train, evaluate, convert (pipeline keys) and package (hub key).

    The hub's package key is made at first use (encrypted with the hub
    passphrase). Carry the file to the security officers; a threshold of them
    signs it with `airlock ceremony sign-layout`; then `airlock hub layout set`.
    """
    with closing_home(open_home(home)) as ctx:
        info = draft_layout(ctx, _functionaries(functionaries), expires_days, out)
    if as_json:
        emit_json({"out": str(out), **info.to_dict()})
        return
    _show(info.summary)
    Console().print(f"[green]unsigned layout written to {out}[/green]; have the officers sign it")


@layout.command("set")
@HOME_OPTION
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@JSON_OPTION
def set_(home: Path, path: Path, as_json: bool) -> None:
    """Install the officers' signed layout PATH as the current layout.

    A threshold of the layout keys anchored in the Image root must have signed
    it, and it may not expire after the officers' layout role. Versions
    released with --links from now on carry it.
    """
    with closing_home(open_home(home)) as ctx:
        info = set_layout(ctx, path)
    if as_json:
        emit_json(info.to_dict())
        return
    _show(info.summary)
    if info.changed:
        Console().print(f"[green]layout {info.summary['sha256'][:16]}… is now current[/green]")
    else:
        Console().print("this layout is already the current one: nothing changed")


@layout.command("show")
@HOME_OPTION
@JSON_OPTION
def show(home: Path, as_json: bool) -> None:
    """Show the current layout: steps, functionaries, rules, signatures, expiry."""
    with closing_home(open_home(home)) as ctx:
        info = layout_info(ctx)
    if info is None:
        raise UsageError(
            "no in-toto layout is set at this hub",
            hint="`airlock hub layout draft`, the officers sign, `airlock hub layout set FILE`",
        )
    if as_json:
        emit_json(info.to_dict())
        return
    _show(info.summary)
