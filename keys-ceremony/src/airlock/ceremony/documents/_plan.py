"""The ceremony plan: a TOML file every participant holds an identical copy of.

The plan names the ceremony, its location, until when it may run, a random
nonce, the officers and witnesses, and for each role (Image root, Image
targets, Director root, in-toto layout) the officers who hold a key, the
threshold, the key algorithm and the lifetime of what they sign::

    ceremony_id = "2026-11-root-keys"
    location = "HQ, secure room B"
    created = 2026-11-23T09:00:00Z      # optional: when the plan was written
    valid_until = 2026-12-07T00:00:00Z
    nonce = "9f2c…"                     # 32 random bytes, hex

    [[officers]]
    name = "alice"
    full_name = "Alice Martin"

    [[witnesses]]
    name = "wendy"
    full_name = "Wendy Ortiz"

    [roles.image-root]
    officers = ["alice", "bob", "carol"]
    threshold = 2
    algorithm = "ed25519"
    expiry_days = 365

Every artifact of the ceremony (key offers, the signing request, signature
files, the transcript) names the plan by the SHA-256 of its bytes, so a key or
a signature made for one plan can never be counted in another.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airlock.bundles.ceremony_output import sha256_hex
from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import FreshnessError, MissingFileError, UsageError

IMAGE_ROOT = "image-root"
IMAGE_TARGETS = "image-targets"
DIRECTOR_ROOT = "director-root"
LAYOUT = "layout"
ROLES = (IMAGE_ROOT, IMAGE_TARGETS, DIRECTOR_ROOT, LAYOUT)
"""The offline roles a ceremony makes keys for, in the order they are shown."""

ROLE_TITLES = {
    IMAGE_ROOT: "Image root",
    IMAGE_TARGETS: "Image targets",
    DIRECTOR_ROOT: "Director root",
    LAYOUT: "in-toto layout",
}
PLAN_ALGORITHMS = ("ed25519", "ecdsa-p256", "ecdsa-p384")
"""Key algorithms a plan may ask for (P-384 keys can only live on an HSM)."""

NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
CEREMONY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NONCE = re.compile(r"[0-9a-f]{32,128}")
MAX_EXPIRY_DAYS = 3650
DEFAULT_VALID_DAYS = 14


@dataclass(frozen=True)
class RolePlan:
    """One role: who holds a key, how many must sign, which algorithm, how long it lasts."""

    officers: tuple[str, ...]
    threshold: int
    algorithm: str
    expiry_days: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "officers": list(self.officers),
            "threshold": self.threshold,
            "algorithm": self.algorithm,
            "expiry_days": self.expiry_days,
        }


DEFAULT_ROLES = {
    IMAGE_ROOT: (3, 2, 365),
    IMAGE_TARGETS: (2, 1, 180),
    DIRECTOR_ROOT: (3, 2, 365),
    LAYOUT: (2, 1, 365),
}
"""Per role: officers (the first N of the plan), threshold, lifetime in days."""


@dataclass(frozen=True)
class Person:
    """An officer or a witness."""

    name: str
    full_name: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {"name": self.name, "full_name": self.full_name}


@dataclass(frozen=True)
class CeremonyPlan:
    """A parsed, validated plan, with the SHA-256 of the file it came from."""

    ceremony_id: str
    location: str
    valid_until: dt.datetime
    nonce: str
    officers: tuple[Person, ...]
    witnesses: tuple[Person, ...]
    roles: Mapping[str, RolePlan]
    sha256: str
    created: dt.datetime | None = None

    def officer_names(self) -> list[str]:
        """The officers' names, in plan order."""
        return [person.name for person in self.officers]

    def roles_of(self, officer: str) -> list[str]:
        """The roles ``officer`` holds a key for, in :data:`ROLES` order."""
        return [role for role in ROLES if officer in self.roles[role].officers]

    def check_officer(self, officer: str) -> None:
        """Raises UsageError unless ``officer`` is an officer of this plan."""
        if officer not in self.officer_names():
            raise UsageError(
                f"{officer!r} is not an officer of ceremony {self.ceremony_id}",
                hint=f"the plan's officers are: {', '.join(self.officer_names())}",
            )

    def check_valid(self, now: dt.datetime) -> None:
        """Refuses to run any step of an expired plan.

        Raises:
            FreshnessError: ``now`` is after ``valid_until``.
        """
        if now > self.valid_until:
            raise FreshnessError(
                f"the plan of ceremony {self.ceremony_id} expired at {utc_iso(self.valid_until)}",
                hint="write a new plan (`airlock ceremony plan new`) and start the ceremony "
                "again; keys and signatures made for the old plan cannot be reused in it",
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for requests and the transcript)."""
        return {
            "ceremony_id": self.ceremony_id,
            "location": self.location,
            "valid_until": utc_iso(self.valid_until),
            "nonce": self.nonce,
            "officers": [p.to_dict() for p in self.officers],
            "witnesses": [p.to_dict() for p in self.witnesses],
            "roles": {role: self.roles[role].to_dict() for role in ROLES},
            "sha256": self.sha256,
            "created": utc_iso(self.created) if self.created else None,
        }


def load_plan(path: Path) -> CeremonyPlan:
    """Reads and validates a plan file.

    Raises:
        NotFoundError: no such file.
        UsageError: not TOML, or the plan is inconsistent (see :func:`parse_plan`).
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise MissingFileError(
            f"no ceremony plan at {path}",
            hint="write one with `airlock ceremony plan new`, or copy the coordinator's plan",
        ) from None
    return parse_plan(data, str(path))


