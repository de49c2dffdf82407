"""`make demo`: the whole trust path, hub to site, on embedded defaults.

Runs the real `airlock` commands one after another, narrating each step:
ceremony → hub init → spoke init → register site → add a small ONNX model →
assign → export → import → status → audit verify; then a tampered copy of the
bundle is refused and nothing changes. Everything lands under ./demo-out/.
The passphrases below are demo defaults; real deployments type them at a
prompt or take them from a secrets manager.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from rich.console import Console
from rich.panel import Panel

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-out"
AIRLOCK = str(Path(sys.executable).parent / "airlock")
console = Console()

ENV = {
    **os.environ,
    "AIRLOCK_CEREMONY_PASSPHRASE": "demo officers' passphrase",
    "AIRLOCK_HUB_PASSPHRASE": "demo hub passphrase",
    "AIRLOCK_SPOKE_PASSPHRASE": "demo site passphrase",
    "AIRLOCK_PRINCIPAL": "demo-operator",
    "COLUMNS": "110",
}


def step(title: str, text: str) -> None:
    console.print()
    console.print(Panel(text, title=f"[bold]{title}[/bold]", title_align="left", expand=True))


def run(*args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    console.print(f"[cyan]$ airlock {' '.join(args)}[/cyan]")
    proc = subprocess.run([AIRLOCK, *args], env=ENV, text=True, capture_output=True, cwd=OUT)
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


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    step(
        "1. Key ceremony (security officers, offline)",
        "Create the root keys (2-of-3), the offline targets keys and the hub's online keys, "
        "and sign the Image and Director roots.",
    )
    run("ceremony", "init", "--out", "ceremony")

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

    step("9. Audit", "Both logs are hash chains; verify recomputes them.")
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
    console.print(f"\n[bold green]Demo complete.[/bold green] Everything is under {OUT}")


if __name__ == "__main__":
    main()
