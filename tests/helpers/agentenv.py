"""The outside world of a node agent, for its unit tests: a spoke that hands out files, a
spoke that takes reports, and real iris models to install.

* :class:`LocalVerifier` plays the spoke plus the node's verification: it returns
  :class:`~airlock.node._verify.VerifiedAssignment` records (the real
  dataclasses, with the files' real SHA-256 and lengths) and copies the files
  on download. It can fail a refresh as a real verifier would (any AirlockError).
  End-to-end verification is covered with the real ``NodeVerifier`` elsewhere.
* :class:`RecordingSender` takes signed documents as the spoke's report
  endpoints would, and can be made unreachable.
* :func:`assignment` builds one version's assignment from files on disk.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import platform
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnxruntime
from securesystemslib.signer import CryptoSigner

from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import AirlockError, MediaError
from airlock.bundles.protocol import NodeModel, SignedDocument
from airlock.bundles.release import ReleaseInfo
from airlock.node import Agent, AgentHome, Predictor, Recorder, VerifiedAssignment, VerifiedFile
from airlock.node.runtime import SiteRuntime, max_supported_opset

AGENT_TIME = dt.datetime(2030, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
NODE_MEMORY_MB = 4096


def node_runtime(**changes: Any) -> SiteRuntime:
    """This machine's runtime as a node declares it (4 GiB of memory)."""
    fields: dict[str, Any] = {
        "onnxruntime": onnxruntime.__version__,
        "max_opset": max_supported_opset(),
        "providers": ("CPUExecutionProvider",),
        "architecture": platform.machine(),
        "memory_mb": NODE_MEMORY_MB,
    }
    fields.update(changes)
    return SiteRuntime(**fields)


def assignment(
    model: str,
    version: str,
    files: dict[str, tuple[Path, str]],
    release: ReleaseInfo | None = None,
    role: str = "stable",
    traffic: str = "all",
    split_percent: int | None = None,
) -> VerifiedAssignment:
    """One version's assignment: ``files`` maps file name → (path on disk, kind).

    The first file of kind ``model`` is the primary one.
    """
    verified = []
    primary_seen = False
    for filename, (path, kind) in files.items():
        data = path.read_bytes()
        primary = kind == "model" and not primary_seen
        primary_seen = primary_seen or primary
        verified.append(
            VerifiedFile(
                path=f"{model}/{version}/{hashlib.sha256(data).hexdigest()}.{filename}",
                filename=filename,
                sha256=hashlib.sha256(data).hexdigest(),
                length=len(data),
                kind=kind,
                primary=primary,
            )
        )
    node_model = NodeModel(model, version, role, traffic, split_percent)
    return VerifiedAssignment(node_model, tuple(verified), release or ReleaseInfo())


@dataclass
class LocalVerifier:
    """Returns the assignments it is given; downloads by copying (see the module docstring)."""

    sources: dict[str, Path] = field(default_factory=dict)
    assignments: list[VerifiedAssignment] = field(default_factory=list)
    failure: AirlockError | None = None
    last_verified: dt.datetime | None = None
    downloads: list[str] = field(default_factory=list)

    def assign(self, *items: tuple[VerifiedAssignment, dict[str, tuple[Path, str]]]) -> None:
        """Sets what the next refresh returns."""
        self.assignments = []
        for item, files in items:
            self.assignments.append(item)
            for file in item.files:
                self.sources[file.path] = files[file.filename][0]

    def refresh(self) -> list[VerifiedAssignment]:
        if self.failure is not None:
            raise self.failure
        self.last_verified = AGENT_TIME
        return list(self.assignments)

    def download(self, file: VerifiedFile, dest: Path) -> Path:
        self.downloads.append(file.path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.sources[file.path], dest)
        return dest


@dataclass
class RecordingSender:
    """The spoke's report endpoints: keeps every signed document posted."""

    posted: list[tuple[str, SignedDocument]] = field(default_factory=list)
    unreachable: bool = False

    def post_document(self, path: str, doc: SignedDocument) -> dict[str, Any]:
        if self.unreachable:
            raise MediaError("spoke unreachable at http://spoke.test (ConnectError)")
        self.posted.append((path, doc))
        return {"stored": 1}

    def documents(self, kind: str) -> list[dict[str, Any]]:
        """The ``signed`` parts of the documents of ``kind`` (``version-report``, ``metrics``)."""
        return [doc.signed for _, doc in self.posted if doc.signed.get("type") == kind]


@dataclass
class Node:
    """An agent on an ephemeral home, with its fake spoke."""

    agent: Agent
    verifier: LocalVerifier
    sender: RecordingSender
    signer: CryptoSigner
    clock: FixedClock


def make_node(
    tmp_path: Path,
    node_id: str = "node-1",
    runtime: SiteRuntime | None = None,
    predictor: Predictor | None = None,
) -> Node:
    """A fresh agent (ephemeral home under ``tmp_path``) with a local verifier and sender."""
    signer = CryptoSigner.generate_ed25519()
    clock = FixedClock(AGENT_TIME)
    home = AgentHome.ephemeral(
        tmp_path / node_id, node_id, signer, runtime or node_runtime(), clock=clock
    )
    verifier, sender = LocalVerifier(), RecordingSender()
    predictor = predictor or Predictor(Recorder(node_id, clock.now()))
    return Node(Agent(home, verifier, sender, clock, predictor), verifier, sender, signer, clock)
