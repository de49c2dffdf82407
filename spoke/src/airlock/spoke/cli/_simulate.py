"""``airlock spoke simulate``: run N simulated nodes against a spoke (see :mod:`.simulate`)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from airlock.bundles.cli import closing_home, emit_json
from airlock.bundles.clock import SystemClock
from airlock.bundles.errors import UsageError
from airlock.spoke.cli._options import open_home

if TYPE_CHECKING:
    from airlock.spoke.nodes._simulate import Simulation, SimulationSettings


def _parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 1
    index, _, count = text.partition("/")
    try:
        pair = int(index), int(count)
    except ValueError:
        raise UsageError(f"--shard {text!r} is not INDEX/COUNT") from None
    if not 0 <= pair[0] < pair[1]:
        raise UsageError(f"--shard {text!r} is out of range")
    return pair


@click.command("simulate", short_help="Run simulated nodes against a running spoke service.")
@click.option("--home", type=click.Path(path_type=Path), required=True, help="Spoke home.")
@click.option("--url", "spoke_url", default="http://127.0.0.1:8750", show_default=True)
@click.option("--nodes", type=int, default=20, show_default=True, help="How many nodes.")
@click.option("--processes", type=int, default=1, show_default=True, help="Spread over N.")
@click.option("--rps", type=float, default=5.0, show_default=True, help="Requests/s per node.")
@click.option("--poll-seconds", type=float, default=2.0, show_default=True)
@click.option("--report-seconds", type=float, default=2.0, show_default=True)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="MODEL@VERSION:KEY=VALUE,…",
    help="Inject faults into a version: latency_ms, error_rate, wrong_rate.",
)
@click.option("--prefix", default="sim", show_default=True, help="Node ids: PREFIX-0000…")
@click.option("--work-dir", type=click.Path(path_type=Path), default=None, help="Nodes' slots.")
@click.option("--duration", type=float, default=0.0, help="Seconds to run (0: until Ctrl-C).")
@click.option("--status-every", type=float, default=5.0, show_default=True)
@click.option("--shard", "shard_spec", default=None, hidden=True)
@click.option("--json", "as_json", is_flag=True, help="Print the final fleet view as JSON.")
def simulate(
    home: Path,
    spoke_url: str,
    nodes: int,
    processes: int,
    rps: float,
    poll_seconds: float,
    report_seconds: float,
    faults: tuple[str, ...],
    prefix: str,
    work_dir: Path | None,
    duration: float,
    status_every: float,
    shard_spec: str | None,
    as_json: bool,
) -> None:
    """Run simulated nodes (real agents, injected faults) against a running spoke service.

    Each node gets its own key, is enrolled at the spoke (audited, label
    simulated=true), verifies everything over HTTP and serves random traffic.
    Needs the site passphrase (AIRLOCK_SPOKE_PASSPHRASE) to enrol the nodes.
    """
    # onnxruntime and the agent load only when the command runs, not for `--help`
    from airlock.spoke.nodes._simulate import Simulation, SimulationSettings, parse_fault

    settings = SimulationSettings(
        spoke_url=spoke_url,
        nodes=nodes,
        prefix=prefix,
        rps=rps,
        poll_seconds=poll_seconds,
        report_seconds=report_seconds,
        faults=dict(parse_fault(f) for f in faults),
    )
    index, count = _parse_shard(shard_spec)
    if processes > 1 and shard_spec is None:
        _run_processes(processes, duration)
        return
    part = _shard(settings, index, count)
    with closing_home(open_home(home)) as spoke_home:
        stopping: list[int] = []

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            stopping.append(signum)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        sim = Simulation(spoke_home, part, work_dir or home / "simulated-nodes", SystemClock())
        ids = sim.enroll(spoke_home.keystore().signer(spoke_home.signing_key()))
        click.echo(f"enrolled {len(ids)} simulated nodes ({ids[0]} … {ids[-1]}) at {spoke_url}")
        sim.start()
        started = time.monotonic()
        next_status = started + status_every
        try:
            while not stopping and (duration <= 0 or time.monotonic() - started < duration):
                time.sleep(0.2)
                if not as_json and time.monotonic() >= next_status:
                    next_status += status_every
                    _print_status(sim, time.monotonic() - started)
        finally:
            sim.stop()
        view = sim.fleet_view()
        if as_json:
            emit_json({"nodes": view})
        else:
            _print_status(sim, time.monotonic() - started)


def _shard(settings: SimulationSettings, index: int, count: int) -> SimulationSettings:
    from airlock.spoke.nodes._simulate import shard

    return settings if count == 1 else shard(settings, index, count)


def _run_processes(processes: int, duration: float) -> None:
    """Re-runs this very command in ``processes`` children, one shard each."""
    argv: list[str] = []
    skip = False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--processes":
            skip = True
        elif not arg.startswith("--processes="):
            argv.append(arg)
    children = [
        subprocess.Popen([sys.argv[0], *argv, "--shard", f"{i}/{processes}"])
        for i in range(processes)
    ]

    forwarded: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        forwarded.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    # a stopped parent must stop its shards: none may be left running on its own
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    # a shard that the forwarded signal stopped before its handler was set stopped as asked
    failed = [c for c in codes if c != 0 and -c not in forwarded]
    if failed:
        raise SystemExit(max(abs(c) for c in failed))


def _print_status(sim: Simulation, elapsed: float) -> None:
    from airlock.spoke.nodes._simulate import versions_in_use

    view = sim.fleet_view()
    families = sorted({m for models in view.values() for m in models})
    parts = [
        f"{m} " + ", ".join(f"v{v}×{n}" for v, n in versions_in_use(view, m).items())
        for m in families
    ]
    click.echo(f"[{elapsed:6.1f}s] {len(view)} nodes: " + ("; ".join(parts) or "nothing served"))
