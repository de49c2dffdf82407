"""`airlock bundle inspect`: what the envelope says and what the media hold, with no key."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from securesystemslib.signer import CryptoSigner

from airlock.bundles.bundle import inspect_bundle, locate_bundle, sign_envelope
from airlock.bundles.cli import main
from airlock.bundles.errors import MediaError, UsageError
from airlock.bundles.models import (
    BundleKind,
    Envelope,
    PayloadPart,
    SeriesRecord,
    VolumeRecord,
    volume_name,
)

SERIES = "00112233445566aa"
CREATED = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
SIGNER = CryptoSigner.generate_ed25519()


def _envelope(site_id: str = "plant-7", data: int = 3, parity: int = 1) -> Envelope:
    volumes = [
        VolumeRecord(volume_name(SERIES, "data", n, data, True), SERIES, "data", n, data, 100 + n)
        for n in range(1, data + 1)
    ] + [
        VolumeRecord(
            volume_name(SERIES, "parity", n, parity, True),
            SERIES,
            "parity",
            n,
            parity,
            100 + data,
            "ab" * 32,
        )
        for n in range(1, parity + 1)
    ]
    return Envelope(
        bundle_id="bundle-1",
        kind=BundleKind.FULL,
        source="hub",
        site_id=site_id,
        sequence=4,
        created=CREATED,
        expires=CREATED + dt.timedelta(days=30),
        encrypted=True,
        parts=(),
        format_version=2,
        site_part=PayloadPart("site.age", 64, "cd" * 32),
        series=(SeriesRecord(SERIES, data, parity, 1 << 20),),
        volumes=tuple(volumes),
    )


def _medium(directory: Path, envelope: Envelope, *volumes: int, small: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if small:
        (directory / "envelope.json").write_bytes(sign_envelope(envelope, [SIGNER]))
        (directory / "site.age").write_bytes(bytes(64))
    for number in volumes:
        record = envelope.volumes[number - 1]
        (directory / record.name).write_bytes(bytes(record.size))
    return directory


def test_media_in_any_order_are_described_volume_by_volume(tmp_path: Path) -> None:
    envelope = _envelope()
    second = _medium(tmp_path / "dvd2", envelope, 3, 4)
    first = _medium(tmp_path / "dvd1", envelope, 1, small=True)
    report = inspect_bundle([second, first], CREATED + dt.timedelta(days=1))
    assert (report["site_id"], report["sequence"], report["kind"]) == ("plant-7", 4, "full")
    assert report["expired"] is False and report["verified"] is False
    assert report["signed_by"] == [SIGNER.public_key.keyid]
    assert report["site_part"]["state"] == "present"
    states = {
        v["number"] if v["kind"] == "data" else -v["number"]: v["state"] for v in report["volumes"]
    }
    assert states == {1: "present", 2: "missing", 3: "present", -1: "present"}
    [series] = report["series"]
    assert series["rebuildable"] and not series["complete"] and series["needed"] == 0
    assert series["lost_data"] == [f"volume 2 of 3 ({SERIES}-data-002-of-003.age)"]


def test_too_few_volumes_and_a_wrong_size_are_named(tmp_path: Path) -> None:
    envelope = _envelope()
    medium = _medium(tmp_path / "m", envelope, 1, small=True)
    (medium / envelope.volumes[0].name).write_bytes(b"short")
    report = inspect_bundle([medium], CREATED + dt.timedelta(days=31))
    assert report["expired"] is True
    assert report["volumes"][0]["state"] == "wrong size"
    [series] = report["series"]
    assert not series["rebuildable"] and series["needed"] == 3


def test_ambiguous_media_are_refused_by_name(tmp_path: Path) -> None:
    envelope = _envelope()
    one = _medium(tmp_path / "one", envelope, 1, small=True)
    two = _medium(tmp_path / "two", envelope, 1)
    with pytest.raises(MediaError, match=r"volume 1 of 3 .* is in more than one directory"):
        locate_bundle([one, two])
    other = _medium(tmp_path / "other", _envelope(data=2), small=True)
    with pytest.raises(UsageError, match="several sites or bundles"):
        locate_bundle([one, other])
    with pytest.raises(MediaError, match="different envelopes for this site"):
        locate_bundle([one, other], site_id="plant-7")
    with pytest.raises(MediaError, match=r"no envelope\.json"):
        locate_bundle([tmp_path / "one" / ".." / "two"])


def test_media_for_several_sites_are_read_per_site(tmp_path: Path) -> None:
    medium = tmp_path / "courier"
    for site in ("plant-7", "plant-9"):
        _medium(medium / "sites" / site, _envelope(site), small=True)
    _medium(medium, _envelope(), 1, 2, 3)
    with pytest.raises(UsageError, match="several sites"):
        locate_bundle([medium])
    located = locate_bundle([medium], site_id="plant-9")
    assert located.envelope.site_id == "plant-9"
    assert located.site_part == medium / "sites" / "plant-9" / "site.age"
    assert [v.state for v in located.volumes] == ["present", "present", "present", "missing"]


def test_the_command_prints_json_and_a_table(tmp_path: Path) -> None:
    envelope = _envelope()
    medium = _medium(tmp_path / "m", envelope, 1, 2, 4, small=True)
    runner = CliRunner()
    result = runner.invoke(main, ["bundle", "inspect", str(medium), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["volumes"][2]["state"] == "missing"
    result = runner.invoke(main, ["bundle", "inspect", str(medium)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # rich wraps at the terminal's width
    assert "can be rebuilt from parity" in text
    assert "Nothing is verified here" in text
