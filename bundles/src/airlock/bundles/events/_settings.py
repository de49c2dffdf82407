"""The ``[events]`` settings of a home: where events go and how delivery retries.

:func:`load_settings` validates the section once per delivery (see
:mod:`airlock.bundles.events._delivery` for what the settings mean); a webhook
URL is only ever shown redacted (:func:`redact_url`).
"""

from __future__ import annotations

import datetime as dt
import os
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airlock.bundles.config import HomeConfig
from airlock.bundles.errors import (
    NotFoundError,
    SecretError,
    UsageError,
)

if TYPE_CHECKING:
    pass


EVENTS_DIR = "events"
OUTBOX_FILE = "outbox.jsonl"
LOCK_FILE = ".lock"
CONTENT_TYPE = "application/cloudevents+json"
SIGNATURE_HEADER = "X-Airlock-Signature"
DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024
DEFAULT_KEEP_FILES = 5
DEFAULT_TIMEOUT_SECONDS = 5
DEFAULT_RETRY_BASE_SECONDS = 2
DEFAULT_RETRY_MAX_SECONDS = 3600
BATCH_SIZE = 500
POSTS_PER_CALL = 200
"""At most this many POSTs per :func:`deliver` call (the spoke's background loop stays lively)."""


@dataclass(frozen=True)
class Webhook:
    """A validated webhook destination (``url`` may hold credentials: never print it)."""

    url: str = field(repr=False)
    redacted: str = ""
    secret: bytes | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    ca_file: str = ""
    retry_base: int = DEFAULT_RETRY_BASE_SECONDS
    retry_max: int = DEFAULT_RETRY_MAX_SECONDS

    def scrub(self, text: str) -> str:
        """``text`` with the URL's credentials, query and the signing secret taken out."""
        parts = urllib.parse.urlsplit(self.url)
        for secret in (self.url, parts.netloc, parts.query, parts.password, parts.username):
            if secret and len(secret) >= 3:
                text = text.replace(secret, "***")
        if self.secret:
            text = text.replace(self.secret.decode("utf-8", "replace"), "***")
        return text

    def backoff(self, attempts: int) -> dt.timedelta:
        """The wait after the ``attempts``-th failed attempt: base × 2^(n−1), capped."""
        exponent = min(max(attempts - 1, 0), 30)
        return dt.timedelta(seconds=min(self.retry_base * 2**exponent, self.retry_max))


@dataclass(frozen=True)
class DeliverySettings:
    """The ``[events]`` section of a home's configuration, validated."""

    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    keep_files: int = DEFAULT_KEEP_FILES
    webhook: Webhook | None = None


@dataclass
class DeliveryReport:
    """What one :func:`deliver` call did (counts are of this call; ``pending`` is what is left)."""

    written: int = 0
    delivered: int = 0
    failed: int = 0
    pending: int = 0
    webhook: str = ""
    """The webhook URL without credentials or query ("" when none is configured)."""
    errors: list[str] = field(default_factory=list)
    """Distinct errors of failed attempts (secrets taken out)."""
    busy: bool = False
    """Another process was delivering; this call did nothing."""

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return asdict(self)


def redact_url(url: str) -> str:
    """``url`` as ``scheme://host[:port]/path``: no user info, query or fragment."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback IP address (no DNS lookup)."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in {"1", "true", "yes", "on"}


def _int_setting(config: HomeConfig, name: str, default: int, minimum: int) -> int:
    value = config.get(f"events.{name}", default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = minimum - 1
    if isinstance(value, bool) or number < minimum:
        raise UsageError(
            f"[events] {name} must be a whole number of at least {minimum}, not {value!r}",
            hint=f"fix airlock.toml or AIRLOCK_EVENTS_{name.upper()}",
        )
    return number


def load_settings(config: HomeConfig) -> DeliverySettings:
    """Reads and checks the ``[events]`` settings of a home.

    Raises:
        UsageError: a malformed size, a webhook URL that is not http(s), or plain
            http to a non-loopback host without ``allow_insecure``.
        SecretError: ``webhook_secret_env`` names a variable that is not set.
    """
    max_bytes = _int_setting(config, "max_file_bytes", DEFAULT_MAX_FILE_BYTES, 1024)
    keep = _int_setting(config, "keep_files", DEFAULT_KEEP_FILES, 0)
    url = str(config.get("events.webhook_url", "") or "").strip()
    if not url:
        return DeliverySettings(max_bytes, keep)
    redacted = redact_url(url)
    parts = urllib.parse.urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        parts = parts._replace(netloc="")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"the events webhook URL {redacted!r} is not an http(s) URL with a host",
            hint="set [events] webhook_url (or AIRLOCK_EVENTS_WEBHOOK_URL) to https://host/path",
        )
    if (
        parts.scheme == "http"
        and not is_loopback_host(parts.hostname)
        and not _truthy(config.get("events.allow_insecure", False))
    ):
        raise UsageError(
            f"refusing to send events over plain http to {redacted}",
            hint="use https, or set [events] allow_insecure = true if the network is private",
        )
    secret: bytes | None = None
    secret_env = str(config.get("events.webhook_secret_env", "") or "").strip()
    if secret_env:
        value = os.environ.get(secret_env, "")
        if not value:
            raise SecretError(
                f"the webhook signing secret variable {secret_env} is not set",
                hint=f"export {secret_env}, or remove [events] webhook_secret_env",
            )
        secret = value.encode("utf-8")
    ca_file = str(config.get("events.ca_file", "") or "")
    if ca_file and not Path(ca_file).is_absolute():
        ca_file = str(config.home / ca_file)
    if ca_file and not Path(ca_file).is_file():
        raise NotFoundError(
            f"the webhook CA file {ca_file} does not exist",
            hint="set [events] ca_file to a PEM bundle, or remove it to use the system's CAs",
        )
    return DeliverySettings(
        max_bytes,
        keep,
        Webhook(
            url=url,
            redacted=redacted,
            secret=secret,
            timeout=_int_setting(config, "timeout_seconds", DEFAULT_TIMEOUT_SECONDS, 1),
            ca_file=ca_file,
            retry_base=_int_setting(config, "retry_base_seconds", DEFAULT_RETRY_BASE_SECONDS, 1),
            retry_max=_int_setting(config, "retry_max_seconds", DEFAULT_RETRY_MAX_SECONDS, 1),
        ),
    )
