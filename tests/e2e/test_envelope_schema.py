"""The signed envelope is read under a strict schema, even when the real envelope key signed it.

A holder of the hub's online envelope key can sign anything; what it signs
must still be exactly what the format allows: the known fields, each of its
JSON type (``"encrypted": "xxxx"`` is not true, ``"bundle_id": 7`` is not a
string), the ``source`` the writer puts for the kind, a sequence a 64-bit
database and every JSON reader hold (``1 … 2**53 − 1``), and the media fields
of its format (format 1: ``parts``; format 2: ``site_part``, ``series``,
``volumes``). Each case below is signed with the hub's real envelope key over
the genuine bundle, in both formats where it applies, and is refused as bad
media (exit 5) with a hint, audited, with nothing changed — never an
OverflowError or a traceback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.bundlecraft import envelope_signer, forge_bundle, resign_bundle_claims, resign_signed
from helpers.spokeenv import SITE_ID, RecordingSecrets, accept_import, cli_refuse_import
from helpers.spokeenv import refuse_import as refuse

from airlock.bundles.bundle import (
    ENVELOPE_FILE,
    parse_envelope_document,
    parse_signed_envelope,
    unverified_envelope,
)
from airlock.bundles.errors import MediaError, TrustError
from airlock.bundles.models import Envelope
from airlock.hub.context import HubContext
from airlock.hub.export import MediaOptions, export, plan_export
from airlock.spoke.site import SpokeHome

Edit = Callable[[dict[str, Any]], None]


def _set(field: str, value: Any) -> Edit:
    return lambda signed: signed.update({field: value})


def _set_in(key: str, field: str, value: Any) -> Edit:
    """Sets ``field`` of ``signed[key]`` (an object) or of its first item (a list)."""

    def edit(signed: dict[str, Any]) -> None:
        target = signed[key]
        (target[0] if isinstance(target, list) else target).update({field: value})

    return edit


def _size_a_string(key: str) -> Edit:
    def edit(signed: dict[str, Any]) -> None:
        target = signed[key]
        target = target[0] if isinstance(target, list) else target
        target["size"] = str(target["size"])

    return edit


SIGNED_BY_THE_ENVELOPE_KEY: dict[str, tuple[Edit, str]] = {
    "unknown-field": (_set("priority", "urgent"), "unknown field(s) 'priority'"),
    "encrypted-a-string": (_set("encrypted", "xxxx"), "encrypted must be true or false"),
    "encrypted-a-number": (_set("encrypted", 1), "encrypted must be true or false"),
    "bundle-id-a-number": (_set("bundle_id", 7), "bundle_id must be a string"),
    "site-id-a-list": (_set("site_id", [SITE_ID]), "site_id must be a string"),
    "sequence-a-string": (_set("sequence", "2"), "sequence must be an integer"),
    "sequence-a-boolean": (_set("sequence", True), "sequence must be an integer"),
    "sequence-2-63-minus-1": (_set("sequence", 2**63 - 1), "sequence 9223372036854775807"),
    "sequence-2-64": (_set("sequence", 2**64), "sequence 18446744073709551616"),
    "sequence-2-53": (_set("sequence", 2**53), "is outside 1…9007199254740991"),
    "format-version-a-boolean": (_set("format_version", True), "format_version must be an"),
    "source-not-the-hub": (_set("source", "site:plant-7"), "cannot come from 'site:plant-7'"),
    "kind-unknown": (_set("kind", "firmware"), "'firmware' is not a valid BundleKind"),
    "created-not-zero-padded": (_set("created", "2026-1-1T0:0:0Z"), "created must be a UTC"),
    "expires-with-an-offset": (
        _set("expires", "2099-01-01T00:00:00+00:00"),
        "expires must be a UTC time",
    ),
    "window-on-a-full-bundle": (
        _set("window", {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}),
        "only a metrics bundle, names a time window",
    ),
    "omitted-not-a-ref": (_set("omitted", ["../../etc"]), "omitted must be a list"),
}
"""Cases of every format."""

FORMAT_1_MEDIA: dict[str, tuple[Edit, str]] = {
    "part-unknown-field": (_set_in("parts", "mode", 420), "unknown field(s) 'mode'"),
    "part-size-a-string": (_size_a_string("parts"), "size must be an integer"),
    "part-size-a-boolean": (_set_in("parts", "size", True), "size must be an integer"),
    "volumes-in-format-1": (_set("volumes", []), "unknown field(s) 'volumes'"),
}
"""Format 1's payload parts."""

