"""The demo's second half: a fleet, its change request, the auditor and the return path.

Steps 15-25 of ``make demo`` (see :mod:`demo`): the spoke service and 20 simulated
nodes take flowers 1-3 through rings under an approved change request (one rolled
back, one revoked), the auditor queries, proves and catches a tampered log, and
the site's anonymised metrics travel back to the hub, which reports on the fleet and
witnesses the site's audit log.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import sys
import time
from typing import Any

from demo_support import OUT, background, console, free_port, run, run_quiet, step, wait_http

QUICK_PLAN = """\
# the demo's plan: seconds instead of the default minutes, and a p99 ratio of 3
# (simulated nodes share two CPUs with everything else: a p99 of a few
# milliseconds moves by 1.5x on its own; 40 ms of injected latency is ~8x; a node
# sends one request at a time, so a slow canary sends fewer: 30 samples suffice)
interval_seconds = 2

[health]
max_error_rate = "0.01"
max_p99_latency_ratio = "3"
min_samples = 30
failure_limit = 2
consecutive_successes = 2

[[rings]]
name = "canary"
nodes = 2
bake_seconds = 4

[[rings]]
name = "half"
nodes = "0.5"
bake_seconds = 4

[[rings]]
name = "all"
nodes = "1"
bake_seconds = 4
"""
FLEET = 20
CHANGE: list[str] = []
"""The change request the rollouts run under (its number, once created)."""


def rollout_of(version: str) -> dict[str, Any]:
    rows = json.loads(run_quiet("spoke", "rollout", "list", "--home", "spoke", "--json"))
    found = [r for r in rows if r["model"] == "flowers" and r["version"] == version]
    return found[0] if found else {}


def watch(version: str, final: str, timeout: float = 180) -> dict[str, Any]:
    """Narrates flowers@VERSION's rollout until it reaches ``final``."""
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        row = rollout_of(version)
        line = (
            f"flowers@{version}: {row.get('state')} — ring {int(row.get('ring_index', 0)) + 1}/"
            f"{row.get('rings')} ({row.get('ring')}), successes {row.get('consecutive_successes')}"
            f"/{row.get('needed_successes')}, failures {row.get('failures')}"
            if row
            else f"flowers@{version}: waiting for the engine"
        )
        if line != last:
            console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {line}")
            last = line
        if row.get("state") == final:
            return row
        time.sleep(0.5)
    console.print(f"[red]flowers@{version} did not reach {final} in {timeout:.0f} s[/red]")
    sys.exit(1)


def fleet_versions() -> dict[str, int]:
    nodes = json.loads(run_quiet("spoke", "node", "list", "--home", "spoke", "--json"))
    counts: dict[str, int] = {}
    for node in nodes:
        version = (node.get("active_versions") or {}).get("flowers") or "-"
        counts[version] = counts.get(version, 0) + 1
    return counts


