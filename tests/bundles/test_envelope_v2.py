"""The format-2 envelope: what it signs about the media, read strictly."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from airlock.bundles.errors import MediaError
from airlock.bundles.models import (
    BundleKind,
    Envelope,
    PayloadPart,
    SeriesRecord,
    VolumeRecord,
    volume_name,
)

SERIES = "0123456789abcdef"
CREATED = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _volume(kind: str, number: int, of: int, size: int = 1000) -> VolumeRecord:
    return VolumeRecord(
        name=volume_name(SERIES, kind, number, of, encrypted=True),
        series=SERIES,
        kind=kind,
        number=number,
        of=of,
        size=size,
        sha256="ab" * 32 if kind == "parity" else None,
    )


def _envelope(**changes: Any) -> dict[str, Any]:
    doc = Envelope(
        bundle_id="b-1",
        kind=BundleKind.FULL,
        source="hub",
        site_id="plant-7",
        sequence=3,
        created=CREATED,
        expires=CREATED + dt.timedelta(days=30),
        encrypted=True,
        parts=(),
        format_version=2,
        site_part=PayloadPart("site.age", 2048, "cd" * 32),
        series=(SeriesRecord(SERIES, data=2, parity=1, stripe=1 << 20),),
        volumes=(_volume("data", 1, 2), _volume("data", 2, 2, 500), _volume("parity", 1, 1)),
    ).to_dict()
    doc.update(changes)
    return doc


def test_a_format_2_envelope_round_trips() -> None:
    doc = _envelope()
    assert "parts" not in doc
    assert doc["volumes"][0]["name"] == f"{SERIES}-data-001-of-002.age"
    assert doc["volumes"][2]["name"] == f"{SERIES}-parity-001-of-001.zfec"
    envelope = Envelope.from_dict(doc)
    assert envelope.to_dict() == doc
    assert envelope.volumes[0].label == f"volume 1 of 2 ({SERIES}-data-001-of-002.age)"


def _volumes(*changes: tuple[int, str, Any]) -> list[dict[str, Any]]:
    volumes = _envelope()["volumes"]
    for index, key, value in changes:
        if value is None:
            del volumes[index][key]
        else:
            volumes[index][key] = value
    return volumes


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format_version": 3}, "unsupported bundle format version 3"),
        ({"parts": [{"name": "payload.age", "size": 1, "sha256": "ab" * 32}]}, "unknown field"),
        ({"kind": "metrics", "source": "site:plant-7"}, "not payload parts"),
        ({"site_part": {"name": "site.tar", "size": 1, "sha256": "ab" * 32}}, "site.age"),
        ({"volumes": _volumes()[:2]}, "not exactly those its series declare"),
        ({"volumes": _volumes((1, "name", f"{SERIES}-data-003-of-002.age"))}, "does not say"),
        ({"volumes": _volumes((0, "number", 2))}, "does not say"),
        ({"volumes": _volumes((2, "sha256", None))}, "only a parity volume"),
        ({"volumes": _volumes((0, "sha256", "ab" * 32))}, "only a parity volume"),
        ({"volumes": _volumes((2, "size", 999))}, "as long as the longest"),
        ({"volumes": _volumes((0, "size", True))}, "size must be an"),
        ({"series": [{"id": SERIES, "data": 1, "parity": 2, "stripe": 1 << 20}]}, "at most as"),
        ({"series": [{"id": "XYZ", "data": 2, "parity": 1, "stripe": 1 << 20}]}, "series id"),
        ({"series": []}, "not exactly those"),
        ({"encrypted": False}, "site.tar"),
    ],
)
def test_a_malformed_format_2_envelope_is_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(MediaError, match=message):
        Envelope.from_dict(_envelope(**changes))


def test_a_revocation_bundle_may_carry_no_volumes() -> None:
    doc = _envelope(kind="revocation", series=[], volumes=[])
    assert Envelope.from_dict(doc).volumes == ()


def test_format_1_is_still_read_and_lists_no_volumes() -> None:
    doc = _envelope(format_version=1)
    for key in ("site_part", "series", "volumes"):
        del doc[key]
    doc["parts"] = [{"name": "payload.age", "size": 10, "sha256": "ab" * 32}]
    assert Envelope.from_dict(doc).parts[0].name == "payload.age"
    doc["parts"] = [{"name": "site.age", "size": 10, "sha256": "ab" * 32}]
    with pytest.raises(MediaError, match="payload part is named payload"):
        Envelope.from_dict(doc)
