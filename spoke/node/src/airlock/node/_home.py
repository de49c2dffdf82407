"""A node agent's home directory: configuration, node key, trusted roots, slots, state.

Layout::

    HOME/airlock.toml           role = "agent", node_id, [agent], optional [runtime]
    HOME/keys/node-signing.pem  the node's Ed25519 key, encrypted PKCS#8
    HOME/node-identity.json     public: what the site admin enrolls (NodeIdentity)
    HOME/bootstrap.json         the spoke's URL and trusted roots (after ``agent enroll``)
    HOME/metadata/              TUF metadata the node verified (the verifier's)
    HOME/slots/<model>/{A,B}/   A/B slots (airlock.node._slots)
    HOME/state.json             slots, report counter, refusals (atomic writes)
    HOME/agent-log.jsonl        installs, commits, fallbacks, refusals (no secrets)

``[agent]`` settings: ``poll_seconds`` (10), ``report_seconds`` (10),
``listen`` (``127.0.0.1:8760``), each overridable with ``AIRLOCK_AGENT_<KEY>``.
``[runtime]`` declares what the node offers, as on a spoke
(:mod:`airlock.node.runtime._runtime`). The key's passphrase comes from
``AIRLOCK_AGENT_PASSPHRASE`` or a prompt, through a secrets handler.

:meth:`AgentHome.ephemeral` is the simulator's variant: the key is an
in-memory signer and the state stays in memory (slots are still files).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from securesystemslib.signer import SecretsHandler, Signer

from airlock.bundles.atomic import atomic_write_json
from airlock.bundles.clock import Clock, SystemClock, utc_iso
from airlock.bundles.config import CONFIG_FILE, HomeConfig, load_config
from airlock.bundles.errors import ConflictError, NotFoundError, UsageError
from airlock.bundles.keys import ONLINE_KDF_ITERATIONS, generate_signer, load_encrypted_key
from airlock.bundles.keys import write_encrypted_key as _write_key
from airlock.bundles.models import check_name
from airlock.bundles.protocol import AgentBootstrap, NodeIdentity, Refusal
from airlock.node._slots import FamilySlots, SlotStore
from airlock.node.runtime._runtime import SiteRuntime, site_runtime

ROLE = "agent"
PASSPHRASE_ENV = "AIRLOCK_AGENT_PASSPHRASE"  # noqa: S105 - the variable name, not a secret
SIGNING_KEY_FILE = "keys/node-signing.pem"
IDENTITY_FILE = "node-identity.json"
BOOTSTRAP_FILE = "bootstrap.json"
STATE_FILE = "state.json"
LOG_FILE = "agent-log.jsonl"
DEFAULT_POLL_SECONDS = 10
DEFAULT_REPORT_SECONDS = 10
DEFAULT_LISTEN = "127.0.0.1:8760"
MAX_REFUSALS = 20

CONFIG_TEMPLATE = """role = "agent"
node_id = "{node_id}"

[agent]
poll_seconds = {poll}
report_seconds = {report}
listen = "{listen}"