def wait_fleet(version: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fleet_versions() == {version: FLEET}:
            console.print(f"[green]all {FLEET} nodes answer with flowers@{version}[/green]")
            return
        time.sleep(0.5)
    console.print(f"[red]the fleet is not on flowers@{version}: {fleet_versions()}[/red]")
    sys.exit(1)


def ship(name: str, *assign_args: str) -> None:
    run("hub", "assign", "--home", "hub", "plant-7", *assign_args, "--plan", "quick-plan.toml",
        "--change", CHANGE[0])  # fmt: skip
    run("hub", "export", "--home", "hub", "--site", "plant-7", "--out", f"media/{name}")
    run("spoke", "import", "--home", "spoke", f"media/{name}")


def phased_rollouts() -> None:
    """Spoke service + 20 simulated nodes: rings, automatic rollback, promotion, revocation."""
    step(
        "15. A fleet for the site: the spoke service and 20 simulated nodes",
        "The release engineer releases the pipeline's iris classifier, with its in-toto "
        "links, as family 'flowers', "
        "versions 1, 2 and 3, and signs a three-ring plan (2 nodes, half, all; seconds "
        "instead of minutes for the demo) into the site's Director targets. The site runs "
        "`airlock spoke serve` (the nodes' TUF mirror, site director, reports, metrics, and "
        "the rollout engine) and `airlock spoke simulate`: 20 real node agents, each with its "
        "own enrolled key, verifying Image and site-director metadata with tuf.ngclient over "
        "HTTP, installing into A/B slots, health-checking and serving in onnxruntime. The "
        "simulator injects 40 ms of latency into every answer of flowers@2. The families "
        "of the earlier steps leave the site, so that the fleet runs only flowers.",
    )
    (OUT / "quick-plan.toml").write_text(QUICK_PLAN)
    run("hub", "unassign", "--home", "hub", "plant-7", "classifier")
    run("hub", "unassign", "--home", "hub", "plant-7", "iris")
    # attested with the pipeline's links: once the site holds a signed layout (step 13),
    # it refuses unattested versions of every family
    model = ["pipeline/v1/model.onnx", "--validation-set", "pipeline/v1/validation.npz"]
    model += ["--links", "pipeline/v1/links"]
    for version in ("1", "2", "3"):
        run("hub", "model", "add", "--home", "hub", "flowers", version, *model,
            "--thresholds", "thresholds.toml")  # fmt: skip
    change_request()
    ship("bundle-6", "flowers", "1")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = background("spoke-serve", "spoke", "serve", "--home", "spoke", "--port", str(port))
    sim = None
    try:
        wait_http(f"{url}/healthz")
        sim = background(
            "simulate", "spoke", "simulate", "--home", "spoke", "--url", url,
            "--nodes", str(FLEET), "--rps", "20", "--poll-seconds", "1", "--report-seconds", "1",
            "--fault", "flowers@2:latency_ms=40", "--status-every", "2",
        )  # fmt: skip
        step(
            "16. flowers@1 goes out ring by ring",
            "The engine starts the family's first rollout: 2 nodes, then half, then all, each "
            "ring after its bake time and two passing analyses (error rate under 1 %; no "
            "stable cohort yet, so no latency ratio).",
        )
        watch("1", "complete")
        wait_fleet("1")
        step(
            "17. flowers@2 is slower: rolled back automatically at the canary ring",
            "Each interval compares the canary cohort (2 nodes on flowers@2) with the stable "
            "cohort (18 nodes on flowers@1). p99 is far above 3x the stable p99 (and a canary "
            "node whose own health check already measures the warm-up above the signed 50 ms "
            "falls back and fails the interval too): past the failure limit (2 failed analyses "
            "tolerated) the canary nodes go back to flowers@1 at once, and flowers@2 is not "
            "retried without a new plan.",
        )
        ship("bundle-7", "flowers", "2")
        row = watch("2", "rolled-back")
        run("spoke", "rollout", "show", "--home", "spoke", str(row["id"]))
        wait_fleet("1")
        step("18. flowers@3 is healthy: promoted to every node", "Same plan, no fault.")
        ship("bundle-8", "flowers", "3")
        row = watch("3", "complete")
        run("spoke", "rollout", "show", "--home", "spoke", str(row["id"]))
        wait_fleet("3")
        step(
            "19. The hub revokes flowers@3",
            "A newer signed Image without flowers@3, and Director metadata pointing at the "
            "previous good version with the plan it had. The export is a small revocation "
            "bundle (no model files). On import the engine moves every node off flowers@3 at "
            "once — no bake time — to the last version that completed at this site, "
            "flowers@1 (flowers@2 was rolled back here and is not retried). Nodes would "
            "refuse flowers@3 even if asked: the Image no longer signs it.",
        )
        run("hub", "revoke", "--home", "hub", "flowers", "3", "--reason",
            "drift found in the field")  # fmt: skip
        run("hub", "export", "--home", "hub", "--site", "plant-7", "--out", "media/bundle-9")
        envelope = json.loads((OUT / "media/bundle-9/envelope.json").read_text())["signed"]
        size = envelope["site_part"]["size"] + sum(v["size"] for v in envelope["volumes"])
        console.print(
            f"bundle-9: kind {envelope['kind']}, {len(envelope['volumes'])} volume(s), "
            f"{size} bytes in all"
        )
        run("spoke", "import", "--home", "spoke", "media/bundle-9")
        wait_fleet("1", timeout=30)
        run("spoke", "rollout", "list", "--home", "spoke")
        run("spoke", "node", "list", "--home", "spoke")
    finally:
        for proc in (sim, serve):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    run("audit", "verify", "--home", "spoke")


def change_request() -> None:
    """The hub is put under change control; the rollouts run under an approved change."""
    step(
        "15b. Change control: no rollout plan leaves the hub without an approved change",
        "The hub now requires a change request for every assignment ([change] required). "
        "The release engineer (demo-operator) raises a normal change covering flowers 1-3 at "
        "plant-7 with a two-hour window; carol, a registered approver, signs the approval "
        "with her own key (the requester may not approve). In Implement, its number, window "
        "and signed approval travel in the Director metadata: the site starts or advances a "
        "ring only inside the window. Every step is audited and emits a CloudEvent.",
    )
    with (OUT / "hub" / "airlock.toml").open("a") as config:
        config.write("\n[change]\nrequired = true\n")
    run("hub", "change", "keygen", "--out", "approvers/carol.pem")
    run("hub", "change", "approver", "add", "--home", "hub", "carol",
        "--key", "approvers/carol.pub.pem")  # fmt: skip
    now = time.time()
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60))
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 7200))
    covers = [a for v in ("1", "2", "3") for a in ("--covers", f"plant-7:flowers@{v}")]
    created = run(
        "hub", "change", "create", "--home", "hub", "-d", "Roll out flowers 1-3 at plant-7",
        "--justification", "quarterly model refresh", "--group", "ml-platform",
        "--approver", "carol", "--start", start, "--end", end, *covers, "--json",
    )  # fmt: skip
    CHANGE.append(json.loads(created.stdout)["number"])
    number = CHANGE[0]
    run("hub", "change", "move", "--home", "hub", number, "--to", "assess")
    run("hub", "change", "move", "--home", "hub", number, "--to", "authorize")
    run("hub", "change", "approve", "--home", "hub", number, "--as", "carol",
        "--key", "approvers/carol.pem")  # fmt: skip
    run("hub", "change", "move", "--home", "hub", number, "--to", "implement")
    run("hub", "change", "show", "--home", "hub", number)


