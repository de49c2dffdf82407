"""What one round measures, per model size.

A round at the main size (``--size-mib``) measures the fixed cost on the tiny model,
intake / export / import of the big model next to the stock tools, then volumes and
parity: the same export cut into about four data volumes, without and with
``--parity 1``, and the import of that parity bundle complete and with one data volume
lost (moved out of the bundle directory, so that the import must rebuild it). A round
at the flat size (``--flat-size-mib``) measures intake / export / import only. Odd
rounds run the references (or, for volumes and parity, the second command) first.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from bundlebench.commands import (
    UNLOCK_SCRIPT,
    Workspace,
    bundle_bytes,
    bundle_info,
    reference_export,
    reference_import,
    reference_intake,
)
from bundlebench.model import volume_size_for
from bundlebench.phases import profile
from bundlebench.runner import Bench, Command, Unmeasured

MEDIA = "volumes and parity"
VOLUMES = 4  # data volumes the volume size aims at
LOST = 2  # which data volume (number) the rebuild import goes without


@dataclass(frozen=True)
class Inputs:
    """What every round works on.

    Attributes:
        tiny: The tiny model's directory (for the fixed cost).
        key: The reference pipelines' age identity file.
        recipient: Its recipient.
        site_identity: The spoke's sealed age identity.
    """

    tiny: Path
    key: Path
    recipient: str
    site_identity: Path


@dataclass(frozen=True)
class Scale:
    """One model size: its directory, hub name and bytes; whether volumes are measured there."""

    mib: int
    model: Path
    name: str
    size: int
    media: bool

    def label(self, what: str) -> str:
        """A run label at this size, e.g. ``"export ours @1024"``."""
        return f"{what} @{self.mib}"

    @property
    def group(self) -> str:
        """The group of this size's export and import measurements."""
        return f"export and import @{self.mib}"


def measure_fixed_cost(bench: Bench, ws: Workspace, round_no: int, inputs: Inputs) -> None:
    """The fixed costs: the identity unlock alone, and the airlock commands on the tiny model."""
    if not bench.group("fixed cost"):
        return
    bundle = ws.work / "bundles" / f"tiny-{round_no}"
    try:
        argv = [sys.executable, "-c", UNLOCK_SCRIPT, str(inputs.site_identity)]
        bench.measure(Command("unlock tiny", argv))
        version = f"1.0.{round_no}"
        bench.measure(ws.model_add("tiny", version, inputs.tiny, "intake tiny"))
        ws.assign_only(bench, "tiny", version)
        bench.measure(ws.hub_export(bundle, "export tiny"))
        bench.facts.setdefault("formats", {})["export tiny"] = bundle_info(bundle).format_version
        bench.measure(ws.spoke_import(bundle, "import tiny"))
    except Unmeasured as exc:
        bench.give_up("fixed cost", exc.reason)
    finally:
        shutil.rmtree(bundle, ignore_errors=True)


def measure_big(
    bench: Bench, ws: Workspace, scale: Scale, round_no: int, inputs: Inputs, last: bool
) -> None:
    """Intake, export and import of the model at ``scale``, ours and the references;
    in the ``last`` round, one more export and import each, split by phase."""
    if not bench.group(scale.group):
        return
    ref = ws.work / "reference"
    ref.mkdir()
    bundle = ws.work / "bundles" / f"model-{scale.mib}-{round_no}"
    payload = ref / "payload.age"
    first = round_no % 2 == 1
    version = f"1.0.{round_no}"
    try:
        bench.measure_all(
            [
                ws.model_add(scale.name, version, scale.model, scale.label("intake ours")),
                reference_intake(scale.model, ref / "intake", scale.label("intake reference")),
            ],
            reverse=first,
        )
        ws.assign_only(bench, scale.name, version)
        bench.measure_all(
            [
                ws.hub_export(bundle, scale.label("export ours")),
                reference_export(
                    scale.model, payload, inputs.recipient, scale.label("export reference")
                ),
            ],
            reverse=first,
        )
        check_carries(bundle, scale)
        bench.facts.setdefault("formats", {})[scale.label("export ours")] = bundle_info(
            bundle
        ).format_version
        bench.measure_all(
            [
                ws.spoke_import(bundle, scale.label("import ours")),
                reference_import(
                    payload, inputs.key, ref / "import", scale.label("import plain"), digest=False
                ),
                reference_import(
                    payload, inputs.key, ref / "import", scale.label("import digest"), digest=True
                ),
            ],
            reverse=first,
        )
        if last:
            measure_phases(bench, ws, scale, bundle)
    except Unmeasured as exc:
        bench.give_up(scale.group, exc.reason)
    finally:
        shutil.rmtree(bundle, ignore_errors=True)
        shutil.rmtree(ref, ignore_errors=True)
        ws.restore_spoke()