def parse_plan(data: bytes, source: str = "the plan") -> CeremonyPlan:
    """Parses and validates plan bytes.

    Raises:
        UsageError: not TOML, a field is missing or wrong, or the roles are inconsistent.
    """
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{source} is not a valid TOML file ({exc})") from None
    try:
        plan = _plan_from(doc, sha256_hex(data))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UsageError(
            f"{source} is not a valid ceremony plan ({type(exc).__name__}: {exc})",
            hint="compare it with the template of `airlock ceremony plan new`",
        ) from None
    _check_plan(plan, source)
    return plan


def _person(item: Mapping[str, Any]) -> Person:
    return Person(name=str(item["name"]), full_name=str(item.get("full_name", "")))


def _plan_from(doc: Mapping[str, Any], sha256: str) -> CeremonyPlan:
    valid_until = doc["valid_until"]
    created = doc.get("created")
    for name, value in (("valid_until", valid_until), ("created", created)):
        if value is not None and (not isinstance(value, dt.datetime) or value.tzinfo is None):
            raise ValueError(f"{name} must be a TOML date-time with a time zone (…Z)")
    roles = {}
    for role in ROLES:
        spec = doc["roles"][role]
        roles[role] = RolePlan(
            officers=tuple(str(name) for name in spec["officers"]),
            threshold=int(spec["threshold"]),
            algorithm=str(spec["algorithm"]),
            expiry_days=int(spec["expiry_days"]),
        )
    unknown = set(doc["roles"]) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    return CeremonyPlan(
        ceremony_id=str(doc["ceremony_id"]),
        location=str(doc["location"]),
        valid_until=valid_until.astimezone(dt.UTC),
        nonce=str(doc["nonce"]),
        officers=tuple(_person(item) for item in doc["officers"]),
        witnesses=tuple(_person(item) for item in doc.get("witnesses", [])),
        roles=roles,
        sha256=sha256,
        created=created.astimezone(dt.UTC) if created is not None else None,
    )