FORMAT_2_MEDIA: dict[str, tuple[Edit, str]] = {
    "site-part-unknown-field": (_set_in("site_part", "mode", 420), "unknown field(s) 'mode'"),
    "site-part-size-a-string": (_size_a_string("site_part"), "size must be an integer"),
    "site-part-size-a-boolean": (_set_in("site_part", "size", True), "size must be an integer"),
    "site-part-named-payload": (
        _set_in("site_part", "name", "payload.age"),
        "names its per-site part site.age",
    ),
    "encryption-cleared-names-unchanged": (
        _set("encrypted", False),
        "names its per-site part site.tar",
    ),
    "parts-in-format-2": (_set("parts", []), "unknown field(s) 'parts'"),
    "volume-unknown-field": (_set_in("volumes", "mode", 420), "unknown field(s) 'mode'"),
    "volume-size-a-string": (_size_a_string("volumes"), "size must be an integer"),
    "volume-size-negative": (_set_in("volumes", "size", -1), "size -1 is outside 0…"),
    "volume-number-past-its-count": (_set_in("volumes", "number", 2), "out of range"),
    "volume-kind-unknown": (_set_in("volumes", "kind", "index"), "invalid volume"),
    "data-volume-with-a-sha256": (
        _set_in("volumes", "sha256", "0" * 64),
        "a parity volume, and only a parity volume, has a SHA-256",
    ),
    "volumes-not-a-list": (_set("volumes", "all"), "volumes must be a list"),
    "volumes-missing": (_set("volumes", []), "not exactly those its series declare"),
    "series-unknown-field": (_set_in("series", "mode", 420), "unknown field(s) 'mode'"),
    "series-more-parity-than-data": (
        _set_in("series", "parity", 2),
        "at most as many parity as data volumes",
    ),
    "series-stripe-zero": (_set_in("series", "stripe", 0), "stripe"),
}
"""Format 2's per-site part, series and volumes."""

SCHEMA_CASES = [
    pytest.param(number, edit, message, id=f"format-{number}-{case}")
    for number, cases in ((1, FORMAT_1_MEDIA), (2, FORMAT_2_MEDIA))
    for case, (edit, message) in {**SIGNED_BY_THE_ENVELOPE_KEY, **cases}.items()
]


@pytest.mark.parametrize(
    ("bundle_format", "edit", "message"), SCHEMA_CASES, indirect=["bundle_format"]
)
def test_an_envelope_the_real_key_signed_outside_the_schema_is_refused(
    hub: HubContext,
    spoke: SpokeHome,
    secrets: RecordingSecrets,
    media: Path,
    bundle_format: MediaOptions,
    edit: Edit,
    message: str,
) -> None:
    export(hub, SITE_ID, media / "bundle", media=bundle_format)
    resign_signed(media / "bundle", [envelope_signer(hub)], edit)
    error = refuse(spoke, media / "bundle", MediaError, _escaped(message))
    assert "export it again" in error.hint or "not an Airlock bundle" in error.hint
    assert secrets.asked == [], "the site's identity was unlocked for a malformed envelope"


def _escaped(text: str) -> str:
    return re.escape(text)


@pytest.mark.parametrize("sequence", [2**63 - 1, 2**64])
def test_a_huge_sequence_signed_by_the_real_key_is_refused_cleanly_through_the_cli(
    hub: HubContext, spoke: SpokeHome, media: Path, bundle_format: MediaOptions, sequence: int
) -> None:
    """The 2**63 − 1 envelope used to import (and freeze the site); 2**64 crashed the import."""
    export(hub, SITE_ID, media / "bundle", media=bundle_format)
    resign_signed(media / "bundle", [envelope_signer(hub)], _set("sequence", sequence))
    proc = cli_refuse_import(spoke, media / "bundle", MediaError, f"sequence {sequence}")
    assert "OverflowError" not in proc.stderr
    # not frozen: the next bundle imports
    export(hub, SITE_ID, media / "next", full=True, media=bundle_format)
    accept_import(spoke, media / "next")


