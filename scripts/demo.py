"""`make demo`: the whole trust path, hub to site, on embedded defaults.

Runs the real `airlock` commands one after another, narrating each step: a
three-officer key ceremony (plan, keys on each officer's "machine" — one on a
SoftHSM2 token when it is installed — signing request, review and signatures,
finalize, signed transcript) → hub init → spoke init → register site → add a
small ONNX model → assign → export → import → status → audit verify; a
tampered copy of a bundle is refused and nothing changes; a replay is refused;
a rotation ceremony revokes an officer's root key, the hub adopts it and the
site walks its root chain forward; finally a training pipeline (iris,
scikit-learn → ONNX, in-toto links per step) registers a model in MLflow, the
hub imports it with lineage, validation set and its own package link under a
layout an officer signed, and the site verifies the attestations and runs the
model on the validation set before staging it — and refuses a broken retrain
at that gate. Then the site runs its fleet: `airlock spoke serve` and 20
simulated nodes (real agents) take flowers@1 ring by ring, roll flowers@2
(injected latency) back at the canary ring, promote flowers@3, and go back to
flowers@1 when the hub revokes flowers@3 — all under a change request that an
approver signed, inside its window. Finally the auditor queries both logs,
renders the change's HTML report, checks an inclusion proof offline, and
`audit verify` catches a hand-edited entry. Last, the return path: the site
exports aggregated, k-anonymous metrics (dry run first), the hub imports them,
refuses the replay, renders the fleet report (drift against the validation set
raises a retraining event) and, one round trip later, checks a consistency
proof of the site's audit log as its witness. Everything lands under ./demo-out/.
The passphrases below are demo defaults; real deployments type them at a
prompt or take them from a secrets manager.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from rich.console import Console
from rich.panel import Panel

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-out"
AIRLOCK = str(Path(sys.executable).parent / "airlock")
IN_TOTO_RUN = str(Path(sys.executable).parent / "in-toto-run")
MLFLOW_URI = f"sqlite:///{OUT / 'mlflow.db'}"
console = Console()

OFFICERS = ("alice", "bob", "carol")
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
HSM_PIN = "demo-pin-1234"
ENV = {
    **os.environ,
    "AIRLOCK_CEREMONY_PASSPHRASE": "demo officers' passphrase",
    "AIRLOCK_HSM_PIN": HSM_PIN,
    "AIRLOCK_HUB_PASSPHRASE": "demo hub passphrase",
    "AIRLOCK_SPOKE_PASSPHRASE": "demo site passphrase",
    "AIRLOCK_APPROVER_PASSPHRASE": "carol's approver passphrase",
    "AIRLOCK_PRINCIPAL": "demo-operator",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "COLUMNS": "110",
}


def step(title: str, text: str) -> None:
    console.print()
    console.print(Panel(text, title=f"[bold]{title}[/bold]", title_align="left", expand=True))


def run(
    *args: str, expect: int = 0, officer: str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    who = f"[magenta]{officer}'s machine[/magenta] " if officer else ""
    console.print(f"{who}[cyan]$ airlock {' '.join(args)}[/cyan]")
    env = dict(ENV)
    if officer:  # each officer has their own passphrase, typed on their own machine
        env["AIRLOCK_OFFICER_PASSPHRASE"] = f"{officer}'s demo passphrase"
    proc = subprocess.run(
        [AIRLOCK, *args], env=env, text=True, capture_output=True, cwd=OUT, input=stdin
    )
    if proc.stdout.strip():
        console.print(proc.stdout.rstrip(), markup=False, highlight=False)
    if proc.stderr.strip():
        console.print(proc.stderr.rstrip(), style="yellow", markup=False, highlight=False)
    if proc.returncode != expect:
        console.print(f"[red]unexpected exit code {proc.returncode} (expected {expect})[/red]")
        sys.exit(1)
    if expect:
        console.print(f"[dim](exit code {proc.returncode}, as expected)[/dim]")
    return proc


def make_model(path: Path, seed: int = 7) -> None:
    """A tiny linear classifier over 4 features, 3 classes (softmax); ``seed`` picks weights."""
    rng = np.random.default_rng(seed)
    weights = numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "W")
    bias = numpy_helper.from_array(np.zeros(3, dtype=np.float32), "B")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "B"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "demo-classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3])],
        initializer=[weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def tree_listing(root: Path) -> list[tuple[str, int]]:
    """Every file under ``root`` with its size: enough to see that nothing was staged."""
    return sorted(
        (str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*") if p.is_file()
    )


def softhsm_token() -> str | None:
    """Makes a SoftHSM2 token holding one EC P-256 key for carol; None when not installed."""
    if not (shutil.which("softhsm2-util") and shutil.which("pkcs11-tool")):
        return None
    if not Path(SOFTHSM_MODULE).exists():
        return None
    base = OUT / "softhsm"
    (base / "tokens").mkdir(parents=True)
    (base / "softhsm2.conf").write_text(
        f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\n"
    )
    ENV.update({"SOFTHSM2_CONF": str(base / "softhsm2.conf"), "PYKCS11LIB": SOFTHSM_MODULE})
    for command in (
        ["softhsm2-util", "--init-token", "--free", "--label", "carol-token",
         "--so-pin", "demo-so-pin-5678", "--pin", HSM_PIN],
        ["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", "carol-token", "--login",
         "--pin", HSM_PIN, "--keypairgen", "--key-type", "EC:prime256v1", "--id", "01"],
    ):  # fmt: skip
        console.print(f"[magenta]carol's machine[/magenta] [cyan]$ {' '.join(command)}[/cyan]")
        subprocess.run(command, env=ENV, check=True, capture_output=True)
    return "carol-token:01"


def p256_director_root(plan: Path) -> None:
    """Edits a plan so the Director root keys are ECDSA P-256 (what the token holds)."""
    head, _, tail = plan.read_text().partition("[roles.director-root]")
    plan.write_text(head + "[roles.director-root]" + tail.replace('"ed25519"', '"ecdsa-p256"', 1))


def sign_round(workspace: str, out: str, propose_args: tuple[str, ...] = ()) -> None:
    """Propose, then each officer reviews and signs; finalize; each signs the transcript."""
    plan = f"{workspace}/plan.toml"
    offers = [a for o in OFFICERS for a in ("--offer", f"media/{workspace}/{o}.offer.json")]
    proposed = run("ceremony", "propose", "--workspace", workspace, *offers, *propose_args)
    sha = proposed.stdout.split("request SHA-256 ")[1].split()[0]
    for officer in OFFICERS:
        run(
            "ceremony", "sign", "--request", f"{workspace}/request.json", "--plan", plan,
            "--officer", officer, "--keys", f"officers/{officer}",
            "--out", f"media/{workspace}/{officer}.sig.json", "--expect-sha256", sha,
            officer=officer, stdin=f"{sha[:8]}\n",
        )  # fmt: skip
    sigs = [a for o in OFFICERS for a in ("--signatures", f"media/{workspace}/{o}.sig.json")]
    run("ceremony", "finalize", "--workspace", workspace, *sigs, "--out", out)
    for officer in OFFICERS:
        run(
            "ceremony", "sign-transcript", "--dir", out, "--plan", plan, "--officer", officer,
            "--keys", f"officers/{officer}", "--out", f"media/{workspace}/{officer}.tsig.json",
            "--yes", officer=officer,
        )  # fmt: skip
    run(
        "ceremony", "seal-transcript", "--workspace", workspace, "--dir", out,
        *(f"media/{workspace}/{o}.tsig.json" for o in OFFICERS),
    )  # fmt: skip
    run("ceremony", "verify-transcript", "--dir", out)


def key_ceremony() -> None:
    """The first ceremony: three officers, roots 2-of-3, one key on a token if we can."""
    step(
        "1. Key ceremony (security officers, offline)",
        "The coordinator writes the plan (officers alice, bob, carol; witness wendy; Image and "
        "Director roots 2-of-3, Image targets and in-toto layout 1-of-2). Each officer makes "
        "their keys on their own machine and hands over only public keys with proofs of "
        "possession. The coordinator proposes; each officer reviews exactly what they sign, "
        "types the first digits of the request's SHA-256 to confirm, and signs. Finalize "
        "checks every signature and threshold, writes the roots and a transcript that every "
        "officer signs.",
    )
    (OUT / "media/ceremony-1").mkdir(parents=True)
    run(
        "ceremony", "plan", "new", "--workspace", "ceremony-1", "--id", "demo-roots-1",
        "--location", "Demo HQ, secure room B", *(a for o in OFFICERS for a in ("--officer", o)),
        "--witness", "wendy",
    )  # fmt: skip
    slot = softhsm_token()
    if slot:
        plan = OUT / "ceremony-1/plan.toml"
        head, _, tail = plan.read_text().partition("[roles.director-root]")
        plan.write_text(
            head + "[roles.director-root]" + tail.replace('"ed25519"', '"ecdsa-p256"', 1)
        )
        console.print("plan edited: the Director root keys are ECDSA P-256 (carol's is on a token)")
    run("ceremony", "plan", "check", "ceremony-1/plan.toml")
    for officer in OFFICERS:
        hsm = ["--hsm", f"director-root={slot}"] if slot and officer == "carol" else []
        run(
            "ceremony", "keygen", "--plan", "ceremony-1/plan.toml", "--officer", officer,
            "--keys", f"officers/{officer}", "--out", f"media/ceremony-1/{officer}.offer.json",
            *hsm, officer=officer,
        )  # fmt: skip
    sign_round("ceremony-1", "ceremony")
    run("ceremony", "status", "--dir", "ceremony")
    console.print(f"printable transcript: {OUT / 'ceremony/transcript.html'}")


def rotation_ceremony() -> None:
    """A second ceremony revokes bob's Image root key; the hub and the site follow."""
    step(
        "12. Rotation: revoke a key (security officers, then the hub, then the site)",
        "Bob's Image root key is retired: bob makes a new one, the others re-offer theirs, and "
        "the rotation is signed by a threshold of the old root keys and of the new ones. The "
        "hub adopts roots v2; the next bundle carries them and the site walks 1 → 2.",
    )
    (OUT / "media/ceremony-2").mkdir(parents=True)
    record = json.loads((OUT / "ceremony/ceremony.json").read_text())
    revoked = record["offline_keys"]["image-root-bob"]["keyid"]
    run(
        "ceremony", "plan", "new", "--workspace", "ceremony-2", "--id", "demo-roots-2",
        "--location", "Demo HQ, secure room B", *(a for o in OFFICERS for a in ("--officer", o)),
        "--witness", "wendy",
    )  # fmt: skip
    first_plan = (OUT / "ceremony-1/plan.toml").read_text()
    if '"ecdsa-p256"' in first_plan:
        plan = OUT / "ceremony-2/plan.toml"
        head, _, tail = plan.read_text().partition("[roles.director-root]")
        plan.write_text(
            head + "[roles.director-root]" + tail.replace('"ed25519"', '"ecdsa-p256"', 1)
        )
    for officer in OFFICERS:
        new_key = ["--new-key", "image-root"] if officer == "bob" else []
        run(
            "ceremony", "keygen", "--plan", "ceremony-2/plan.toml", "--officer", officer,
            "--keys", f"officers/{officer}", "--out", f"media/ceremony-2/{officer}.offer.json",
            *new_key, officer=officer,
        )  # fmt: skip
    sign_round("ceremony-2", "ceremony-rotated", ("--rotate-from", "ceremony", "--revoke", revoked))
    run("hub", "trust", "update", "--home", "hub", "--from", "ceremony-rotated")
    run("hub", "export", "--home", "hub", "--site", "plant-7", "--out", "media/bundle-3")
    run("spoke", "import", "--home", "spoke", "media/bundle-3")
    run("spoke", "status", "--home", "spoke")
    console.print(f"rotation transcript: {OUT / 'ceremony-rotated/transcript.html'}")