def auditor() -> None:
    """The compliance auditor: queries, a report, a proof, and a hand-edited entry caught."""
    step(
        "20. The auditor: who did what, when, to which model and node, under which change",
        "Both logs are RFC 6962 Merkle trees with signed checkpoints (C2SP tlog-checkpoint); "
        "the hub signs one on every export. The auditor queries the spoke's log for the "
        "rollout decisions, renders the HTML report of the change request at the hub, and "
        "takes an inclusion proof of the automatic rollback that anyone can check offline "
        "with only the proof, the signed checkpoint and the site's public key.",
    )
    number = CHANGE[0]
    run("audit", "query", "--home", "spoke", "--action", "spoke.rollout.*", "--model", "flowers",
        "--outcome", "success", "--limit", "12")  # fmt: skip
    run("audit", "query", "--home", "hub", "--change-request", number)
    run("audit", "report", "--home", "hub", "--change-request", number,
        "--out", "audit-report.html")  # fmt: skip
    run("audit", "checkpoint", "--home", "spoke")
    found = run_quiet("audit", "query", "--home", "spoke", "--action", "spoke.rollout.rolled-back",
                      "--format", "jsonl")  # fmt: skip
    seq = str(json.loads(found.splitlines()[0])["seq"])
    run("audit", "prove", "--home", "spoke", seq, "--out", "proof/rollback.json")
    note = next((OUT / "proof").glob("checkpoint-*.txt")).relative_to(OUT)
    run("audit", "verify-proof", "--proof", "proof/rollback.json", "--checkpoint", str(note),
        "--key", "spoke/audit-checkpoint-key.pem")  # fmt: skip
    run("audit", "verify", "--home", "spoke")

    step(
        "21. A hand-edited entry is caught",
        "On a copy of the site's database, someone rewrites the automatic rollback into a "
        "success of another kind. `audit verify` names the first bad entry (exit 10).",
    )
    shutil.copytree(OUT / "spoke", OUT / "spoke-tampered", ignore=shutil.ignore_patterns("*.sock"))
    with sqlite3.connect(OUT / "spoke-tampered" / "spoke.db") as db:
        db.execute(
            "UPDATE audit_log SET action = 'spoke.rollout.complete' WHERE seq = ?", (int(seq),)
        )
    run("audit", "verify", "--home", "spoke-tampered", expect=10)
    console.print(
        f"[green]open {OUT / 'audit-report.html'} for the change request's report[/green]"
    )


