"""The summary a security officer checks on screen after a ceremony (or reads as JSON).

:func:`ceremony_summary` derives everything from the files the ceremony wrote
(the record and the signed roots, hash-checked), so what the officer reads is
what will be shipped. :func:`render_summary` prints it with rich tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp

from airlock.bundles import ceremony_output
from airlock.bundles import tuf as tufrepo
from airlock.bundles.ceremony_output import ROOT_FILES, CeremonyRecord
from airlock.bundles.clock import utc_iso
from airlock.bundles.keys import KeyRef

TOP_LEVEL_ROLES = (Root.type, Targets.type, Snapshot.type, Timestamp.type)
CARRY_LABELS = {
    "hub": "to the hub",
    "every_spoke": "to every spoke",
    "officers_only": "never leaves the officers",
}
SCHEME_NAMES = {"ed25519": "ed25519", "ecdsa-sha2-nistp256": "ecdsa-p256"}


def fingerprint(keyid: str) -> str:
    """A key id's first 16 hex digits in groups of four, for reading aloud."""
    head = keyid[:16]
    return " ".join(head[i : i + 4] for i in range(0, len(head), 4))


def _key_entry(ref: KeyRef, kind: str) -> dict[str, Any]:
    scheme = str(ref.public_key.scheme)
    return {
        "name": ref.name,
        "kind": kind,
        "algorithm": SCHEME_NAMES.get(scheme, scheme),
        "keyid": ref.keyid,
        "fingerprint": fingerprint(ref.keyid),
        "uri": ref.uri,
    }


def ceremony_summary(record: CeremonyRecord) -> dict[str, Any]:
    """Returns the JSON-ready summary of a finished ceremony.

    Raises:
        NotFoundError: a metadata file is missing.
        IntegrityError: a metadata file does not match the record.
    """
    names = {
        ref.keyid: ref.name for ref in [*record.offline_keys.values(), *record.online_keys.values()]
    }
    roles: list[dict[str, Any]] = []

    def add(repository: str, role: str, threshold: int, keyids: Iterable[str]) -> None:
        keys = [names.get(kid, kid) for kid in keyids]
        roles.append({"repository": repository, "role": role, "threshold": threshold, "keys": keys})

    for repository in ROOT_FILES:
        root = Metadata[Root].from_bytes(record.read_root(repository)).signed
        for role_name in TOP_LEVEL_ROLES:
            add(
                repository, role_name, root.roles[role_name].threshold, root.roles[role_name].keyids
            )
        if repository == tufrepo.IMAGE:
            targets = Metadata[Targets].from_bytes(record.read_image_targets()).signed
            delegations = targets.delegations
            for delegated in (delegations.roles or {}).values() if delegations else ():
                paths = " ".join(delegated.paths or [])
                role_name = f"{delegated.name} (delegated by targets: {paths})"
                add(repository, role_name, delegated.threshold, delegated.keyids)
        else:
            envelope, threshold = tufrepo.envelope_keys(root)
            add(repository, "envelope (signs bundle envelopes)", threshold, envelope)
    metadata = [
        {"file": f"{repo}/{rec.version}.root.json", **rec.to_dict()}
        for repo, rec in record.roots.items()
    ]
    metadata.insert(
        1, {"file": ceremony_output.IMAGE_TARGETS_FILE, **record.image_targets.to_dict()}
    )
    return {
        "ceremony_id": record.ceremony_id,
        "created": utc_iso(record.created),
        "tool_version": record.tool_version,
        "algorithm": record.algorithm,
        "out_dir": str(record.out_dir),
        "keys": [_key_entry(ref, "offline") for ref in record.offline_keys.values()]
        + [_key_entry(ref, "online") for ref in record.online_keys.values()],
        "roles": roles,
        "metadata": metadata,
        "carry": {
            "hub": [
                tufrepo.IMAGE + "/",
                tufrepo.DIRECTOR + "/",
                ceremony_output.ONLINE_DIR + "/",
                ceremony_output.CEREMONY_FILE,
            ],
            "every_spoke": [ceremony_output.IMAGE_ROOT_FILE, ceremony_output.DIRECTOR_ROOT_FILE],
            "officers_only": [ceremony_output.OFFLINE_DIR + "/"],
        },
    }


def _grouped(hex_digest: str, bold_groups: int = 0, per_line: int = 8) -> str:
    """Hex in groups of four, ``per_line`` groups a line; the first ``bold_groups`` in bold."""
    groups = [escape(hex_digest[i : i + 4]) for i in range(0, len(hex_digest), 4)]
    if bold_groups:
        groups[0] = "[bold]" + groups[0]
        groups[bold_groups - 1] += "[/bold]"
    lines = [" ".join(groups[i : i + per_line]) for i in range(0, len(groups), per_line)]
    return "\n".join(lines)


def render_summary(summary: dict[str, Any], console: Console) -> None:
    """Prints a summary from :func:`ceremony_summary` as rich tables."""
    console.print(f"[bold green]Key ceremony complete[/]  id [bold]{summary['ceremony_id']}[/]")
    console.print(
        f"created {summary['created']} · algorithm {summary['algorithm']} · "
        f"airlock {summary['tool_version']}"
    )
    console.print(f"output: {escape(summary['out_dir'])}\n")

    for kind, title in (
        ("offline", "Offline keys (officers' passphrase; they never leave the officers)"),
        ("online", "Online keys (hub passphrase; they go to the hub)"),
    ):
        keys = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
        keys.add_column("name", no_wrap=True)
        keys.add_column("algorithm", no_wrap=True)
        keys.add_column("key id (fingerprint in bold)", no_wrap=True)
        for key in summary["keys"]:
            if key["kind"] == kind:
                keys.add_row(key["name"], key["algorithm"], _grouped(key["keyid"], bold_groups=4))
        console.print(keys)

    roles = Table(title="Roles and thresholds", box=box.SIMPLE_HEAD, title_justify="left")
    roles.add_column("repository", no_wrap=True)
    roles.add_column("role")
    roles.add_column("threshold", no_wrap=True)
    roles.add_column("keys")
    for role in summary["roles"]:
        count = len(role["keys"])
        roles.add_row(
            role["repository"],
            escape(role["role"]),
            f"{role['threshold']} of {count}",
            ", ".join(role["keys"]),
        )
    console.print(roles)

    files = Table(title="Signed metadata", box=box.SIMPLE_HEAD, title_justify="left")
    files.add_column("file", no_wrap=True)
    files.add_column("version", no_wrap=True)
    files.add_column("expires", no_wrap=True)
    files.add_column("sha256", no_wrap=True)
    for item in summary["metadata"]:
        files.add_row(
            item["file"],
            str(item["version"]),
            item["expires"],
            _grouped(item["sha256"], per_line=4),
        )
    console.print(files)

    console.print("[bold]Where the files go[/]")
    for destination, items in summary["carry"].items():
        label = CARRY_LABELS.get(destination, destination)
        console.print(f"  {label}: {escape(', '.join(items))}")
    console.print("  keep the whole directory offline as the officers' master copy")