def pipeline(workdir: Path, broken: bool = False) -> None:
    """The training pipeline: each step wrapped in in-toto-run, signed with its functionary key."""
    workdir.mkdir(parents=True)
    script = str(ROOT / "scripts" / "pipeline_iris.py")
    key = str(OUT / "pipeline" / "pipeline.pem")
    steps = [
        ("train", [], ["data.npz", "weights.npz"],
         ["train", "data.npz", "weights.npz", *(["--broken"] if broken else [])]),
        ("evaluate", ["data.npz", "weights.npz"], ["metrics.json"],
         ["evaluate", "data.npz", "weights.npz", "metrics.json"]),
        ("convert", ["weights.npz"], ["model.onnx"], ["convert", "weights.npz", "model.onnx"]),
    ]  # fmt: skip
    for name, materials, products, command in steps:
        argv = [IN_TOTO_RUN, "--step-name", name, "--signing-key", key]
        argv += ["--materials", *materials] if materials else []
        argv += ["--products", *products, "--", sys.executable, script, *command]
        console.print(
            f"[magenta]pipeline[/magenta] [cyan]$ in-toto-run --step-name {name} …[/cyan]"
        )
        subprocess.run(argv, cwd=workdir, env=ENV, check=True, capture_output=True)
    register = [sys.executable, script, "register", "model.onnx", "data.npz", "metrics.json"]
    register += ["--tracking-uri", MLFLOW_URI, "--name", "iris", "--alias", "champion"]
    register += ["--validation", "validation.npz"]
    proc = subprocess.run(
        register, cwd=workdir, env=ENV, check=True, capture_output=True, text=True
    )
    console.print(f"[magenta]pipeline[/magenta] {proc.stdout.strip()}")
    (workdir / "links").mkdir()
    for link in workdir.glob("*.link"):
        link.rename(workdir / "links" / link.name)


