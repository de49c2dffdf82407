"""Contracts that cross a component boundary are defined once, in airlock.bundles, and
both sides use that one definition (design brief, "Components and layout")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner
from sqlalchemy import inspect

from airlock.bundles import ceremony_output
from airlock.bundles.errors import MediaError
from airlock.bundles.keys import KeyRef
from airlock.bundles.metrics import MetricsCell, MetricsRow
from airlock.ceremony.roots import ONLINE_KEY_NAMES
from airlock.hub.repos import _signing as signing
from airlock.hub.store import HubMetricsCell
from airlock.hub.store._home import CEREMONY_RECORD, ONLINE_KEYS_DIR
from airlock.spoke.site import MetricWindow


def _columns(table: type) -> dict[str, str]:
    return {c.name: repr(c.type) + str(c.nullable) for c in inspect(table).columns}


def test_both_metrics_tables_are_the_one_metrics_row() -> None:
    shared = set(MetricsRow.model_fields)
    for table in (HubMetricsCell, MetricWindow):
        assert issubclass(table, MetricsRow)
        columns = _columns(table)
        assert shared <= set(columns)
        assert {name: columns[name] for name in shared} == {
            name: _columns(MetricWindow)[name] for name in shared
        }
    # a cell as the site sends it fills a hub row, column for column
    assert shared <= set(MetricsCell.__dataclass_fields__)


def test_ceremony_and_hub_use_the_same_output_names() -> None:
    assert ONLINE_KEY_NAMES is ceremony_output.ONLINE_KEY_NAMES
    assert signing.ONLINE_KEY_NAMES is ceremony_output.ONLINE_KEY_NAMES
    assert CEREMONY_RECORD == ceremony_output.CEREMONY_FILE
    assert ONLINE_KEYS_DIR == ceremony_output.ONLINE_DIR


def test_the_hub_reads_the_online_keys_with_the_ceremonys_parser(tmp_path: Path) -> None:
    """What the ceremony writes for its online keys is what the hub reads back."""
    key = CryptoSigner.generate_ed25519().public_key
    refs = {
        name: KeyRef(name=name, uri=ceremony_output.online_key_path(name), public_key=key)
        for name in ceremony_output.ONLINE_KEY_NAMES
    }
    record = {"online_keys": {name: ref.to_dict() for name, ref in refs.items()}}
    path = tmp_path / ceremony_output.CEREMONY_FILE
    path.write_text(json.dumps(record))
    assert signing.read_online_refs(path) == refs == ceremony_output.online_key_refs(record)
    del record["online_keys"][ceremony_output.ENVELOPE]
    path.write_text(json.dumps(record))
    assert ceremony_output.missing_online_keys(ceremony_output.online_key_refs(record)) == [
        ceremony_output.ENVELOPE
    ]
    with pytest.raises(MediaError, match="lacks the online keys envelope"):
        signing.read_online_refs(path)
