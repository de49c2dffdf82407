"""`airlock hub export` in format 2: volumes sized to the medium, parity, the per-site part."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.identities import SiteKeys
from helpers.onnx_models import WEIGHTS_FILE, make_onnx_model

from airlock.bundles import tuf as tufrepo
from airlock.bundles.bundle import verify_envelope
from airlock.bundles.cli import main
from airlock.bundles.errors import UsageError
from airlock.bundles.models import Envelope
from airlock.hub.context import HubContext, load_director_roots
from airlock.hub.export import (
    MediaOptions,
    assign,
    export,
    export_sites,
    parse_volume_size,
    plan_export,
    write_bundle,
)
from airlock.hub.intake import add_model
from airlock.hub.sites import add_site

VOLUME = 2_200_000


@pytest.fixture
def big(hub: HubContext, site: SiteKeys, tmp_path: Path) -> HubContext:
    """A hub with a ~5 MB model (an external-data file of 5,000,000 bytes) assigned to plant-7."""
    make_onnx_model(tmp_path / "big" / "model.onnx", external_data=True, seed=5, width=1_250_000)
    add_site(hub, site.identity)
    add_model(hub, "detector", "1", tmp_path / "big")
    assign(hub, "plant-7", "detector", "1")
    return hub


def _age_d(path: Path, identity: Path) -> bytes:
    return subprocess.run(
        ["age", "-d", "-i", str(identity), str(path)], check=True, capture_output=True
    ).stdout


def _tar_t(plain: bytes) -> list[str]:
    run = subprocess.run(["tar", "tf", "-"], input=plain, check=True, capture_output=True)
    return run.stdout.decode().split()


def test_volumes_fit_the_medium_and_each_is_a_standard_age_file(
    big: HubContext, site: SiteKeys, tmp_path: Path
) -> None:
    out = tmp_path / "media"
    envelope = export(big, "plant-7", out, media=MediaOptions(volume_size=VOLUME, parity=1))
    keys, threshold = tufrepo.envelope_keys(load_director_roots(big).root.signed)
    assert verify_envelope((out / "envelope.json").read_bytes(), keys, threshold) == envelope
    assert envelope.format_version == 2 and envelope.parts == ()
    [series] = envelope.series
    data = [v for v in envelope.volumes if v.kind == "data"]
    [parity] = [v for v in envelope.volumes if v.kind == "parity"]
    assert series.data == len(data) >= 3 and series.parity == 1
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["envelope.json", "site.age", *(v.name for v in envelope.volumes)])
    for volume in data:
        assert (out / volume.name).stat().st_size == volume.size <= VOLUME
    assert parity.size == max(v.size for v in data) == (out / parity.name).stat().st_size

    identity = site.write_age_identity(tmp_path / "site.key")
    chunk_names = []
    for volume in data:  # any one volume on its own: stock age, stock tar
        listing = _tar_t(_age_d(out / volume.name, identity))
        assert listing[0] == "airlock-volume.json"
        assert all(re.fullmatch(r"[0-9a-f]{32}", name) for name in listing[1:])
        chunk_names += listing[1:]
    assert len(chunk_names) == len(set(chunk_names)) >= 5  # 5 MB in 1 MiB chunks, once each

    site_listing = _tar_t(_age_d(out / "site.age", identity))
    assert site_listing[-1] == "layout.json"
    assert [n for n in site_listing if n.startswith("index/")]
    assert "metadata/director/timestamp.json" in site_listing
    # Nothing on the media names the model: no file name, no plaintext header.
    for path in out.iterdir():
        assert b"detector" not in path.read_bytes() or path.name == "envelope.json"
    assert "detector" not in json.dumps(Envelope.to_dict(envelope))


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4.7G", 4_700_000_000),
        ("4G", 4_000_000_000),
        ("25G", 25_000_000_000),
        ("700M", 700_000_000),
        ("4GiB", 4 << 30),
        ("2.5MiB", 5 << 19),
        ("4.7 GB", 4_700_000_000),
        ("123456", 123456),
    ],
)
def test_volume_sizes_read_as_media_are_labelled(text: str, size: int) -> None:
    assert parse_volume_size(text) == size


@pytest.mark.parametrize("text", ["", "4.7Q", "G", "-1G", "0", "1e9"])
def test_a_volume_size_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="volume size"):
        parse_volume_size(text)


def test_format_1_has_no_volumes_and_too_small_a_volume_is_named(
    big: HubContext, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="format 1 has no volumes"):
        MediaOptions(format_version=1, volume_size=VOLUME)
    with pytest.raises(UsageError, match=r"the minimum is [0-9,]+ bytes"):
        export(big, "plant-7", tmp_path / "tiny", media=MediaOptions(volume_size=100_000))
    assert not (tmp_path / "tiny").exists()


def test_one_courier_s_media_serve_several_sites_each_reading_only_its_own(
    big: HubContext, site: SiteKeys, other_site: SiteKeys, tmp_path: Path
) -> None:
    make_onnx_model(tmp_path / "solo" / "c.onnx", seed=9)
    add_site(big, other_site.identity)
    add_model(big, "classifier", "1", tmp_path / "solo" / "c.onnx")
    assign(big, "plant-9", "detector", "1")
    assign(big, "plant-7", "classifier", "1")
    out = tmp_path / "courier"
    seven, nine = export_sites(
        big, ["plant-7", "plant-9"], out, media=MediaOptions(volume_size=VOLUME, parity=1)
    )
    assert (seven.site_id, nine.site_id) == ("plant-7", "plant-9")
    assert (seven.sequence, nine.sequence) == (1, 1)
    shared = {s.id for s in seven.series} & {s.id for s in nine.series}
    assert len(shared) == 1 and len(seven.series) == 2 and len(nine.series) == 1
    on_media = {p.name for p in out.iterdir()}
    assert {v.name for v in seven.volumes} | {v.name for v in nine.volumes} < on_media
    for envelope in (seven, nine):
        site_dir = out / "sites" / envelope.site_id
        assert sorted(p.name for p in site_dir.iterdir()) == ["envelope.json", "site.age"]
        assert (
            Envelope.from_dict(json.loads((site_dir / "envelope.json").read_bytes())["signed"])
            == envelope
        )

    mine = other_site.write_age_identity(tmp_path / "nine.key")
    [shared_id] = shared
    for volume in seven.volumes:
        if volume.kind != "data":
            continue
        run = subprocess.run(
            ["age", "-d", "-i", str(mine), str(out / volume.name)], capture_output=True
        )
        # plant-9 reads the shared content and nothing that only plant-7 is assigned.
        assert (run.returncode == 0) == (volume.series == shared_id)
    seven_only = subprocess.run(
        ["age", "-d", "-i", str(mine), str(out / "sites" / "plant-7" / "site.age")],
        capture_output=True,
    )
    assert seven_only.returncode != 0
    first = next(v for v in nine.volumes if v.kind == "data")
    detector_bytes = (out / first.name).stat().st_size
    assert detector_bytes > 1_000_000  # the shared model was written once, for both sites


def test_a_shared_export_refuses_one_site_and_format_1(big: HubContext, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="two or more different sites"):
        export_sites(big, ["plant-7", "plant-7"], tmp_path / "x")
    with pytest.raises(UsageError, match="format 1 cannot share"):
        export_sites(big, ["plant-7", "plant-9"], tmp_path / "x", media=MediaOptions(1))
    assert not (tmp_path / "x").exists()


def test_inspect_lists_the_contents_with_the_site_s_identity(
    big: HubContext, site: SiteKeys, tmp_path: Path
) -> None:
    out = tmp_path / "media"
    export(big, "plant-7", out, media=MediaOptions(volume_size=VOLUME))
    identity = site.write_age_identity(tmp_path / "site.key")
    runner = CliRunner()
    result = runner.invoke(
        main, ["bundle", "inspect", str(out), "--identity", str(identity), "--json"]
    )
    assert result.exit_code == 0, result.output
    contents = json.loads(result.output)["contents"]
    assert {(c["model"], c["version"], c["file"]) for c in contents} == {
        ("detector", "1", "model.onnx"),
        ("detector", "1", WEIGHTS_FILE),
    }
    assert all(c["carried"] for c in contents)
    other = tmp_path / "other.key"
    other.write_text(subprocess.run(["age-keygen"], capture_output=True, text=True).stdout)
    refused = runner.invoke(main, ["bundle", "inspect", str(out), "--identity", str(other)])
    assert refused.exit_code == 17, refused.output


def test_format_2_without_chunk_indexes_is_a_clear_usage_error(
    big: HubContext, tmp_path: Path
) -> None:
    plan = plan_export(big, "plant-7")
    with pytest.raises(UsageError, match="needs the chunk index of every blob"):
        write_bundle(
            tmp_path / "b",
            site_id=plan.site_id,
            sequence=plan.sequence,
            created=plan.created,
            expires=plan.expires,
            metadata=plan.metadata,
            blobs=plan.blobs,
            recipients=plan.recipients,
            signers=[],
            media=MediaOptions(),
        )
    assert not (tmp_path / "b").exists()
