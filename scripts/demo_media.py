"""The demo's media chapter: a bundle cut into volumes with parity, a lost disc, a resumed import.

Called by ``scripts/demo.py`` after the first import; uses the demo's hub
(``demo-out/hub``) and spoke (``demo-out/spoke``) and the real CLI.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from demo_support import OUT, console, make_model, run, step

VOLUME_SIZE = "2.5M"
WEIGHTS_BYTES = 6_000_000


def _volumes(bundle: Path) -> list[dict[str, object]]:
    signed = json.loads((bundle / "envelope.json").read_text())["signed"]
    return list(signed["volumes"])


def media_transfer() -> None:
    """Steps 12-14 of the demo (see the module docstring)."""
    step(
        "12. A bundle cut to the medium, with parity",
        f"A 6 MB model goes out as volumes of at most {VOLUME_SIZE} bytes (think DVDs: 4.7G) "
        "plus one parity volume: any k of the k+1 volumes rebuild it. Each data volume is a "
        "standard age file; chunk names on the media are keyed, so they do not reveal the "
        "model. `airlock bundle inspect` reads the envelope with no key.",
    )
    make_model(OUT / "detector-1.0" / "model.onnx", seed=21, lookup_bytes=WEIGHTS_BYTES)
    run("hub", "model", "add", "--home", "hub", "detector", "1.0.0", "detector-1.0")
    run("hub", "assign", "--home", "hub", "plant-7", "detector", "1.0.0")
    discs = OUT / "media/discs"
    run(
        "hub", "export", "--home", "hub", "--site", "plant-7", "--out", "media/discs",
        "--volume-size", VOLUME_SIZE, "--parity", "1",
    )  # fmt: skip
    run("bundle", "inspect", "media/discs")

    step(
        "13. A disc is lost on the way",
        "Data volume 2 never arrives. The import rebuilds it from the others and the parity "
        "volume, checks every chunk against the signed index, and stages the model. The "
        "signed import receipt says what was checked; a security officer verifies it.",
    )
    lost = next(v for v in _volumes(discs) if v["kind"] == "data" and v["number"] == 2)
    (OUT / "media/lost").mkdir()
    shutil.move(str(discs / str(lost["name"])), OUT / "media/lost")
    run("bundle", "inspect", "media/discs")
    run("spoke", "import", "--home", "spoke", "media/discs", "--receipt", "media/receipt-3.json")
    run("audit", "verify-receipt", "media/receipt-3.json", "--key", "spoke/site-identity.json")

    step(
        "14. An import that waits for the rest of the media",
        "Version 1.1.0 travels on three discs. The site gets disc 1 first: the import verifies "
        "what is there, keeps it, and says exactly which volumes are missing (exit 9). When "
        "discs 2 and 3 arrive, the import goes on from there and reads nothing twice.",
    )
    make_model(OUT / "detector-1.1" / "model.onnx", seed=22, lookup_bytes=WEIGHTS_BYTES)
    run("hub", "model", "add", "--home", "hub", "detector", "1.1.0", "detector-1.1")
    run("hub", "assign", "--home", "hub", "plant-7", "detector", "1.1.0")
    run(
        "hub", "export", "--home", "hub", "--site", "plant-7", "--out", "media/set-2",
        "--volume-size", VOLUME_SIZE,
    )  # fmt: skip
    _split_onto_discs(OUT / "media/set-2")
    run("spoke", "import", "--home", "spoke", "media/disc-1", expect=9)
    run("spoke", "import", "--home", "spoke", "--status")
    run("spoke", "import", "--home", "spoke", "media/disc-3", "media/disc-2", "media/disc-1")
    run("spoke", "status", "--home", "spoke")
    console.print("[green]the model crossed on three discs, one of them late[/green]")


def _split_onto_discs(bundle: Path) -> None:
    """Disc 1: the small files and volume 1; discs 2 and 3: the other volumes."""
    volumes = [v for v in _volumes(bundle) if v["kind"] == "data"]
    discs = [OUT / f"media/disc-{n}" for n in (1, 2, 3)]
    for disc in discs:
        disc.mkdir()
    for name in ("envelope.json", "site.age"):
        shutil.copy2(bundle / name, discs[0] / name)
    for i, volume in enumerate(volumes):
        disc = discs[min(i, 2)]
        shutil.copy2(bundle / str(volume["name"]), disc / str(volume["name"]))
