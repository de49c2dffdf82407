"""`make bench` (fleet part): 1,000 simulated nodes polling one spoke on this machine.

Sets up a ceremony, a hub and a spoke with the real ``airlock`` CLI, starts
``airlock spoke serve`` and ``airlock spoke simulate --nodes N --processes P``
(real agents: signed requests, ``tuf.ngclient`` over HTTP, A/B slots,
onnxruntime, signed reports and metrics), waits until every node has reported,
then imports a bundle that assigns a tiny model with a three-ring plan and
measures, in the same run:

* **request latency** while the fleet polls and the rollout runs: a probe
  enrolled as one more node times signed GETs of the site root (through its
  site-director path) and of the Image timestamp (p50/p99), side by side with the same GETs of the
  same bytes from the reference — Python's stock ``ThreadingHTTPServer``
  serving a static file, no signatures, no database — probed alternately by
  the same loop, so both see the same machine load;
* **rollout time**: from the import to every node answering with the new
  version, against the sum of the plan's bake times (what the plan alone
  would cost); the difference is polling, health checks, reporting and
  analysis.

Results go to ``bench-out/fleet-results.json``. Usage:
``python bench/bench_fleet.py [--nodes 1000] [--processes 4] [--poll-seconds 20]``.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from airlock.bundles.clock import SystemClock
from airlock.bundles.errors import AirlockError
from airlock.bundles.keys import generate_signer
from airlock.bundles.protocol import IMAGE_PATH, NodeIdentity, director_base
from airlock.node import NodeClient

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench-out" / "fleet"
RESULTS = ROOT / "bench-out" / "fleet-results.json"
AIRLOCK = str(Path(sys.executable).parent / "airlock")
SITE = "bench-fleet"
ENV = {
    **os.environ,
    "AIRLOCK_CEREMONY_PASSPHRASE": "bench officers' passphrase",
    "AIRLOCK_HUB_PASSPHRASE": "bench hub passphrase",
    "AIRLOCK_SPOKE_PASSPHRASE": "bench site passphrase",
    "AIRLOCK_PRINCIPAL": "bench",
}
BAKE_SECONDS = 5
PLAN = f"""\
interval_seconds = 2

[health]
min_samples = 20
failure_limit = 3
consecutive_successes = 1

[[rings]]
name = "canary"
nodes = "0.05"
bake_seconds = {BAKE_SECONDS}

[[rings]]
name = "quarter"
nodes = "0.25"
bake_seconds = {BAKE_SECONDS}

[[rings]]
name = "all"
nodes = "1"
bake_seconds = {BAKE_SECONDS}
"""


def airlock(*args: str, quiet: bool = True) -> str:
    proc = subprocess.run([AIRLOCK, *args], env=ENV, cwd=WORK, text=True, capture_output=True)
    if proc.returncode != 0:
        sys.exit(f"airlock {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    if not quiet:
        print(proc.stdout.rstrip())
    return proc.stdout


def background(name: str, *args: str) -> subprocess.Popen[bytes]:
    log = (WORK / f"{name}.log").open("wb")
    return subprocess.Popen([AIRLOCK, *args], env=ENV, cwd=WORK, stdout=log, stderr=log)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tiny_model(path: Path) -> None:
    """``Y = X + W`` on float32[N, 4]: as small as a served model gets."""
    weights = numpy_helper.from_array(np.arange(4, dtype=np.float32).reshape(1, 4), "W")
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "W"], ["Y"])],
        "tiny",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 4])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def set_up() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    airlock("ceremony", "init", "--out", "ceremony")
    airlock("hub", "init", "--home", "hub", "--from", "ceremony")
    airlock(
        "spoke", "init", "--home", "spoke", "--site-id", SITE,
        "--image-root", "ceremony/image/1.root.json",
        "--director-root", "ceremony/director/1.root.json",
    )  # fmt: skip
    airlock("hub", "site", "add", "--home", "hub", "--identity", "spoke/site-identity.json")
    tiny_model(WORK / "tiny.onnx")
    airlock("hub", "model", "add", "--home", "hub", "tiny", "1", "tiny.onnx")
    (WORK / "plan.toml").write_text(PLAN)


def enrolled_probe(url: str) -> NodeClient:
    """One more node, enrolled like any other, whose requests the bench times."""
    signer = generate_signer()
    identity = WORK / "probe-identity.json"
    identity.write_text(json.dumps(NodeIdentity("probe", signer.public_key).to_dict()))
    airlock(
        "spoke", "node", "enroll", "--home", "spoke", "--identity", str(identity),
        "--url", url, "--out", "probe-bootstrap.json",
    )  # fmt: skip
    return NodeClient(url, "probe", signer, SystemClock())


def reported_nodes(prefix: str) -> dict[str, dict[str, Any]]:
    nodes = json.loads(airlock("spoke", "node", "list", "--home", "spoke", "--json"))
    return {n["node_id"]: n for n in nodes if n["node_id"].startswith(prefix) and n["last_report"]}


def static_server(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Silences the per-request log line."""