def mlflow_intake() -> None:
    """MLflow → signed release with lineage, validation set and in-toto links → site gate."""
    step(
        "13. Intake from MLflow, supply-chain attestations, the validation gate",
        "A training pipeline trains an iris classifier (scikit-learn), converts it to ONNX "
        "(skl2onnx), records in-toto links for train, evaluate and convert with its "
        "functionary key, and registers it in MLflow (SQLite) as iris@champion. The hub drafts "
        "the in-toto layout, an officer signs it with her layout key from the ceremony, the "
        "hub imports the alias with its lineage, validation set and thresholds, adds its own "
        "package link, and exports. The site checks TUF, then in-toto, then runs the model in "
        "onnxruntime on the signed validation set before staging it.",
    )
    (OUT / "pipeline").mkdir()
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "pipeline_iris.py"), "keygen",
         "pipeline/pipeline.pem", "pipeline/pipeline.pub.pem"],
        cwd=OUT, check=True,
    )  # fmt: skip
    pipeline(OUT / "pipeline" / "v1")
    functionaries = [
        a for s in ("train", "evaluate", "convert")
        for a in ("--functionary", f"{s}=pipeline/pipeline.pub.pem")
    ]  # fmt: skip
    run("hub", "layout", "draft", "--home", "hub", *functionaries, "--out", "media/layout.json")
    run(
        "ceremony", "sign-layout", "--layout", "media/layout.json", "--officer", "alice",
        "--keys", "officers/alice", "--out", "media/layout.signed.json", "--yes", officer="alice",
    )  # fmt: skip
    run("hub", "layout", "set", "--home", "hub", "media/layout.signed.json")
    (OUT / "thresholds.toml").write_text(
        'task = "classification"\nmin_accuracy = "0.9"\nmax_p95_latency_ms = "50"\n'
    )
    intake = ["--tracking-uri", MLFLOW_URI, "--thresholds", "thresholds.toml"]
    v1 = ["--validation-set", "pipeline/v1/validation.npz", "--links", "pipeline/v1/links"]
    run("hub", "model", "import", "--home", "hub", "models:/iris@champion", *intake, *v1)
    run("hub", "model", "show", "--home", "hub", "iris", "1")
    run("hub", "assign", "--home", "hub", "plant-7", "iris", "1")
    run("hub", "export", "--home", "hub", "--site", "plant-7", "--out", "media/bundle-4")
    run("spoke", "import", "--home", "spoke", "media/bundle-4")
    run("spoke", "status", "--home", "spoke")

    step(
        "14. A broken model is refused at the gate",
        "The pipeline retrains on shuffled labels: the model converts, is attested and signed, "
        "but its accuracy on the signed validation set is far below the 0.9 floor. The site "
        "refuses the bundle at the gate and stages nothing.",
    )
    pipeline(OUT / "pipeline" / "v2", broken=True)
    v2 = ["--validation-set", "pipeline/v2/validation.npz", "--links", "pipeline/v2/links"]
    run("hub", "model", "import", "--home", "hub", "models:/iris@champion", *intake, *v2)
    run("hub", "assign", "--home", "hub", "plant-7", "iris", "2")
    run("hub", "export", "--home", "hub", "--site", "plant-7", "--out", "media/bundle-5")
    before = run("spoke", "status", "--home", "spoke", "--json").stdout
    run("spoke", "import", "--home", "spoke", "media/bundle-5", expect=18)
    if before != run("spoke", "status", "--home", "spoke", "--json").stdout:
        console.print("[red]the spoke's state changed after a refused import[/red]")
        sys.exit(1)
    console.print("[green]nothing staged; the refusal and its figures are in the audit log[/green]")
    run("audit", "verify", "--home", "spoke")


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def background(name: str, *args: str) -> subprocess.Popen[str]:
    """Starts a long-running ``airlock`` command; its output goes to demo-out/NAME.log."""
    console.print(f"[cyan]$ airlock {' '.join(args)} &[/cyan]  [dim](log: {name}.log)[/dim]")
    log = (OUT / f"{name}.log").open("w")
    return subprocess.Popen(
        [AIRLOCK, *args], env=ENV, text=True, stdout=log, stderr=subprocess.STDOUT, cwd=OUT
    )


