"""The commands the benchmark runs: ``airlock`` (hub and spoke) and the stock-tool references.

Also what the benchmark needs to know about the CLI it runs (which options exist: the
format-2 pieces land on main one by one) and about the bundles it wrote (their format,
their volumes), read from the plaintext envelope — never from airlock's private modules.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from measure import shell

from bundlebench.model import files_under
from bundlebench.runner import AIRLOCK, ENV, Bench, Command, fail, fresh_dir

SITE = "bench-site"
TOOLS = ("age", "age-keygen", "openssl", "tar", "cp")
SPOKE_ROOTS = (
    "--image-root",
    "ceremony/image/1.root.json",
    "--director-root",
    "ceremony/director/1.root.json",
)


def airlock(*args: str | Path) -> list[str]:
    """argv of an ``airlock`` command."""
    return [AIRLOCK, *(str(a) for a in args)]


def q(value: str | Path) -> str:
    """Shell-quoted ``value``."""
    return shlex.quote(str(value))


@dataclass(frozen=True)
class Capabilities:
    """What the installed CLI offers (from its ``--help``): format 2 arrives branch by branch."""

    export_format: bool
    volume_size: bool
    parity: bool
    import_status: bool
    import_json: bool

    @classmethod
    def detect(cls) -> Capabilities:
        """Reads ``airlock hub export --help`` and ``airlock spoke import --help``."""
        export = _help("hub", "export")
        imports = _help("spoke", "import")
        return cls(
            export_format="--format" in export,
            volume_size="--volume-size" in export,
            parity="--parity" in export,
            import_status="--status" in imports,
            import_json="--json" in imports,
        )

    def missing_for_media(self) -> str | None:
        """Why volumes and parity cannot be measured with this CLI (None: they can)."""
        options = (("--volume-size", self.volume_size), ("--parity", self.parity))
        absent = [option for option, present in options if not present]
        if not absent:
            return None
        return f"`airlock hub export` has no {' or '.join(absent)} (format-2 export not merged yet)"


def _help(*command: str) -> str:
    proc = subprocess.run(airlock(*command, "--help"), env=ENV, capture_output=True, text=True)
    return proc.stdout


@dataclass
class Workspace:
    """The ceremony, hub and spoke homes under the work directory, and what is assigned."""

    work: Path
    caps: Capabilities
    assigned: str | None = None  # the model name assigned to the site

    @property
    def spoke(self) -> Path:
        """The spoke home the imports go into."""
        return self.work / "spoke"

    def restore_spoke(self) -> None:
        """Puts the newly initialised spoke home back (nothing imported, no pending import)."""
        shutil.rmtree(self.spoke, ignore_errors=True)
        shutil.copytree(self.work / "spoke-fresh", self.spoke, symlinks=True)

    def assign_only(self, bench: Bench, name: str, version: str) -> None:
        """Makes ``name@version`` the site's only assignment."""
        if self.assigned is not None:
            bench.run("unassign", airlock("hub", "unassign", "--home", "hub", SITE, self.assigned))
        bench.run("assign", airlock("hub", "assign", "--home", "hub", SITE, name, version))
        self.assigned = name

    def model_add(self, name: str, version: str, model: Path, label: str) -> Command:
        """``airlock hub model add``, with the model's files warm."""
        argv = airlock("hub", "model", "add", "--home", "hub", name, version, model)
        return Command(label, argv, warm=(model,))

    def hub_export(
        self,
        bundle: Path,
        label: str,
        *,
        volume_size: int | None = None,
        parity: int = 0,
        full: bool = False,
    ) -> Command:
        """``airlock hub export`` (``--format 2`` when the CLI has it), with the blobs warm.

        ``full``: ``--full``, for a bundle that carries the assigned version although
        an earlier export of the round carried it already.
        """
        argv = airlock("hub", "export", "--home", "hub", "--site", SITE, "--out", bundle)
        if full:
            argv.append("--full")
        if self.caps.export_format:
            argv += ["--format", "2"]
        if volume_size is not None:
            argv += ["--volume-size", f"{-(-volume_size // 1000)}K"]
        if parity:
            argv += ["--parity", str(parity)]
        return Command(label, argv, warm=(self.work / "hub" / "blobs",))

    def spoke_import(self, bundle: Path, label: str) -> Command:
        """``airlock spoke import`` into a fresh spoke home, with the bundle warm."""
        argv = airlock("spoke", "import", "--home", self.spoke, bundle)
        return Command(label, argv, warm=(bundle,), prepare=self.restore_spoke)