# What this node offers, when detection is not what the models should be checked against:
# [runtime]
# memory_mb = 16384
# architecture = "aarch64"
# providers = ["CPUExecutionProvider"]
"""


@dataclass
class AgentState:
    """What the agent remembers between polls and restarts (``state.json``)."""

    counter: int = 0
    families: dict[str, FamilySlots] = field(default_factory=dict)
    refusals: dict[str, Refusal] = field(default_factory=dict)
    """``model@version`` (``*@*`` for metadata) → why it is not running."""

    def family(self, model: str) -> FamilySlots:
        """The slots of ``model`` (created empty on first use)."""
        if model not in self.families:
            self.families[model] = FamilySlots(model)
        return self.families[model]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "counter": self.counter,
            "families": {name: fam.to_dict() for name, fam in sorted(self.families.items())},
            "refusals": [r.to_dict() for r in self.refusals.values()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentState:
        """Parses :meth:`to_dict` output."""
        refusals = [Refusal.from_dict(r) for r in data.get("refusals") or []]
        return cls(
            counter=int(data.get("counter", 0)),
            families={
                str(name): FamilySlots.from_dict(fam)
                for name, fam in (data.get("families") or {}).items()
            },
            refusals={f"{r.model}@{r.version}": r for r in refusals[-MAX_REFUSALS:]},
        )


class AgentHome:
    """Paths, settings, key and state of one node agent."""

    def __init__(
        self,
        path: Path,
        secrets: SecretsHandler | None = None,
        *,
        _config: HomeConfig | None = None,
        _signer: Signer | None = None,
        _runtime: SiteRuntime | None = None,
        _clock: Clock | None = None,
    ) -> None:
        self.path = Path(path)
        self.secrets = secrets
        self.config = _config if _config is not None else load_config(self.path, ROLE)
        self.node_id = check_name("node id", str(self.config.get("node_id", "")))
        self._signer = _signer
        self._runtime = _runtime
        self._memory_state: AgentState | None = AgentState() if _signer is not None else None
        self._log_lock = threading.Lock()
        self.clock: Clock = _clock or SystemClock()

    @classmethod
    def create(cls, path: Path, node_id: str, passphrase: str) -> AgentHome:
        """Creates a new home: node key (encrypted), identity, configuration.

        Everything is written into a temporary directory first and renamed into
        place, so a failure leaves nothing behind.

        Raises:
            ConflictError: ``path`` exists and is not empty.
            SecretError: the passphrase is too short.
            UsageError: the node id is not a valid name.
        """
        path = Path(path)
        check_name("node id", node_id)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise ConflictError(
                f"{path} already exists and is not empty",
                hint="choose a new --home, or keep using the existing agent home",
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.init-", dir=path.parent))
        try:
            signer = generate_signer("ed25519")
            _write_key(staging / SIGNING_KEY_FILE, signer, passphrase, ONLINE_KDF_ITERATIONS)
            identity = NodeIdentity(node_id, signer.public_key)
            atomic_write_json(staging / IDENTITY_FILE, identity.to_dict())
            text = CONFIG_TEMPLATE.format(
                node_id=node_id,
                poll=DEFAULT_POLL_SECONDS,
                report=DEFAULT_REPORT_SECONDS,
                listen=DEFAULT_LISTEN,
            )
            (staging / CONFIG_FILE).write_text(text, encoding="utf-8")
            if path.exists():
                path.rmdir()
            staging.rename(path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return cls(path)

    @classmethod
    def ephemeral(
        cls,
        path: Path,
        node_id: str,
        signer: Signer,
        runtime: SiteRuntime | None = None,
        settings: Mapping[str, Any] | None = None,
        clock: Clock | None = None,
    ) -> AgentHome:
        """A home for a simulated node: key and state in memory, slots and metadata on disk."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        config = HomeConfig(path, ROLE, {"node_id": node_id, **dict(settings or {})})
        return cls(path, _config=config, _signer=signer, _runtime=runtime, _clock=clock)

    @property
    def is_ephemeral(self) -> bool:
        """Whether key and state live in memory only."""
        return self._memory_state is not None

    @property
    def poll_seconds(self) -> float:
        """Seconds between polls of the spoke."""
        return self._seconds("agent.poll_seconds", DEFAULT_POLL_SECONDS)

    @property
    def report_seconds(self) -> float:
        """Seconds between metrics reports."""
        return self._seconds("agent.report_seconds", DEFAULT_REPORT_SECONDS)

    def _seconds(self, key: str, default: float) -> float:
        value = self.config.get(key, default)
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = 0.0
        if seconds <= 0:
            raise UsageError(f"{key} must be a positive number of seconds, not {value!r}")
        return seconds

    @property
    def listen(self) -> tuple[str, int]:
        """Host and port of the predict endpoint (loopback by default)."""
        text = str(self.config.get("agent.listen", DEFAULT_LISTEN))
        host, _, port = text.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"agent.listen must be HOST:PORT, not {text!r}")
        return host.strip("[]"), int(port)

    @property
    def metadata_dir(self) -> Path:
        """Where the verifier keeps trusted TUF metadata."""
        return self.path / "metadata"

    @cached_property
    def slots(self) -> SlotStore:
        """The A/B slot store."""
        return SlotStore(self.path / "slots")

    def identity(self) -> NodeIdentity:
        """The node's public identity.

        Raises:
            NotFoundError: an ephemeral home without a key file (use its signer).
        """
        if self._signer is not None:
            return NodeIdentity(self.node_id, self._signer.public_key)
        try:
            data = json.loads((self.path / IDENTITY_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFoundError(
                f"{self.path / IDENTITY_FILE} is missing", hint="run `airlock agent init`"
            ) from None
        return NodeIdentity.from_dict(data)

    def signer(self) -> Signer:
        """The node's signing key (opened once with the passphrase).

        Raises:
            SecretError: no passphrase, or the wrong one.
        """
        if self._signer is None:
            self._signer = load_encrypted_key(
                self.path / SIGNING_KEY_FILE, self.identity().public_key, self.secrets
            )
        return self._signer

    def runtime(self) -> SiteRuntime:
        """What this node offers (detected, or declared in ``[runtime]``)."""
        if self._runtime is None:
            self._runtime = site_runtime(self.config)
        return self._runtime

    def bootstrap(self) -> AgentBootstrap:
        """The enrolment record.

        Raises:
            NotFoundError: the node was not enrolled yet.
        """
        try:
            data = json.loads((self.path / BOOTSTRAP_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFoundError(
                f"agent {self.node_id} is not enrolled (no {BOOTSTRAP_FILE})",
                hint="run `airlock agent enroll --bootstrap agent-bootstrap.json` first",
            ) from None
        return AgentBootstrap.from_dict(data)

    def save_bootstrap(self, bootstrap: AgentBootstrap) -> None:
        """Stores the enrolment record."""
        atomic_write_json(self.path / BOOTSTRAP_FILE, bootstrap.to_dict())

    def load_state(self) -> AgentState:
        """The persisted state (a fresh one when there is none)."""
        if self._memory_state is not None:
            return self._memory_state
        try:
            data = json.loads((self.path / STATE_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return AgentState()
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"{self.path / STATE_FILE} is damaged: {exc}",
                hint="restore it from a backup; slots on disk are kept",
            ) from None
        return AgentState.from_dict(data)

    def save_state(self, state: AgentState) -> None:
        """Persists ``state`` atomically (kept in memory for an ephemeral home)."""
        if self._memory_state is not None:
            self._memory_state = state
            return
        atomic_write_json(self.path / STATE_FILE, state.to_dict())

    def log(self, event: str, **fields: Any) -> None:
        """Appends one event to ``agent-log.jsonl`` (never pass secrets here)."""
        entry = {"time": utc_iso(self.clock.now()), "node_id": self.node_id, "event": event}
        entry.update(fields)
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self._log_lock, (self.path / LOG_FILE).open("a", encoding="utf-8") as handle:
            handle.write(line)

    def read_log(self, last: int = 20) -> list[dict[str, Any]]:
        """The last ``last`` events of the local log."""
        try:
            lines = (self.path / LOG_FILE).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines[-last:] if line.strip()]