def rollout_of(version: str) -> dict[str, Any]:
    rows = json.loads(run_quiet("spoke", "rollout", "list", "--home", "spoke", "--json"))
    found = [r for r in rows if r["model"] == "flowers" and r["version"] == version]
    return found[0] if found else {}


def run_quiet(*args: str) -> str:
    proc = subprocess.run([AIRLOCK, *args], env=ENV, text=True, capture_output=True, cwd=OUT)
    if proc.returncode != 0:
        console.print(proc.stderr, style="red", markup=False)
        sys.exit(1)
    return proc.stdout


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
        "The release engineer releases the pipeline's iris classifier as family 'flowers', "
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
    model = ["pipeline/v1/model.onnx", "--validation-set", "pipeline/v1/validation.npz"]
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
        size = sum(p["size"] for p in envelope["parts"])
        console.print(f"bundle-9: kind {envelope['kind']}, payload {size} bytes")
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


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback URL
                return
        except OSError:
            time.sleep(0.2)
    console.print(f"[red]{url} did not answer[/red]")
    sys.exit(1)


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    key_ceremony()

    step("2. Hub init (release engineer)", "The hub takes the public roots and its online keys.")
    run("hub", "init", "--home", "hub", "--from", "ceremony")

    step(
        "3. Spoke init (site admin, air-gapped site)",
        "The site creates its age identity and Ed25519 key and trusts the ceremony's roots. "
        "Its public identity goes to the hub.",
    )
    run(
        "spoke",
        "init",
        "--home",
        "spoke",
        "--site-id",
        "plant-7",
        "--image-root",
        "ceremony/image/1.root.json",
        "--director-root",
        "ceremony/director/1.root.json",
    )

    step("4. Register the site at the hub", "Recipient, signing key, 30-day transit budget.")
    run("hub", "site", "add", "--home", "hub", "--identity", "spoke/site-identity.json")

    step("5. Add a model version", "A small ONNX classifier becomes a TUF target of its family.")
    make_model(OUT / "classifier.onnx")
    run("hub", "model", "add", "--home", "hub", "classifier", "1.0.0", "classifier.onnx")

    step("6. Assign it to the site", "The Director's targets for plant-7 now name it.")
    run("hub", "assign", "--home", "hub", "plant-7", "classifier", "1.0.0")

    step(
        "7. Export the site's bundle",
        "Signed envelope + age-encrypted payload, for removable media.",
    )
    run("hub", "export", "--home", "hub", "--site", "plant-7", "--out", "media/bundle-1")
    envelope = json.loads((OUT / "media/bundle-1/envelope.json").read_text())["signed"]
    console.print(
        f"envelope: sequence {envelope['sequence']}, expires {envelope['expires']}, "
        f"parts {[p['name'] for p in envelope['parts']]}"
    )

    step(
        "8. Import at the site",
        "Envelope → sizes and hashes → decrypt → strict unpack → TUF (Image + Director) → "
        "agreement → stage.",
    )
    run("spoke", "import", "--home", "spoke", "media/bundle-1")
    run("spoke", "status", "--home", "spoke")

    step(
        "9. Audit",
        "Both logs are Merkle trees (RFC 6962); verify recomputes them and checks every "
        "signed checkpoint (the hub signed one with this export).",
    )
    run("audit", "verify", "--home", "hub")
    run("audit", "verify", "--home", "spoke")

    step(
        "10. A tampered bundle is refused",
        "The hub exports a retrained version 1.1.0. On the way, one byte of the encrypted "
        "payload is flipped on a copy of the medium: the import fails before decryption, and "
        "the site's state does not change. The genuine bundle then imports.",
    )
    make_model(OUT / "classifier-1.1.onnx", seed=11)
    run("hub", "model", "add", "--home", "hub", "classifier", "1.1.0", "classifier-1.1.onnx")
    run("hub", "assign", "--home", "hub", "plant-7", "classifier", "1.1.0")
    run("hub", "export", "--home", "hub", "--site", "plant-7", "--out", "media/bundle-2")
    before = run("spoke", "status", "--home", "spoke", "--json").stdout
    staged_before = tree_listing(OUT / "spoke/staged")
    tampered = OUT / "media/bundle-2-tampered"
    shutil.copytree(OUT / "media/bundle-2", tampered)
    payload = tampered / "payload.age"
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0x01
    payload.write_bytes(bytes(data))
    run("spoke", "import", "--home", "spoke", "media/bundle-2-tampered", expect=12)
    after = run("spoke", "status", "--home", "spoke", "--json").stdout
    if before != after or staged_before != tree_listing(OUT / "spoke/staged"):
        console.print("[red]the spoke's state changed after a refused import[/red]")
        sys.exit(1)
    console.print("[green]spoke state and staged files unchanged; the refusal is audited:[/green]")
    run("audit", "verify", "--home", "spoke")
    run("spoke", "import", "--home", "spoke", "media/bundle-2")
    run("spoke", "status", "--home", "spoke")

    step(
        "11. An older bundle is a replay",
        "Sequence numbers only go forward: bundle 1, imported again, changes nothing.",
    )
    run("spoke", "import", "--home", "spoke", "media/bundle-1", expect=14)

    rotation_ceremony()
    mlflow_intake()
    phased_rollouts()
    auditor()
    metrics_return()
    console.print(f"\n[bold green]Demo complete.[/bold green] Everything is under {OUT}")


if __name__ == "__main__":
    main()
