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
The passphrases (in demo_support.py) are demo defaults; real deployments type them at a
prompt or take them from a secrets manager.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from demo_fleet import auditor, metrics_return, phased_rollouts
from demo_media import media_transfer
from demo_support import (
    ENV,
    IN_TOTO_RUN,
    MLFLOW_URI,
    OFFICERS,
    OUT,
    ROOT,
    console,
    make_model,
    run,
    softhsm_token,
    step,
    tree_listing,
)


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
        # a generous limit: training on a busy machine can take longer than the default 10 s
        argv = [IN_TOTO_RUN, "--step-name", name, "--signing-key", key, "--run-timeout", "300"]
        argv += ["--materials", *materials] if materials else []
        argv += ["--products", *products, "--", sys.executable, script, *command]
        console.print(
            f"[magenta]pipeline[/magenta] [cyan]$ in-toto-run --step-name {name} …[/cyan]"
        )
        proc = subprocess.run(argv, cwd=workdir, env=ENV, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"in-toto-run of step {name} failed:\n{proc.stderr[-4000:]}")
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


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    key_ceremony()

    step(
        "2. Hub init (release engineer)",
        "The hub takes the public roots and its online keys.",
    )
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
        "Signed envelope, the per-site part (metadata, chunk indexes) and the model's "
        "chunks in an age-encrypted volume, for removable media.",
    )
    run("hub", "export", "--home", "hub", "--site", "plant-7", "--out", "media/bundle-1")
    envelope = json.loads((OUT / "media/bundle-1/envelope.json").read_text())["signed"]
    console.print(
        f"envelope: sequence {envelope['sequence']}, expires {envelope['expires']}, "
        f"per-site part {envelope['site_part']['name']}, "
        f"volumes {[v['name'] for v in envelope['volumes']]}"
    )

    step(
        "8. Import at the site",
        "Envelope → per-site part (size, hash, decrypt, strict) → TUF (Image + Director) → "
        "chunk indexes against their signed digests → every chunk of the volume → stage.",
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
        "per-site part is flipped on a copy of the medium: the import fails before decryption, and "
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
    payload = tampered / "site.age"
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

    media_transfer()
    rotation_ceremony()
    mlflow_intake()
    phased_rollouts()
    auditor()
    metrics_return()
    console.print(f"\n[bold green]Demo complete.[/bold green] Everything is under {OUT}")


if __name__ == "__main__":
    main()