def _check_plan(plan: CeremonyPlan, source: str) -> None:
    def bad(problem: str, hint: str) -> UsageError:
        return UsageError(f"{source}: {problem}", hint=hint)

    if not CEREMONY_ID.fullmatch(plan.ceremony_id):
        raise bad(
            f"ceremony_id {plan.ceremony_id!r} is not a valid id",
            "use letters, digits, '.', '_' or '-' (at most 64)",
        )
    if not NONCE.fullmatch(plan.nonce):
        raise bad("nonce must be 32 to 128 lower-case hex digits", "use `plan new` to make one")
    if not plan.location.strip():
        raise bad("location is empty", "say where the ceremony takes place")
    people = [*plan.officer_names(), *(p.name for p in plan.witnesses)]
    for name in people:
        if not NAME.fullmatch(name):
            raise bad(
                f"participant name {name!r} is not valid",
                "use lower-case letters, digits and '-', starting with a letter",
            )
    if len(set(people)) != len(people):
        raise bad(
            "a name appears twice among officers and witnesses",
            "a witness cannot also be an officer; give every person one entry",
        )
    if not plan.officers:
        raise bad("the plan names no officers", "add [[officers]] entries")
    for role, spec in plan.roles.items():
        strangers = [o for o in spec.officers if o not in plan.officer_names()]
        if strangers:
            raise bad(
                f"role {role} lists {', '.join(strangers)}, who are not officers",
                "add them as [[officers]] or remove them from the role",
            )
        if len(set(spec.officers)) != len(spec.officers) or not spec.officers:
            raise bad(f"role {role} must list each officer once", "fix roles.{role}.officers")
        if not 1 <= spec.threshold <= len(spec.officers):
            raise bad(
                f"role {role} has threshold {spec.threshold} with {len(spec.officers)} officers",
                "the threshold must be between 1 and the number of the role's officers",
            )
        if spec.algorithm not in PLAN_ALGORITHMS:
            raise bad(
                f"role {role} asks for algorithm {spec.algorithm!r}",
                f"use one of: {', '.join(PLAN_ALGORITHMS)}",
            )
        if not 1 <= spec.expiry_days <= MAX_EXPIRY_DAYS:
            raise bad(
                f"role {role} has expiry_days {spec.expiry_days}",
                f"use 1 to {MAX_EXPIRY_DAYS} days",
            )
    idle = [o for o in plan.officer_names() if not plan.roles_of(o)]
    if idle:
        raise bad(f"officers {', '.join(idle)} hold no role", "give them a role or remove them")


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def new_plan_text(
    ceremony_id: str,
    location: str,
    officers: Sequence[str],
    witnesses: Sequence[str],
    now: dt.datetime,
    valid_days: int = DEFAULT_VALID_DAYS,
) -> str:
    """A plan with the default roles (roots 2-of-3, 365 days; targets 1-of-2, 180 days).

    Roles go to the first officers in order; edit the file to change them.

    Raises:
        UsageError: the result would not be a valid plan (too few officers, bad names).
    """
    needed = max(count for count, _t, _d in DEFAULT_ROLES.values())
    if len(officers) < needed:
        raise UsageError(
            f"the default plan needs at least {needed} officers (got {len(officers)})",
            hint="pass --officer NAME once per officer",
        )
    valid_until = (now + dt.timedelta(days=valid_days)).astimezone(dt.UTC)
    lines = [
        "# Airlock key ceremony plan. Every participant needs an identical copy:",
        "# every file of the ceremony names this plan by its SHA-256.",
        f"ceremony_id = {_toml_string(ceremony_id)}",
        f"location = {_toml_string(location)}",
        f"created = {now.astimezone(dt.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}",
        f"valid_until = {valid_until.strftime('%Y-%m-%dT%H:%M:%SZ')}",
        f'nonce = "{secrets.token_hex(32)}"',
        "",
    ]
    for name in officers:
        lines += ["[[officers]]", f"name = {_toml_string(name)}", 'full_name = ""', ""]
    for name in witnesses:
        lines += ["[[witnesses]]", f"name = {_toml_string(name)}", 'full_name = ""', ""]
    for role in ROLES:
        count, threshold, days = DEFAULT_ROLES[role]
        holders = ", ".join(_toml_string(name) for name in officers[:count])
        lines += [
            f"[roles.{role}]",
            f"officers = [{holders}]",
            f"threshold = {threshold}",
            'algorithm = "ed25519"',
            f"expiry_days = {days}",
            "",
        ]
    text = "\n".join(lines)
    parse_plan(text.encode("utf-8"), "the new plan")
    return text
