"""``airlock agent``: the node's commands (init, enroll, run, status).

A node is set up in two steps: ``agent init`` creates its key and
``node-identity.json`` (the site admin enrolls it with ``airlock spoke node
enroll``, which writes ``agent-bootstrap.json``); ``agent enroll`` trusts the
roots in that bootstrap file. ``agent run`` then polls the spoke, installs
and serves what it is assigned, and reports. The key's passphrase comes from
``AIRLOCK_AGENT_PASSPHRASE`` or a prompt.
"""

from __future__ import annotations

import hashlib
import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient.fetcher import FetcherInterface

from airlock.bundles.cli import FittedTable, emit_json, home_option, json_option
from airlock.bundles.clock import Clock, SystemClock
from airlock.bundles.errors import AirlockError, MediaError, UsageError
from airlock.bundles.keys import env_or_prompt_secrets
from airlock.bundles.protocol import IMAGE_PATH, AgentBootstrap, director_base
from airlock.node._home import IDENTITY_FILE, PASSPHRASE_ENV, AgentHome

HOME_OPTION = home_option(
    envvar="AIRLOCK_AGENT_HOME",
    help="Agent home directory (env AIRLOCK_AGENT_HOME).",
    default="agent-home",
)
JSON_OPTION = json_option()


def _prompt(secret_name: str) -> str:
    return str(click.prompt(f"Node key {secret_name}", hide_input=True, err=True))


def _new_passphrase(secret_name: str) -> str:
    return str(
        click.prompt(
            f"New node key {secret_name}", hide_input=True, confirmation_prompt=True, err=True
        )
    )


def _open(home: Path) -> AgentHome:
    return AgentHome(home, env_or_prompt_secrets(PASSPHRASE_ENV, _prompt))


class _NoTransport(FetcherInterface):
    """Enrolment only stores roots: it downloads nothing."""

    def _fetch(self, url: str) -> Iterator[bytes]:
        raise DownloadHTTPError(f"enrolment does not download {url}", 404)


def make_verifier(home: AgentHome, bootstrap: AgentBootstrap, fetcher: FetcherInterface) -> Any:
    """The node's :class:`~airlock.node._verify.NodeVerifier` for its spoke's URLs."""
    from airlock.node._verify import NodeVerifier

    spoke = bootstrap.spoke_url.rstrip("/")
    return NodeVerifier(
        home.metadata_dir,
        home.node_id,
        bootstrap.site_id,
        f"{spoke}{IMAGE_PATH}/",
        f"{spoke}{director_base(home.node_id)}/",
        f"{spoke}{IMAGE_PATH}/targets/",
        fetcher,
        clock=home.clock,
    )


def open_agent(home: AgentHome, clock: Clock | None = None) -> Any:
    """A real agent for ``home``: NodeClient + SignedFetcher + NodeVerifier from its bootstrap.

    Returns the :class:`~airlock.node._agent.Agent`; its ``sender`` is the
    NodeClient (close it when done).

    Raises:
        NotFoundError: the node is not enrolled.
        SecretError: the key's passphrase is missing or wrong.
    """
    from airlock.node._agent import Agent
    from airlock.node._client import NodeClient, SignedFetcher

    clock = clock or home.clock
    bootstrap = home.bootstrap()
    client = NodeClient(
        bootstrap.spoke_url, home.node_id, home.signer(), clock, ca_pem=bootstrap.tls_ca_pem
    )
    verifier = make_verifier(home, bootstrap, SignedFetcher(client))
    return Agent(home, verifier, client, clock)


@click.group()
def agent() -> None:
    """Inference node: verify, install, health-check and serve assigned models.

    \b
    Typical flow:
      airlock agent init --node-id N       (give node-identity.json to the site admin)
      airlock agent enroll --bootstrap agent-bootstrap.json
      airlock agent run
    The node key's passphrase comes from AIRLOCK_AGENT_PASSPHRASE or a prompt.
    """