class Probe:
    """Times signed GETs at the spoke and plain GETs at the reference, alternately."""

    def __init__(self, spoke: NodeClient, reference_url: str, paths: list[str]) -> None:
        self.spoke, self.paths = spoke, paths
        self.reference = httpx.Client(base_url=reference_url)
        self.ours: list[float] = []
        self.theirs: list[float] = []
        self.failures: dict[str, list[str]] = {"spoke": [], "reference": []}
        self.stop = threading.Event()

    def run(self, per_second: float) -> None:
        while not self.stop.wait(1 / per_second):
            for path in self.paths:
                started = time.perf_counter()
                try:
                    self.spoke.get(path)
                    self.ours.append((time.perf_counter() - started) * 1000)
                except AirlockError as exc:  # a timeout is a result too: count it
                    self.failures["spoke"].append(f"{type(exc).__name__}: {exc.message}")
                started = time.perf_counter()
                try:
                    self.reference.get("/" + path.rsplit("/", 1)[-1]).raise_for_status()
                    self.theirs.append((time.perf_counter() - started) * 1000)
                except httpx.HTTPError as exc:
                    self.failures["reference"].append(type(exc).__name__)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
        "samples": len(ordered),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--poll-seconds", type=float, default=20.0)
    parser.add_argument("--rps", type=float, default=0.5, help="requests/s per node")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()

    print(
        f"fleet bench: {args.nodes} nodes in {args.processes} processes, poll {args.poll_seconds} s"
    )
    set_up()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = background("spoke-serve", "spoke", "serve", "--home", "spoke", "--port", str(port))
    procs: list[subprocess.Popen[bytes]] = [serve]
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/healthz").raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    sys.exit("the spoke service did not start (bench-out/fleet/spoke-serve.log)")
                time.sleep(0.2)
        probe = enrolled_probe(url)
        started = time.monotonic()
        procs.append(
            background(
                "simulate", "spoke", "simulate", "--home", "spoke", "--url", url,
                "--nodes", str(args.nodes), "--processes", str(args.processes),
                "--prefix", "node", "--rps", str(args.rps),
                "--poll-seconds", str(args.poll_seconds),
                "--report-seconds", str(args.poll_seconds), "--status-every", "30",
            )
        )  # fmt: skip
        while len(reported_nodes("node-")) < args.nodes:
            if time.monotonic() - started > args.timeout:
                sys.exit("not every simulated node reported (bench-out/fleet/simulate.log)")
            time.sleep(2)
        enrolled_after = time.monotonic() - started
        print(f"{args.nodes} nodes enrolled and reporting after {enrolled_after:.0f} s")

        airlock("hub", "assign", "--home", "hub", SITE, "tiny", "1", "--plan", "plan.toml")
        airlock("hub", "export", "--home", "hub", "--site", SITE, "--out", "bundle")
        rollout_start = time.monotonic()
        airlock("spoke", "import", "--home", "spoke", "bundle")
        # the reference serves the very bytes the spoke now serves for the probed paths
        static = WORK / "static"
        static.mkdir()
        (static / "timestamp.json").write_bytes(probe.get(f"{IMAGE_PATH}/timestamp.json"))
        (static / "1.root.json").write_bytes(probe.get(f"{director_base('probe')}/1.root.json"))
        reference, reference_url = static_server(static)
        timer = Probe(
            probe,
            reference_url,
            [f"{director_base('probe')}/1.root.json", f"{IMAGE_PATH}/timestamp.json"],
        )
        probing = threading.Thread(target=timer.run, args=(5.0,), daemon=True)
        probing.start()
        while True:
            nodes = reported_nodes("node-")
            on_new = sum(
                1 for n in nodes.values() if (n["active_versions"] or {}).get("tiny") == "1"
            )
            rollouts = json.loads(airlock("spoke", "rollout", "list", "--home", "spoke", "--json"))
            if on_new == args.nodes and rollouts and rollouts[0]["state"] == "complete":
                break
            if time.monotonic() - rollout_start > args.timeout:
                sys.exit(f"the rollout did not finish: {on_new}/{args.nodes} nodes on tiny@1")
            time.sleep(1)
        rollout_seconds = time.monotonic() - rollout_start
        timer.stop.set()
        probing.join()
        reference.shutdown()
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()

    results = {
        "nodes": args.nodes,
        "processes": args.processes,
        "poll_seconds": args.poll_seconds,
        "requests": {
            "spoke (signed, database)": percentiles(timer.ours),
            "reference (ThreadingHTTPServer, static file)": percentiles(timer.theirs),
            "failed (10 s client timeout or error)": {
                name: len(items) for name, items in timer.failures.items()
            },
        },
        "rollout": {
            "seconds": round(rollout_seconds, 1),
            "sum_of_bake_seconds": 3 * BAKE_SECONDS,
            "overhead_seconds": round(rollout_seconds - 3 * BAKE_SECONDS, 1),
            "state": rollouts[0]["state"] if rollouts else None,
        },
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
