"""``airlock spoke node``: enrol, list and remove the site's inference nodes.

Guide: docs/site-admin.md. A node's key pair is made on the node
(``airlock agent init`` writes ``node-identity.json``); the site admin enrols
the public half here and gives the node the ``agent-bootstrap.json`` this
writes. Unenrolled and removed nodes get nothing from the spoke.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from airlock.bundles.cli import FittedTable, closing_home, emit_json
from airlock.bundles.clock import SystemClock
from airlock.spoke.cli._options import HOME_OPTION, JSON_OPTION, open_home
from airlock.spoke.site._home import SpokeHome


@click.group("node", short_help="Enrol, list and remove inference nodes.")
def node() -> None:
    """The site's inference nodes: only enrolled nodes are served.

    \b
    Typical flow:
      (on the node)  airlock agent init … → node-identity.json
      airlock spoke node enroll --identity node-identity.json \\
          --url https://spoke.site:8750 --label ring=canary --out agent-bootstrap.json
      (give agent-bootstrap.json to the node)
      airlock spoke node list
      airlock spoke node remove NODE_ID --reason "decommissioned"
    """


@node.command("enroll")
@HOME_OPTION
@click.option(
    "--identity",
    "identity_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The node's node-identity.json (public key).",
)
@click.option("--url", "spoke_url", required=True, help="The URL nodes reach this spoke at.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="A node label.")
@click.option(
    "--tls-ca",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PEM certificate the node should trust for the spoke's TLS (put in the bootstrap).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default="agent-bootstrap.json",
    show_default=True,
    help="Where to write the node's bootstrap file.",
)
@JSON_OPTION
def enroll(
    home: Path,
    identity_file: Path,
    spoke_url: str,
    labels: tuple[str, ...],
    tls_ca: Path | None,
    out: Path,
    as_json: bool,
) -> None:
    """Enrol a node's public key and write its agent-bootstrap.json.

    The bootstrap holds the spoke's URL, the Image root this spoke trusts and
    the site root (signed with the site key: the site passphrase comes from
    AIRLOCK_SPOKE_PASSPHRASE or a prompt). A node id enrolled with another key
    is refused; remove it first.
    """
    from airlock.spoke.nodes._enrolment import enroll as enroll_node

    with closing_home(open_home(home)) as spoke_home:
        bootstrap = enroll_node(
            spoke_home, identity_file, labels, spoke_url, out, SystemClock(), tls_ca
        )
    if as_json:
        emit_json({"enrolled": bootstrap.node_id, "bootstrap": str(out)}, sort_keys=False)
        return
    console = Console(highlight=False)
    console.print(f"[green]enrolled node[/green] {escape(bootstrap.node_id)}")
    console.print(f"  bootstrap written to {escape(str(out))}: give it to the node")


@node.command("list")
@HOME_OPTION
@JSON_OPTION
def list_(home: Path, as_json: bool) -> None:
    """List enrolled and removed nodes, their last report and active versions."""
    from sqlmodel import Session

    from airlock.spoke.nodes._enrolment import list_nodes

    with closing_home(SpokeHome(home)) as spoke_home, Session(spoke_home.engine) as session:
        nodes = list_nodes(session)
    if as_json:
        emit_json([n.to_dict() for n in nodes], sort_keys=False)
        return
    table = FittedTable(title=f"nodes of site {spoke_home.site_id}")
    for column in ("node", "status", "key id", "labels", "last report", "active versions"):
        table.add_column(column)
    for info in nodes:
        table.add_row(
            escape(info.node_id),
            info.status,
            info.keyid[:12],
            escape(", ".join(f"{k}={v}" for k, v in sorted(info.labels.items()))),
            info.last_report or "never",
            escape(", ".join(f"{m}@{v}" for m, v in sorted(info.active_versions.items()))),
        )
    Console().print(table)


@node.command("remove")
@HOME_OPTION
@click.argument("node_id")
@click.option("--reason", required=True, help="Why the node is removed (audited).")
@JSON_OPTION
def remove(home: Path, node_id: str, reason: str, as_json: bool) -> None:
    """Remove a node: the spoke refuses it from now on and forgets its assignment."""
    from airlock.spoke.nodes._enrolment import remove as remove_node

    with closing_home(SpokeHome(home)) as spoke_home:
        remove_node(spoke_home, node_id, reason, SystemClock())
    if as_json:
        emit_json({"removed": node_id}, sort_keys=False)
        return
    Console(highlight=False).print(f"[green]removed node[/green] {escape(node_id)}")