def check_prerequisites(work: Path, size_bytes: int) -> None:
    """Exits with a clear message when a stock tool or disk space is missing."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        fail(
            f"{', '.join(missing)} not found on PATH; the benchmark compares against them. "
            "Install them with `make system-deps` (Debian packages age, openssl)."
        )
    work.parent.mkdir(parents=True, exist_ok=True)
    needed = 9 * size_bytes  # model, hub store, bundles, spoke + import state, 3 reference copies
    free = shutil.disk_usage(work.parent).free
    if free < needed:
        fail(f"{free >> 20} MiB free under {work.parent}; the run needs ~{needed >> 20}")


def set_up_airlock(bench: Bench, work: Path) -> None:
    """Ceremony, hub, spoke and site registration; keeps a copy of the fresh spoke home."""
    bench.run("ceremony init", airlock("ceremony", "init", "--out", "ceremony"))
    bench.run("hub init", airlock("hub", "init", "--home", "hub", "--from", "ceremony"))
    bench.run(
        "spoke init",
        airlock("spoke", "init", "--home", "spoke", "--site-id", SITE, *SPOKE_ROOTS),
    )
    bench.run(
        "hub site add",
        airlock("hub", "site", "add", "--home", "hub", "--identity", "spoke/site-identity.json"),
    )
    shutil.copytree(work / "spoke", work / "spoke-fresh", symlinks=True)


def reference_identity(work: Path) -> tuple[Path, str]:
    """A plain ``age-keygen`` identity for the reference pipelines: (key file, recipient)."""
    key = work / "reference-key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return key, recipient


def site_identity(work: Path) -> tuple[Path, dict[str, int]]:
    """The spoke's sealed age identity file and its scrypt parameters (n, r, p)."""
    path = work / "spoke-fresh" / "keys" / "site-age-identity.sealed"
    header = json.loads(path.read_bytes())["header"]
    return path, {k: int(header[k]) for k in ("n", "r", "p")}


UNLOCK_SCRIPT = """
import os, sys
from airlock.bundles.keys import unseal
with open(sys.argv[1], "rb") as identity:
    unseal(identity.read(), os.environ["AIRLOCK_SPOKE_PASSPHRASE"], "the site's age identity")
"""


def reference_intake(model: Path, dest: Path, label: str) -> Command:
    """``cp -r`` the model, then ``openssl dgst -sha256`` the copies."""
    script = f"cp -r {q(model)} {q(dest)} && openssl dgst -sha256 {q(dest)}/* > /dev/null"
    return Command(
        label, shell(script), warm=(model,), prepare=lambda: shutil.rmtree(dest, ignore_errors=True)
    )


def reference_export(model: Path, payload: Path, recipient: str, label: str) -> Command:
    """``tar cf - DIR | age -r RECIPIENT > payload``."""
    script = f"tar cf - -C {q(model.parent)} {q(model.name)} | age -r {q(recipient)} > {q(payload)}"
    return Command(label, shell(script), warm=(model,))


def reference_import(payload: Path, key: Path, dest: Path, label: str, *, digest: bool) -> Command:
    """``age -d | tar xf -`` into ``dest``; with ``digest``, then ``openssl dgst`` the files."""
    script = f"age -d -i {q(key)} {q(payload)} | tar xf - -C {q(dest)}"
    if digest:
        script += f" && find {q(dest)} -type f -exec openssl dgst -sha256 {{}} + > /dev/null"
    return Command(label, shell(script), warm=(payload,), prepare=lambda: fresh_dir(dest))


@dataclass(frozen=True)
class BundleInfo:
    """What a bundle's plaintext envelope says about its layout on the media.

    Attributes:
        format_version: 1 (one payload) or 2 (volumes).
        data: The data volume files, in number order.
        parity: The parity volume files.
    """

    format_version: int
    data: tuple[Path, ...]
    parity: tuple[Path, ...]

    @property
    def volume_files(self) -> tuple[Path, ...]:
        """Every file that carries model bytes: data and parity volumes (format 1: the parts)."""
        return self.data + self.parity


def bundle_info(bundle: Path) -> BundleInfo:
    """Reads ``bundle/envelope.json`` (signed fields only, no verification: a benchmark)."""
    signed: dict[str, Any] = json.loads((bundle / "envelope.json").read_bytes())["signed"]
    version = int(signed["format_version"])
    if version == 1:
        parts = tuple(bundle / str(p["name"]) for p in signed.get("parts", []))
        return BundleInfo(1, parts, ())
    volumes = sorted(signed.get("volumes", []), key=lambda v: (v["kind"], int(v["number"])))
    data = tuple(bundle / str(v["name"]) for v in volumes if v["kind"] == "data")
    parity = tuple(bundle / str(v["name"]) for v in volumes if v["kind"] == "parity")
    return BundleInfo(version, data, parity)


def bundle_bytes(bundle: Path) -> int:
    """Bytes in the bundle's files."""
    return sum(p.stat().st_size for p in files_under(bundle))
