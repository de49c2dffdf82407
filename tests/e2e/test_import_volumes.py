"""Format-2 bundles at the spoke: volumes from several media, resume, status, abandon, receipts.

Bundles are the hub's real plans written as volumes (:mod:`helpers.v2craft`),
imported by the real importer; only time and the media are the test's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.onnx_models import make_onnx_model
from helpers.spokeenv import SITE_ID, spoke_clock
from helpers.v2craft import V2Bundle, write_v2_bundle

from airlock.bundles.volumes import minimum_volume_size
from airlock.hub.context import HubContext
from airlock.hub.export import assign, plan_export
from airlock.hub.intake import add_model
from airlock.spoke.importing import import_media
from airlock.spoke.site import SpokeHome

BIG_WIDTH = 1_500_000
"""A 6 MB weights file: six chunks of 1 MiB."""


def big_bundle(hub: HubContext, media: Path, tmp_path: Path, volumes: int = 3, parity: int = 0) -> V2Bundle:
    model = make_onnx_model(tmp_path / "big" / "model.onnx", external_data=True, width=BIG_WIDTH)
    add_model(hub, "big", "1", model.parent)
    assign(hub, SITE_ID, "big", "1")
    plan = plan_export(hub, SITE_ID)
    size = minimum_volume_size(plan.recipients) * 3
    return write_v2_bundle(hub, plan, media / "bundle", volume_size=size, parity=parity)


def test_smoke(hub: HubContext, spoke: SpokeHome, media: Path, tmp_path: Path) -> None:
    bundle = big_bundle(hub, media, tmp_path)
    print([v.name for v in bundle.envelope.volumes])
    result = import_media(spoke, [bundle.root], spoke_clock())
    print(result.to_dict())