def measure_phases(bench: Bench, ws: Workspace, scale: Scale, bundle: Path) -> None:
    """One more export and import of the model with ``--json``, split by phase (information)."""
    phases = bench.facts.setdefault("phases", {})
    again = ws.work / "bundles" / f"phases-{scale.mib}"
    try:
        export = ws.hub_export(again, "", full=True)
        phases[scale.label("export")] = profile(
            bench, [*export.argv, "--json"], scale.label("export phases"), export.warm[0]
        )
        ws.restore_spoke()
        argv = ws.spoke_import(bundle, "").argv
        phases[scale.label("import")] = profile(
            bench, [*argv[:-1], "--json", argv[-1]], scale.label("import phases"), bundle
        )
    finally:
        shutil.rmtree(again, ignore_errors=True)


def check_carries(bundle: Path, scale: Scale) -> None:
    """Raises :class:`Unmeasured` when the bundle does not carry the whole model."""
    if bundle_bytes(bundle) < scale.size:
        raise Unmeasured(
            f"the bundle {bundle.name} holds {bundle_bytes(bundle):,} bytes, less than the "
            f"{scale.size:,}-byte model: the export left the model out"
        )


def measure_media(
    bench: Bench, ws: Workspace, scale: Scale, round_no: int, keep: bool
) -> Path | None:
    """Volumes and parity at ``scale`` (the model assigned by :func:`measure_big`).

    Returns:
        The bundle cut into volumes without parity when ``keep`` (for the resume
        measurement), else None; the other bundles are removed.
    """
    reason = ws.caps.missing_for_media()
    if reason is not None:
        bench.give_up(MEDIA, reason)
    if not bench.group(MEDIA):
        return None
    volume_size = volume_size_for(scale.size, VOLUMES)
    volumes = ws.work / "bundles" / f"volumes-{round_no}"
    parity = ws.work / "bundles" / f"parity-{round_no}"
    aside = ws.work / "bundles" / "lost-volume"
    first = round_no % 2 == 1
    kept = False
    try:
        bench.measure_all(
            [
                ws.hub_export(
                    volumes, scale.label("export volumes"), volume_size=volume_size, full=True
                ),
                ws.hub_export(
                    parity,
                    scale.label("export parity"),
                    volume_size=volume_size,
                    parity=1,
                    full=True,
                ),
            ],
            reverse=first,
        )
        for bundle in (volumes, parity):
            check_carries(bundle, scale)
        info = bundle_info(parity)
        if info.format_version != 2 or len(info.data) < 2 or len(info.parity) != 1:
            raise Unmeasured(
                f"the parity export wrote format {info.format_version} with "
                f"{len(info.data)} data and {len(info.parity)} parity volume(s), not several + 1"
            )
        lost = info.data[min(LOST, len(info.data)) - 1]
        bench.facts["media"] = {
            "volume_size": volume_size,
            "data_volumes": len(info.data),
            "parity_volumes": len(info.parity),
            "data_volume_bytes": [p.stat().st_size for p in info.data],
            "lost": lost.name,
        }

        def complete() -> None:
            ws.restore_spoke()
            if (aside / lost.name).exists():
                (aside / lost.name).rename(lost)

        def without_one() -> None:
            ws.restore_spoke()
            aside.mkdir(exist_ok=True)
            lost.rename(aside / lost.name)

        argv = ws.spoke_import(parity, "").argv
        bench.measure_all(
            [
                Command(scale.label("import complete"), argv, warm=(parity,), prepare=complete),
                Command(scale.label("import rebuild"), argv, warm=(parity,), prepare=without_one),
            ],
            reverse=first,
        )
        kept = keep
    except Unmeasured as exc:
        bench.give_up(MEDIA, exc.reason)
    finally:
        shutil.rmtree(parity, ignore_errors=True)
        shutil.rmtree(aside, ignore_errors=True)
        if not kept:
            shutil.rmtree(volumes, ignore_errors=True)
        ws.restore_spoke()
    return volumes if kept else None