def metrics_return() -> None:
    """Aggregated, anonymised metrics back to the hub; the hub witnesses the site's log."""
    step(
        "22. Metrics back across the gap: what leaves the site",
        "The site aggregates what its nodes reported per model version, ring and 2-minute "
        "window (request and error counts, a mergeable latency sketch, predicted classes, a "
        "confidence histogram). No node id, host name or address leaves; any group of fewer "
        "than k = 5 nodes is held back, and so is any figure from which a held-back one "
        "could be computed (the 2-node canary rings never leave). The dry run prints "
        "exactly what would be encrypted; nothing is written.",
    )
    with (OUT / "spoke" / "airlock.toml").open("a") as config:
        config.write("\n[metrics]\nwindow_minutes = 2\n")
    run("spoke", "export-metrics", "--home", "spoke", "--dry-run")
    step(
        "23. Export, import, and a replay refused",
        "The bundle: an envelope signed with the site key (site, sequence, window, payload "
        "hash), the payload age-encrypted to the hub's recipient (which the hub's signed "
        "Director metadata gave the site), carrying the site's newest audit checkpoint. The "
        "hub verifies, decrypts, records the checkpoint as the first it witnesses of this "
        "site's log, cosigns it, stores the figures — and judges them: the simulated "
        "traffic is uniform noise, nothing like the validation set, so the prediction "
        "distribution has drifted and a retraining request goes out as a CloudEvent. The "
        "same medium imported again is a replay (exit 14).",
    )
    run("spoke", "export-metrics", "--home", "spoke", "--out", "media/metrics-1")
    run("hub", "import-metrics", "--home", "hub", "media/metrics-1")
    run("hub", "import-metrics", "--home", "hub", "media/metrics-1", expect=14)
    step(
        "24. The fleet report",
        "Per model version across sites and rings: volume, error rate, latency quantiles "
        "from the merged sketches, and drift (Jensen-Shannon distance) against the "
        "version's answers on its signed validation set. Also as HTML with charts.",
    )
    run("hub", "report", "fleet", "--home", "hub", "--html", "fleet-report.html")
    run("events", "list", "--home", "hub", "--limit", "4")
    step(
        "25. The hub witnesses the site's log",
        "The hub's next bundle tells the site which checkpoint it acknowledged (cosigned, "
        "in the signed Director metadata). The site's next metrics bundle carries a "
        "consistency proof from that checkpoint: the hub checks that the site's log only "
        "grew since — a log rewritten after the hub saw it would be refused (exit 22).",
    )
    run("hub", "export", "--home", "hub", "--site", "plant-7", "--out", "media/bundle-10")
    run("spoke", "import", "--home", "spoke", "media/bundle-10")
    run("spoke", "export-metrics", "--home", "spoke", "--out", "media/metrics-2")
    run("hub", "import-metrics", "--home", "hub", "media/metrics-2")
    run("audit", "verify", "--home", "hub")
    console.print(f"[green]open {OUT / 'fleet-report.html'} for the fleet report[/green]")