@agent.command("init")
@HOME_OPTION
@click.option("--node-id", required=True, help="This node's id (A-Z a-z 0-9 . _ -).")
@JSON_OPTION
def init(home: Path, node_id: str, as_json: bool) -> None:
    """Create an agent home: node key and public identity.

    The Ed25519 key is stored encrypted (HOME/keys/node-signing.pem); the
    public identity goes to HOME/node-identity.json for the site admin.
    """
    passphrase = env_or_prompt_secrets(PASSPHRASE_ENV, _new_passphrase)("passphrase")
    created = AgentHome.create(home, node_id, passphrase)
    identity = created.identity()
    created.log("init", keyid=identity.keyid)
    result = {
        "home": str(created.path),
        "node_id": node_id,
        "identity_file": str(created.path / IDENTITY_FILE),
        "keyid": identity.keyid,
    }
    if as_json:
        emit_json(result, sort_keys=False)
        return
    console = Console()
    console.print(f"[green]agent home created:[/green] {created.path}")
    console.print(f"node id:        {node_id}")
    console.print(f"key id:         {identity.keyid}")
    console.print(f"identity file:  {result['identity_file']}")
    console.print("Give the identity file to the site admin (airlock spoke node enroll).")


@agent.command("enroll")
@HOME_OPTION
@click.option(
    "--bootstrap",
    "bootstrap_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The agent-bootstrap.json the site admin gave this node.",
)
@JSON_OPTION
def enroll(home: Path, bootstrap_file: Path, as_json: bool) -> None:
    """Trust the spoke's roots from the bootstrap file (once per node).

    Compare the printed SHA-256 of both roots with what the site admin read out.
    """
    agent_home = AgentHome(home)
    try:
        result = _enroll(agent_home, bootstrap_file)
    except AirlockError as exc:
        agent_home.log("enroll-failed", bootstrap=str(bootstrap_file), reason=exc.message)
        raise
    if as_json:
        emit_json(result, sort_keys=False)
        return
    console = Console()
    console.print(f"[green]enrolled[/green] node {agent_home.node_id} at site {result['site_id']}")
    table = FittedTable(title="trusted roots: compare with the site admin's record")
    table.add_column("root")
    table.add_column("sha256", overflow="fold")
    table.add_row("image", result["image_root_sha256"])
    table.add_row("site", result["site_root_sha256"])
    console.print(table)


def _enroll(agent_home: AgentHome, bootstrap_file: Path) -> dict[str, Any]:
    """Checks the bootstrap file, trusts its roots, stores it; returns what to show."""
    try:
        bootstrap = AgentBootstrap.from_dict(json.loads(bootstrap_file.read_text("utf-8")))
    except FileNotFoundError:
        raise MediaError(f"{bootstrap_file} does not exist") from None
    except (ValueError, AttributeError) as exc:
        raise UsageError(
            f"{bootstrap_file} is not an agent bootstrap file: {exc}",
            hint="use the agent-bootstrap.json that `airlock spoke node enroll` wrote",
        ) from None
    if bootstrap.node_id != agent_home.node_id:
        raise UsageError(
            f"the bootstrap file is for node {bootstrap.node_id!r}, this is {agent_home.node_id!r}",
            hint="use the bootstrap file the site admin made for this node",
        )
    image_root, site_root = bootstrap.image_root.encode(), bootstrap.site_root.encode()
    digests = {
        "image_root_sha256": hashlib.sha256(image_root).hexdigest(),
        "site_root_sha256": hashlib.sha256(site_root).hexdigest(),
    }
    make_verifier(agent_home, bootstrap, _NoTransport()).trust(image_root, site_root)
    agent_home.save_bootstrap(bootstrap)
    agent_home.log("enrolled", site_id=bootstrap.site_id, spoke_url=bootstrap.spoke_url, **digests)
    return {
        "node_id": agent_home.node_id,
        "site_id": bootstrap.site_id,
        "spoke_url": bootstrap.spoke_url,
        **digests,
    }


