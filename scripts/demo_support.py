"""The demo's plumbing: where it runs, its environment, and how it runs `airlock` commands.

Shared by :mod:`demo` (the trust path) and :mod:`demo_fleet` (the fleet, the
auditor and the return path). Every command runs in ``demo-out/`` with the demo's
passphrases in its environment; :func:`run` narrates it and stops the demo on an
unexpected exit code.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

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


def run_quiet(*args: str) -> str:
    proc = subprocess.run([AIRLOCK, *args], env=ENV, text=True, capture_output=True, cwd=OUT)
    if proc.returncode != 0:
        console.print(proc.stderr, style="red", markup=False)
        sys.exit(1)
    return proc.stdout


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


def make_model(path: Path, seed: int = 7, lookup_bytes: int = 0) -> None:
    """A tiny linear classifier over 4 features, 3 classes (softmax); ``seed`` picks weights.

    ``lookup_bytes`` > 0 adds an initializer of that many random bytes, saved as external
    data (``weights.bin`` next to ``path``): a model large enough to span several chunks.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    initializers = [
        numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "W"),
        numpy_helper.from_array(np.zeros(3, dtype=np.float32), "B"),
    ]
    if lookup_bytes:
        table = rng.integers(0, 255, size=lookup_bytes, dtype=np.uint8)
        initializers.append(numpy_helper.from_array(table, "lookup_table"))
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "B"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "demo-classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # onnx writes its newest IR version (14), which onnxruntime 1.31 refuses
    if not lookup_bytes:
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=1024,
    )


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