def test_the_largest_allowed_sequence_is_accepted(
    hub: HubContext, spoke: SpokeHome, media: Path, bundle_format: MediaOptions
) -> None:
    """A hub whose counter reached 2^53-1 (envelope and Director timestamp alike) is honoured."""
    plan = plan_export(hub, SITE_ID)
    largest = 2**53 - 1
    metadata = resign_bundle_claims(hub, plan.metadata, sequence=largest)
    bundle = media / "bundle"
    forge_bundle(hub, plan, bundle, media=bundle_format, metadata=metadata, sequence=largest)
    assert accept_import(spoke, media / "bundle").sequence == largest


# --- the document around the signed part --------------------------------------------------------


def _document(tmp_path: Path, hub: HubContext, edit: Callable[[dict[str, Any]], None]) -> bytes:
    export(hub, SITE_ID, tmp_path / "bundle")
    doc = json.loads((tmp_path / "bundle" / ENVELOPE_FILE).read_bytes())
    edit(doc)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(lambda d: d.update(comment="hi"), "unknown field(s) 'comment'", id="extra"),
        pytest.param(lambda d: d.update(roots=[]), "roots is not an object", id="roots-list"),
        pytest.param(
            lambda d: d["signatures"][0].update(other="x"), "unknown field(s)", id="signature-extra"
        ),
        pytest.param(
            lambda d: d["signatures"][0].update(sig=5), "must be strings", id="signature-type"
        ),
    ],
)
def test_an_envelope_document_with_unknown_parts_is_refused(
    hub: HubContext, tmp_path: Path, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    data = _document(tmp_path, hub, edit)
    with pytest.raises(MediaError, match=_escaped(message)) as caught:
        parse_signed_envelope(data)
    assert caught.value.hint


def test_duplicate_keys_and_nan_are_refused(hub: HubContext, tmp_path: Path) -> None:
    data = _document(tmp_path, hub, lambda d: d.pop("roots", None))  # its roots have "signed" too
    duplicated = data.replace(b'"signed": {', b'"signed": {"sequence": 1, ', 1)
    with pytest.raises(MediaError, match="duplicate key 'sequence'"):
        parse_signed_envelope(duplicated)
    with pytest.raises(MediaError, match="NaN is not a JSON number"):
        parse_signed_envelope(data.replace(b'"signed": {', b'"signed": {"x": NaN, ', 1))


def test_roots_are_returned_untouched_to_the_caller(hub: HubContext, tmp_path: Path) -> None:
    roots = {"director": [{"signed": {"version": 2}, "signatures": []}]}
    data = _document(tmp_path, hub, lambda d: d.update(roots=roots))
    assert parse_envelope_document(data).roots == roots
    assert unverified_envelope(data).site_id == SITE_ID


def test_the_writer_and_the_strict_reader_agree(
    hub: HubContext, media: Path, bundle_format: MediaOptions
) -> None:
    envelope = export(hub, SITE_ID, media / "bundle", media=bundle_format)
    assert envelope.format_version == bundle_format.format_version
    signed, _ = parse_signed_envelope((media / "bundle" / ENVELOPE_FILE).read_bytes())
    assert Envelope.from_dict(signed) == envelope


# --- the payload's metadata: every root from version 1 ------------------------------------------


@pytest.mark.parametrize("repository", ["image", "director"])
def test_a_payload_without_the_first_root_is_refused(
    hub: HubContext, spoke: SpokeHome, media: Path, bundle_format: MediaOptions, repository: str
) -> None:
    """Signed by the real envelope key; the site (trusting root 1) would not miss it otherwise."""
    plan = plan_export(hub, SITE_ID)
    first = f"metadata/{repository}/1.root.json"
    assert first in dict(plan.metadata)
    metadata = [(name, data) for name, data in plan.metadata if name != first]
    forge_bundle(hub, plan, media / "bundle", media=bundle_format, metadata=metadata)
    error = refuse(spoke, media / "bundle", TrustError, "does not carry every root from version 1")
    assert "it has: none" in error.message
