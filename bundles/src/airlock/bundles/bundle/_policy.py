"""The envelope policy: what a receiver accepts of an envelope whose signature verified.

Both directions check the signed envelope before anything is decrypted, with
one policy (:class:`EnvelopePolicy`), in this order (a check whose field is
unset does not run):

1. kind: one the receiver takes (:func:`~airlock.bundles.bundle._envelope.check_direction`);
2. site: a hub's bundle names the receiving site (``WrongSiteError``); a site's
   bundle was made by the site it names (``source``, ``WrongSiteError``);
3. the local clock is not behind the newest verified time (``time_floor``);
4. the bundle was not created ahead of the local clock (``max_clock_skew``);
5. expiry: a bundle is expired from its ``expires`` instant on (TUF's rule);
6. sequence: newer than the last imported (``StaleBundleError``: nothing changed);
7. encryption, when the receiver requires it;
8. payload parts: exactly the names expected, none above ``max_part_bytes``.

An offline-signed root rotation (``rotation=True``) is exempt from 3 and 6:
nothing that one online key or a wrong local clock can set may lock a site out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from airlock.bundles.bundle._envelope import check_direction
from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import (
    FreshnessError,
    MediaError,
    StaleBundleError,
    VerificationError,
    WrongSiteError,
)
from airlock.bundles.models._envelope import BundleKind, Envelope, envelope_source


@dataclass(frozen=True)
class EnvelopePolicy:
    """What one receiver accepts of a verified envelope.

    Attributes:
        kinds: The bundle kinds the receiver takes.
        site_id: A hub's bundle (``incoming``): this site. A site's bundle: the
            site the envelope names, which must also have made it.
        incoming: True at a site (the bundle comes from the hub), False at the hub.
        noun: How messages name the bundle (``bundle``, ``metrics bundle``).
        expired_hint: What to do about an expired bundle.
        time_floor: The newest verified time the receiver has seen (None: no check).
        max_clock_skew: How far ``created`` may be ahead of the clock (None: no check).
        last_sequence: The newest sequence imported (None: the caller checks sequences).
        require_encryption: Refuse a plaintext payload.
        parts: The exact payload part names (None: any, checked later against media).
        max_part_bytes: The largest payload part accepted (None: no limit here).
    """

    kinds: Collection[BundleKind]
    site_id: str
    incoming: bool
    noun: str
    expired_hint: str
    time_floor: dt.datetime | None = None
    max_clock_skew: dt.timedelta | None = None
    last_sequence: int | None = None
    require_encryption: bool = False
    parts: tuple[str, ...] | None = None
    max_part_bytes: int | None = None

    def check(self, envelope: Envelope, now: dt.datetime, *, rotation: bool = False) -> None:
        """Runs checks 1-8 of the module docstring on ``envelope`` at time ``now``.

        Raises:
            UsageError: a bundle of a kind this receiver does not take.
            WrongSiteError: for another site, or not made by the site it names.
            FreshnessError: clock behind the floor, created in the future, or expired.
            StaleBundleError: not newer than the last imported bundle.
            VerificationError: not encrypted where encryption is required.
            MediaError: other payload parts than expected, or one implausibly large.
        """
        check_direction(envelope, self.kinds)
        self._check_site(envelope)
        self._check_clock(envelope, now, rotation)
        if envelope.expires <= now:
            raise FreshnessError(
                f"the {self.noun} expired at {utc_iso(envelope.expires)}", hint=self.expired_hint
            )
        last = self.last_sequence
        if last is not None and envelope.sequence <= last and not rotation:
            raise StaleBundleError(
                f"bundle sequence {envelope.sequence} is not newer than the imported "
                f"{last}: nothing changed",
                hint="this bundle (or a newer one) was already imported; no action needed",
            )
        if self.require_encryption and not envelope.encrypted:
            raise VerificationError(
                "the bundle is not encrypted and this site requires encryption",
                hint="ask the hub to export with encryption on for this site",
            )
        self._check_parts(envelope)

    def _check_site(self, envelope: Envelope) -> None:
        if self.incoming:
            if envelope.site_id != self.site_id:
                raise WrongSiteError(
                    f"the bundle is for site {envelope.site_id!r}, this is site {self.site_id!r}",
                    hint="import the bundle exported for this site",
                )
        elif envelope.site_id != self.site_id or envelope.source != envelope_source(
            envelope.kind, self.site_id
        ):
            raise WrongSiteError(
                f"the {self.noun} claims site {self.site_id!r} but was made by {envelope.source!r}",
                hint="do not import bundles that were relabelled",
            )

    def _check_clock(self, envelope: Envelope, now: dt.datetime, rotation: bool) -> None:
        if self.time_floor is not None and now < self.time_floor and not rotation:
            raise FreshnessError(
                f"the local clock reads {now.isoformat()}, earlier than the newest verified "
                f"time {self.time_floor.isoformat()}",
                hint="the clock was set back (a fault or an attack); fix the system clock, "
                "then retry",
            )
        if self.max_clock_skew is not None and envelope.created > now + self.max_clock_skew:
            raise FreshnessError(
                f"the {self.noun} was created at {envelope.created.isoformat()}, after the local "
                f"clock ({now.isoformat()})",
                hint="the local clock is behind; fix the system clock, then retry",
            )

    def _check_parts(self, envelope: Envelope) -> None:
        names = tuple(part.name for part in envelope.parts)
        if self.parts is not None and names != self.parts:
            count = "one payload part" if len(self.parts) == 1 else f"{len(self.parts)} parts"
            raise MediaError(f"a {self.noun} has exactly {count}, {', '.join(self.parts)}")
        if self.max_part_bytes is not None and any(
            part.size > self.max_part_bytes for part in envelope.parts
        ):
            payload = self.noun.replace("bundle", "payload")
            raise MediaError(f"the {payload} is implausibly large; refusing it")
