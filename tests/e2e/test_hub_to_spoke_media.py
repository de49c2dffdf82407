"""The hub's real format-2 export, imported by the spoke: media for one site, and shared media.

``export`` with volumes and parity (one site), and ``export_sites`` (one courier's
media for plant-7 and plant-9: the content both carry is written once, in a
series encrypted to both sites; each site's envelope and ``site.age`` under
``sites/<site>``). The spoke imports from any order of directories, rebuilds a
lost volume from parity, and reads only the series its layout lists.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers.onnx_models import make_onnx_model
from helpers.spokeenv import OTHER_SITE_ID, SITE_ID, World, spoke_clock
from helpers.v2env import BIG_WIDTH

from airlock.bundles.models import DATA
from airlock.bundles.volumes import minimum_volume_size
from airlock.hub.context import HubContext
from airlock.hub.export import MediaOptions, assign, export, export_sites
from airlock.hub.intake import add_model
from airlock.spoke.importing import import_media
from airlock.spoke.site import SpokeHome


def _big_model(hub: HubContext, tmp_path: Path) -> None:
    model = make_onnx_model(tmp_path / "big" / "model.onnx", external_data=True, width=BIG_WIDTH)
    add_model(hub, "big", "1", model.parent)
    assign(hub, SITE_ID, "big", "1")


def test_a_real_export_with_parity_loses_a_volume_and_imports_from_three_media(
    world: World, hub: HubContext, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    _big_model(hub, tmp_path)
    recipient = world.other_site.identity.age_recipient  # any one recipient: same header size
    size = 2 * minimum_volume_size([recipient])
    envelope = export(
        hub,
        SITE_ID,
        media / "out",
        media=MediaOptions(format_version=2, volume_size=size, parity=1),
    )
    data = [v for v in envelope.volumes if v.kind == DATA]
    assert len(data) >= 3 and envelope.series[0].parity == 1
    dirs = [tmp_path / f"medium-{n}" for n in range(3)]
    for n, directory in enumerate(dirs):
        directory.mkdir()
        for volume in envelope.volumes[n::3]:
            shutil.copy2(media / "out" / volume.name, directory / volume.name)
    for name in ("envelope.json", "site.age"):
        shutil.copy2(media / "out" / name, dirs[-1] / name)
    (dirs[1] / data[0].name).unlink(missing_ok=True)  # a lost disc
    (dirs[0] / data[0].name).unlink(missing_ok=True)
    result = import_media(spoke, list(reversed(dirs)), spoke_clock())
    assert result.volumes["rebuilt"] == [data[0].name]
    assert set(result.staged) == {"big@1", "classifier@1", "detector@1"}


def test_shared_media_for_two_sites_serve_this_one(
    hub: HubContext, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    _big_model(hub, tmp_path)
    assign(hub, OTHER_SITE_ID, "classifier", "2")  # a series only plant-9 reads
    envelopes = export_sites(
        hub, [SITE_ID, OTHER_SITE_ID], media / "courier", media=MediaOptions(format_version=2)
    )
    mine = next(e for e in envelopes if e.site_id == SITE_ID)
    assert (media / "courier" / "sites" / SITE_ID / "envelope.json").is_file()
    assert not (media / "courier" / "envelope.json").exists()
    every_volume = {p.name for p in (media / "courier").iterdir() if p.is_file()}
    assert {v.name for v in mine.volumes} < every_volume, "no series only the other site reads"
    result = import_media(spoke, [media / "courier"], spoke_clock())
    assert set(result.staged) == {"big@1", "classifier@1", "detector@1"}
    assert sorted(result.volumes["read"]) == sorted(v.name for v in mine.volumes)
