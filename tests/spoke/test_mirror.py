"""The spoke's Image mirror serves exactly the hub-signed files the spoke trusts and stages."""

from __future__ import annotations

import datetime as dt
import json

from sqlmodel import Session, select

from airlock.bundles.db import session_scope
from airlock.bundles.tuf import IMAGE
from airlock.spoke.service import image_metadata, image_target
from airlock.spoke.site import RevokedVersion, SpokeHome, StagedModel, TrustedMetadataFile


def _trusted(home: SpokeHome) -> dict[str, bytes]:
    with Session(home.engine) as session:
        rows = session.exec(
            select(TrustedMetadataFile).where(TrustedMetadataFile.repository == IMAGE)
        )
        return {row.name: bytes(row.data) for row in rows}


def _version(data: bytes) -> int:
    return int(json.loads(data)["signed"]["version"])


def _iris_file(home: SpokeHome, version: str) -> dict[str, str]:
    with Session(home.engine) as session:
        staged = session.get(StagedModel, ("iris", version))
        assert staged is not None
        entry: dict[str, str] = json.loads(staged.files)[0]
        return entry


def test_metadata_by_name_and_version(fleet_spoke: SpokeHome) -> None:
    trusted = _trusted(fleet_spoke)
    with Session(fleet_spoke.engine) as session:
        assert image_metadata(session, "1.root.json") == trusted["root_history/1.root.json"]
        assert image_metadata(session, "timestamp.json") == trusted["timestamp.json"]
        for role in ("snapshot", "targets", "models"):
            data = trusted[f"{role}.json"]
            version = _version(data)
            assert image_metadata(session, f"{version}.{role}.json") == data
            assert image_metadata(session, f"{version + 1}.{role}.json") is None
            if version > 1:
                assert image_metadata(session, f"{version - 1}.{role}.json") is None
        newest_root = _version(trusted["root.json"])
        assert image_metadata(session, f"{newest_root + 1}.root.json") is None


def test_metadata_refuses_other_names(fleet_spoke: SpokeHome) -> None:
    with Session(fleet_spoke.engine) as session:
        for name in (
            "root.json",
            "snapshot.json",
            "1.timestamp.json",
            "root_history/1.root.json",
            "../spoke.db",
            "0.root.json",
            "1.root_history%2F1.root.json",
            "",
        ):
            assert image_metadata(session, name) is None, name


def test_target_of_staged_version(fleet_spoke: SpokeHome) -> None:
    entry = _iris_file(fleet_spoke, "1")
    url_path = f"iris/1/{entry['sha256']}.{entry['filename']}"
    with Session(fleet_spoke.engine) as session:
        path = image_target(fleet_spoke, session, url_path)
        assert path == fleet_spoke.blob_dir / entry["sha256"]
        assert path is not None and path.is_file()
        # a version that is not staged, a wrong hash, a wrong name, no hash, a bad path
        assert image_target(fleet_spoke, session, f"iris/9/{entry['sha256']}.x") is None
        assert image_target(fleet_spoke, session, f"iris/1/{'0' * 64}.{entry['filename']}") is None
        assert image_target(fleet_spoke, session, f"iris/1/{entry['sha256']}.other.onnx") is None
        assert image_target(fleet_spoke, session, f"iris/1/{entry['filename']}") is None
        assert image_target(fleet_spoke, session, f"../1/{entry['sha256']}.x") is None


def test_revoked_or_missing_blob_not_served(fleet_spoke: SpokeHome) -> None:
    entry = _iris_file(fleet_spoke, "2")
    url_path = f"iris/2/{entry['sha256']}.{entry['filename']}"
    with session_scope(fleet_spoke.engine) as session:
        session.add(
            RevokedVersion(
                model="iris",
                version="2",
                reason="test",
                revoked_at=dt.datetime.now(dt.UTC).isoformat(),
            )
        )
    with Session(fleet_spoke.engine) as session:
        assert image_target(fleet_spoke, session, url_path) is None
    entry3 = _iris_file(fleet_spoke, "3")
    (fleet_spoke.blob_dir / entry3["sha256"]).unlink()
    with Session(fleet_spoke.engine) as session:
        assert image_target(fleet_spoke, session, f"iris/3/{entry3['sha256']}.x") is None
        path = f"iris/3/{entry3['sha256']}.{entry3['filename']}"
        assert image_target(fleet_spoke, session, path) is None
