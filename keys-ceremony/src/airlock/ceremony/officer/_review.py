"""What an officer reads before signing: a summary of a signing request, and for a rotation the
difference from the current roots.

:func:`request_summary` derives everything from the request bytes the officer's
tool read (the same bytes it then signs); :func:`render_request` prints it.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from tuf.api.metadata import Root, Snapshot, Targets, Timestamp

from airlock.bundles import tuf as tufrepo
from airlock.bundles.clock import utc_iso
from airlock.ceremony.documents._request import SigningRequest
from airlock.ceremony.documents._summary import fingerprint

TOP_LEVEL_ROLES = (Root.type, Targets.type, Snapshot.type, Timestamp.type)


def _names(request: SigningRequest) -> dict[str, str]:
    names = {key.ref.keyid: f"{key.officer} ({key.role})" for key in request.keys}
    names.update({ref.keyid: f"hub online: {name}" for name, ref in request.online_keys.items()})
    return names


def _root_roles(root: Root, names: dict[str, str]) -> dict[str, dict[str, Any]]:
    def entry(keyids: list[str], threshold: int) -> dict[str, Any]:
        return {
            "threshold": threshold,
            "keys": [
                {"keyid": kid, "fingerprint": fingerprint(kid), "holder": names.get(kid, "")}
                for kid in keyids
            ],
        }

    roles = {
        role: entry(list(root.roles[role].keyids), root.roles[role].threshold)
        for role in TOP_LEVEL_ROLES
    }
    if tufrepo.ENVELOPE_FIELD in root.unrecognized_fields:
        keys, threshold = tufrepo.envelope_keys(root)
        roles["envelope"] = entry(sorted(keys), threshold)
    if tufrepo.LAYOUT_FIELD in root.unrecognized_fields:
        keys, threshold, expires = tufrepo.layout_keys(root)
        roles["in-toto layout"] = entry(sorted(keys), threshold) | {"expires": utc_iso(expires)}
    return roles


def _diff(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for role in new:
        before = {k["keyid"] for k in old.get(role, {}).get("keys", [])}
        after = {k["keyid"] for k in new[role]["keys"]}
        for kid in sorted(after - before):
            lines.append(f"{role}: + key {fingerprint(kid)}")
        for kid in sorted(before - after):
            lines.append(f"{role}: - key {fingerprint(kid)}")
        if role in old and old[role]["threshold"] != new[role]["threshold"]:
            lines.append(f"{role}: threshold {old[role]['threshold']} -> {new[role]['threshold']}")
    return lines


def request_summary(
    request: SigningRequest, request_sha256: str, tasks: list[dict[str, str]]
) -> dict[str, Any]:
    """The JSON-ready summary of a request (``tasks``: what this officer's keys will sign)."""
    names = _names(request)
    files: list[dict[str, Any]] = []
    for path in request.metadata:
        signed = request.signed(path)
        item: dict[str, Any] = {
            "file": path,
            "type": signed.type,
            "version": signed.version,
            "expires": utc_iso(signed.expires),
            "needs": [
                {"label": need.label, "threshold": need.threshold, "of": len(need.keys)}
                for need in request.requirements(path)
            ],
        }
        if isinstance(signed, Root):
            item["roles"] = _root_roles(signed, names)
            repository = path.split("/", 1)[0]
            previous = request.previous_root(repository)
            if previous is not None:
                old_roles = _root_roles(previous.signed, names)
                item["changes"] = [
                    f"version {previous.signed.version} -> {signed.version}",
                    f"expires {utc_iso(previous.signed.expires)} -> {utc_iso(signed.expires)}",
                    *_diff(old_roles, item["roles"]),
                ]
        else:
            assert isinstance(signed, Targets)
            delegations = signed.delegations
            item["delegations"] = [
                {"role": role.name, "paths": role.paths, "keys": role.keyids}
                for role in ((delegations.roles or {}).values() if delegations else ())
            ]
        files.append(item)
    return {
        "ceremony_id": request.ceremony_id,
        "kind": request.kind,
        "request_sha256": request_sha256,
        "plan_sha256": request.plan_sha256,
        "created": utc_iso(request.created),
        "location": request.plan.get("location", ""),
        "keys": [
            {
                "officer": key.officer,
                "role": key.role,
                "algorithm": key.algorithm,
                "storage": key.storage,
                "keyid": key.ref.keyid,
                "fingerprint": fingerprint(key.ref.keyid),
            }
            for key in request.keys
        ],
        "revoked": [{"keyid": kid, "fingerprint": fingerprint(kid)} for kid in request.revoked],
        "files": files,
        "you_sign": tasks,
    }


def render_request(summary: dict[str, Any], console: Console) -> None:
    """Prints :func:`request_summary` output for the officer to check."""
    console.print(
        f"[bold]Signing request[/] for ceremony [bold]{escape(summary['ceremony_id'])}[/] "
        f"({summary['kind']}), proposed {summary['created']} at {escape(summary['location'])}"
    )
    sha = summary["request_sha256"]
    console.print(f"request SHA-256  [bold]{' '.join(sha[i : i + 4] for i in range(0, 64, 4))}[/]")
    console.print(f"plan SHA-256     {summary['plan_sha256']}\n")
    keys = Table(title="Officers' keys", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("officer", "role", "algorithm", "storage", "fingerprint (key id starts)"):
        keys.add_column(column, no_wrap=True)
    for key in summary["keys"]:
        keys.add_row(
            key["officer"], key["role"], key["algorithm"], key["storage"], key["fingerprint"]
        )
    console.print(keys)
    if summary["revoked"]:
        console.print("[bold red]Revoked keys (leave every role):[/]")
        for item in summary["revoked"]:
            console.print(f"  [red]{item['fingerprint']}[/]  {item['keyid']}")
    for item in summary["files"]:
        console.print(
            f"\n[bold]{escape(item['file'])}[/]  {item['type']} v{item['version']}, "
            f"expires {item['expires']}"
        )
        for role, spec in item.get("roles", {}).items():
            extra = f", expires {spec['expires']}" if "expires" in spec else ""
            console.print(f"  {role}: {spec['threshold']} of {len(spec['keys'])}{extra}")
            for key in spec["keys"]:
                console.print(f"      {key['fingerprint']}  {escape(key['holder'])}")
        for delegation in item.get("delegations", []):
            console.print(
                f"  delegates {delegation['role']} for {' '.join(delegation['paths'])} "
                f"to {', '.join(fingerprint(k) for k in delegation['keys'])}"
            )
        for change in item.get("changes", []):
            console.print(f"  [yellow]change[/] {escape(change)}")
        for need in item["needs"]:
            console.print(f"  needs {need['threshold']} of {need['of']} {escape(need['label'])}")
    console.print("\n[bold]Your keys will sign:[/]")
    for task in summary["you_sign"]:
        console.print(f"  {task['file']}  with {task['role']} key {task['fingerprint']}")