@agent.command("run")
@HOME_OPTION
@click.option("--once", is_flag=True, help="Poll once, report, and exit (non-zero on failure).")
@JSON_OPTION
def run(home: Path, once: bool, as_json: bool) -> None:
    """Serve assigned models and report to the spoke.

    Polls the spoke every poll_seconds: verifies the assignment, installs
    into the inactive A/B slot, health-checks, commits or falls back, serves
    POST /v1/predict/MODEL on [agent] listen, and sends signed reports.
    """
    from airlock.bundles.httpmetrics import truthy
    from airlock.node._metrics import METRICS_REMOTE_SETTING
    from airlock.node._predict_server import PredictServer, create_app

    agent_home = _open(home)
    node = open_agent(agent_home, SystemClock())
    try:
        if once:
            outcome = node.poll_once()
            if as_json:
                emit_json(outcome.to_dict(), sort_keys=False)
            else:
                _print_outcome(outcome)
            if outcome.error is not None:
                raise outcome.error
            if outcome.send_error is not None:
                raise outcome.send_error
            return
        host, port = agent_home.listen
        remote = truthy(agent_home.config.get(METRICS_REMOTE_SETTING, False))
        app = create_app(node.predictor, node.status, node.node_id, metrics_remote=remote)
        server = PredictServer(app, host, port)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        server.start()
        click.echo(f"agent {node.node_id} serving on http://{host}:{port} (Ctrl-C stops)", err=True)
        try:
            node.run(stop)
        except KeyboardInterrupt:
            stop.set()
        finally:
            server.stop()
    finally:
        node.sender.close()


def _print_outcome(outcome: Any) -> None:
    console = Console()
    state = "[green]verified[/green]" if outcome.verified else "[red]not verified[/red]"
    console.print(
        f"poll: {state}; report sent: {outcome.report_sent}; "
        f"metrics windows sent: {outcome.metrics_sent}"
    )
    for change in outcome.changes:
        console.print(f"  {change}")
    for refusal in outcome.refusals:
        console.print(
            f"  [yellow]refused[/yellow] {refusal.model}@{refusal.version}: {refusal.reason}"
        )


@agent.command("status")
@HOME_OPTION
@JSON_OPTION
def status(home: Path, as_json: bool) -> None:
    """Show the node's slots, served versions, refusals and recent events."""
    agent_home = AgentHome(home)
    state = agent_home.load_state()
    try:
        bootstrap: AgentBootstrap | None = agent_home.bootstrap()
    except UsageError:
        bootstrap = None
    result: dict[str, Any] = {
        "node_id": agent_home.node_id,
        "enrolled": bootstrap is not None,
        "site_id": bootstrap.site_id if bootstrap else None,
        "spoke_url": bootstrap.spoke_url if bootstrap else None,
        **state.to_dict(),
        "recent_events": agent_home.read_log(10),
    }
    if as_json:
        emit_json(result, sort_keys=False)
        return
    console = Console()
    where = f"site {result['site_id']} via {result['spoke_url']}" if bootstrap else "not enrolled"
    console.print(f"node {agent_home.node_id}: {where}; reports sent: {state.counter}")
    table = FittedTable(title="model families")
    for column in ("model", "state", "active", "slot A", "slot B", "candidate", "traffic"):
        table.add_column(column)
    for name, family in sorted(state.families.items()):
        slots = [f"{r.version or '-'} ({r.state})" for r in (family.slots["A"], family.slots["B"])]
        table.add_row(
            name,
            family.state,
            family.active,
            *slots,
            family.candidate or "-",
            family.traffic if family.candidate else "-",
        )
    console.print(table)
    for refusal in state.refusals.values():
        console.print(
            f"[yellow]refused[/yellow] {refusal.model}@{refusal.version}: {refusal.reason}"
        )
