"""The Director root chain carried in envelope.json: shape, TUF's root-update rule, newest root.

Roots are made here with real keys and python-tuf's Metadata API, as a
ceremony would (2-of-3 root keys); nothing is mocked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Root

from airlock.bundles import tuf as tufrepo
from airlock.bundles.errors import MediaError, SignatureError, TrustError
from airlock.bundles.tuf import parse_root_chain, walk_root_chain

EXPIRES = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def _root(version: int, keys: list[CryptoSigner], signers: list[CryptoSigner]) -> Metadata[Root]:
    root = Root(version=version, expires=EXPIRES, consistent_snapshot=True)
    for key in keys:
        root.add_key(key.public_key, Root.type)
    root.roles[Root.type].threshold = 2
    md = Metadata(root)
    for index, signer in enumerate(signers):
        md.sign(signer, append=index > 0)
    return md


@pytest.fixture(scope="module")
def keys() -> list[CryptoSigner]:
    return [CryptoSigner.generate_ed25519() for _ in range(5)]


def _chain(*roots: Metadata[Root]) -> dict[str, Any]:
    return {tufrepo.DIRECTOR: [md.to_dict() for md in roots]}


def test_a_rotation_signed_by_both_thresholds_is_the_newest_root(keys: list[CryptoSigner]) -> None:
    v1 = _root(1, keys[:3], keys[:2])
    v2 = _root(2, [keys[1], keys[2], keys[3]], [keys[1], keys[2], keys[3]])  # key 0 out, 3 in
    v3 = _root(3, [keys[1], keys[2], keys[3]], [keys[2], keys[3]])
    chain = parse_root_chain(_chain(v1, v2, v3))
    assert walk_root_chain(v1.signed, chain).version == 3
    assert walk_root_chain(v2.signed, chain).version == 3  # versions up to the trusted skipped
    assert walk_root_chain(v3.signed, chain) is v3.signed
    assert walk_root_chain(v1.signed, parse_root_chain(None)) is v1.signed


@pytest.mark.parametrize(
    ("signed_by", "whose"),
    [
        pytest.param([0], "version 1", id="one-old-key"),
        pytest.param([3, 4], "version 1", id="new-keys-only"),
        pytest.param([0, 1], "its own", id="old-keys-only"),
    ],
)
def test_a_rotation_below_either_threshold_is_refused(
    keys: list[CryptoSigner], signed_by: list[int], whose: str
) -> None:
    v1 = _root(1, keys[:3], keys[:2])
    v2 = _root(2, [keys[2], keys[3], keys[4]], [keys[i] for i in signed_by])
    with pytest.raises(SignatureError, match=f"not signed by a threshold of the keys of {whose}"):
        walk_root_chain(v1.signed, parse_root_chain(_chain(v1, v2)))


def test_a_chain_that_skips_the_next_version_is_refused(keys: list[CryptoSigner]) -> None:
    v1 = _root(1, keys[:3], keys[:2])
    v3 = _root(3, keys[:3], keys[:2])
    with pytest.raises(TrustError, match="jump from version 1"):
        walk_root_chain(v1.signed, parse_root_chain(_chain(v3)))


@pytest.mark.parametrize(
    "value",
    [
        pytest.param([], id="not-an-object"),
        pytest.param({"image": []}, id="other-repository"),
        pytest.param({"director": {}}, id="not-a-list"),
        pytest.param({"director": ["x"]}, id="item-not-an-object"),
        pytest.param({"director": [{"signed": {"_type": "timestamp"}}]}, id="not-a-root"),
    ],
)
def test_a_malformed_roots_member_is_bad_media(value: Any) -> None:
    with pytest.raises(MediaError, match="roots"):
        parse_root_chain(value)


def test_roots_out_of_version_order_are_bad_media(keys: list[CryptoSigner]) -> None:
    v1 = _root(1, keys[:3], keys[:2])
    v2 = _root(2, keys[:3], keys[:2])
    with pytest.raises(MediaError, match="version order"):
        parse_root_chain(_chain(v2, v1))
