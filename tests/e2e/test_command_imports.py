"""Each command loads the modules it uses, not its siblings': the fixed cost of a command.

``airlock hub export`` and ``airlock spoke import`` of a small bundle cost mostly
what they import (issue 14: at most 0.6 s each, ``bench/bench_bundle.py``
measures it). These tests run the real commands in real processes and list the
heavy packages each one loaded: the export loads no onnxruntime, MLflow, in-toto,
web stack or Alembic; the import loads onnxruntime (its gate loads every new
model) but none of the others; a home at this release's schema is checked
without Alembic; ``--help`` still lists every command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers.hubenv import HUB_PASSPHRASE
from helpers.spokeenv import SITE_ID, SITE_PASSPHRASE

from airlock.hub.context import HubContext
from airlock.spoke.site import PASSPHRASE_ENV, SpokeHome

HEAVY = (
    "alembic",
    "fastapi",
    "httpx",
    "in_toto",
    "jinja2",
    "mlflow",
    "numpy",
    "onnxruntime",
    "starlette",
    "uvicorn",
)
"""Packages a small export or import should pay for only when it uses them."""

SCRIPT = """
import json, sys
from airlock.bundles.cli import main
try:
    main(sys.argv[2:], prog_name="airlock")
finally:
    heavy = set(sys.argv[1].split(","))
    loaded = sorted({name.split(".")[0] for name in sys.modules} & heavy)
    print(json.dumps({"heavy_loaded": loaded}), file=sys.stderr)
"""


def airlock_loading(*args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Runs ``airlock ARGS`` in a new interpreter; returns it and the heavy packages it loaded."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    env.update(
        {
            "AIRLOCK_PRINCIPAL": "release-engineer",
            "AIRLOCK_HUB_PASSPHRASE": HUB_PASSPHRASE,
            PASSPHRASE_ENV: SITE_PASSPHRASE,
            "COLUMNS": "120",
        }
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(HEAVY), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    return proc, report["heavy_loaded"]


def test_export_and_import_load_only_what_they_use(
    hub: HubContext, spoke: SpokeHome, media: Path
) -> None:
    bundle = media / "bundle"
    hub.close()
    spoke.close()
    exported, loaded = airlock_loading(
        "hub", "export", "--home", str(hub.home.root), "--site", SITE_ID, "--out", str(bundle)
    )
    assert exported.returncode == 0, exported.stderr
    assert loaded == []

    imported, loaded = airlock_loading("spoke", "import", "--home", str(spoke.path), str(bundle))
    assert imported.returncode == 0, imported.stderr
    assert "staged   classifier@1" in imported.stdout
    assert loaded == ["numpy", "onnxruntime"]  # the gate loads each new model in onnxruntime


def test_a_wrong_passphrase_opened_ahead_is_reported_where_it_always_was(
    spoke: SpokeHome, tmp_path: Path
) -> None:
    """The identity is unsealed on a thread from the start; its error waits until it is needed."""
    env_wrong = {PASSPHRASE_ENV: "not the site passphrase"}
    not_a_bundle = tmp_path / "empty"
    not_a_bundle.mkdir()
    spoke.close()
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    run = [str(Path(sys.executable).parent / "airlock"), "spoke", "import", "--home"]
    refused = subprocess.run(
        [*run, str(spoke.path), str(not_a_bundle)],
        env={**base, "AIRLOCK_PRINCIPAL": "site-admin", **env_wrong},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert refused.returncode == 5, refused.stderr  # the medium's error, not the passphrase's
    assert "no envelope.json" in refused.stderr and "wrong passphrase" not in refused.stderr


def test_help_still_lists_every_command_of_a_lazy_group() -> None:
    helped, loaded = airlock_loading("hub", "--help")
    assert helped.returncode == 0, helped.stderr
    listed = {
        line.split()[0] for line in helped.stdout.split("Commands:\n", 1)[1].splitlines() if line
    }
    assert listed == {
        "assign",
        "change",
        "db",
        "export",
        "import-metrics",
        "init",
        "layout",
        "model",
        "report",
        "revoke",
        "site",
        "status",
        "tenant",
        "trust",
        "unassign",
    }
    assert "fastapi" not in loaded and "onnxruntime" not in loaded
