"""The site's attestation policy: when a model version must carry verified in-toto attestations.

A version must be attested (carry ``root.layout`` and its links, which
:func:`airlock.spoke.importing._attestations.check_import` verifies) when either

* the site requires attestations for every version::

      [policy]
      require_attestations = true        # env AIRLOCK_POLICY_REQUIRE_ATTESTATIONS

* or the site holds a signed in-toto layout: a staged version carries one
  (verified against the layout keys of the trusted Image root when it was
  staged), or the bundle being imported carries one (verified in the same
  import, or the import is refused). The hub's single layout governs every
  model family it releases, so from then on every family is covered: an
  attacker holding only the hub's online keys cannot strip a version's
  layout and links and swap its model. Staged versions are never removed, so a
  site that has seen a layout keeps requiring attestations.

The only way out is explicit, named as the dangerous opt-out it is, and shown
by ``airlock spoke status``::

      [policy]
      unsafe_allow_unattested = ["family", ...]   # or true: every family
      # env AIRLOCK_POLICY_UNSAFE_ALLOW_UNATTESTED="family,other" (or "true")

``require_attestations = true`` wins over the opt-out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from airlock.bundles.errors import UsageError
from airlock.bundles.tuf import VerifiedTarget
from airlock.spoke.site._home import SpokeHome
from airlock.spoke.site._tables import StagedModel

REQUIRE_SETTING = "policy.require_attestations"
UNSAFE_SETTING = "policy.unsafe_allow_unattested"
ALL_FAMILIES = "all"
"""How :meth:`AttestationPolicy.to_dict` shows ``unsafe_allow_unattested = true``."""


@dataclass(frozen=True)
class AttestationPolicy:
    """What the site's configuration says about attestations."""

    required: bool
    """``require_attestations``: every version must be attested."""
    unsafe_all: bool
    """``unsafe_allow_unattested = true``: no family needs attestations."""
    unsafe_families: tuple[str, ...]
    """The families ``unsafe_allow_unattested`` lists."""

    def allows_unattested(self, family: str) -> bool:
        """Whether the site explicitly lets ``family`` go without attestations."""
        return not self.required and (self.unsafe_all or family in self.unsafe_families)

    @property
    def has_exception(self) -> bool:
        """Whether any family is exempted (shown as a warning by ``spoke status``)."""
        return not self.required and (self.unsafe_all or bool(self.unsafe_families))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``unsafe_allow_unattested`` is ``"all"`` or a list of families)."""
        unsafe: str | list[str] = []
        if self.has_exception:
            unsafe = ALL_FAMILIES if self.unsafe_all else list(self.unsafe_families)
        return {"require_attestations": self.required, "unsafe_allow_unattested": unsafe}


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes"}:
        return True
    if text in {"0", "false", "no", ""}:
        return False
    return None


def read_policy(home: SpokeHome) -> AttestationPolicy:
    """Reads ``[policy]`` from the spoke's configuration (and its environment overrides).

    Raises:
        UsageError: a setting has the wrong type (a typo must not silently turn
            the policy off, nor exempt a family no one meant to).
    """
    required = _as_bool(home.config.get(REQUIRE_SETTING, False))
    if required is None:
        raise UsageError(
            f"{REQUIRE_SETTING} must be true or false, not {home.config.get(REQUIRE_SETTING)!r}",
            hint="fix [policy] require_attestations in the spoke's airlock.toml "
            "(or AIRLOCK_POLICY_REQUIRE_ATTESTATIONS)",
        )
    raw = home.config.get(UNSAFE_SETTING, False)
    if isinstance(raw, str):
        flag = _as_bool(raw)
        raw = flag if flag is not None else [part.strip() for part in raw.split(",")]
    if isinstance(raw, bool):
        return AttestationPolicy(required, raw, ())
    if not isinstance(raw, list) or not all(isinstance(f, str) and f.strip() for f in raw):
        raise UsageError(
            f"{UNSAFE_SETTING} must be true, false or a list of model families, not {raw!r}",
            hint='e.g. unsafe_allow_unattested = ["classifier"] under [policy] in the '
            "spoke's airlock.toml (or AIRLOCK_POLICY_UNSAFE_ALLOW_UNATTESTED=classifier)",
        )
    return AttestationPolicy(required, False, tuple(sorted({f.strip() for f in raw})))


def staged_layout_refs(session: Session) -> list[str]:
    """The ``name@version`` of every staged version that carries a (verified) layout."""
    refs = []
    for row in session.exec(select(StagedModel)):
        if any(f.get("kind") == "layout" for f in json.loads(row.files)):
            refs.append(f"{row.name}@{row.version}")
    return sorted(refs)


def layout_source(session: Session, targets: tuple[VerifiedTarget, ...] = ()) -> str | None:
    """Where the site's signed layout comes from, or None when it holds none.

    Args:
        session: A session on the spoke's database.
        targets: The verified targets of the bundle being imported, if any; a
            layout among them counts (the import verifies it or is refused).
    """
    staged = staged_layout_refs(session)
    if staged:
        return f"staged version {staged[0]}"
    carried = sorted(f"{t.model}@{t.version}" for t in targets if t.kind == "layout")
    return f"{carried[0]} in this bundle" if carried else None
