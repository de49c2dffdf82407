"""Home directories and their TOML configuration.

A hub or spoke keeps everything under one home directory with an
``airlock.toml``::

    role = "spoke"
    site_id = "plant-7"

    [database]
    url = "sqlite:///spoke.db"     # relative SQLite paths resolve against the home
    schema = "airlock_spoke"       # PostgreSQL only: the schema of this home's tables

Every setting has a safe default, and ``AIRLOCK_<SECTION>_<KEY>`` (upper
case) in the environment overrides the file, e.g. ``AIRLOCK_DATABASE_URL``.
``init`` saves the database the environment chose (:func:`database_settings`),
so that later commands without the variable open the same database.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from airlock.bundles.atomic import atomic_write_bytes
from airlock.bundles.errors import NotFoundError, UsageError

CONFIG_FILE = "airlock.toml"
DATABASE_URL_ENV = "AIRLOCK_DATABASE_URL"
DATABASE_SCHEMA_ENV = "AIRLOCK_DATABASE_SCHEMA"
SCHEMA_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,62}")
"""PostgreSQL schema names Airlock accepts: lower case, unquoted identifiers."""


@dataclass
class HomeConfig:
    """The parsed ``airlock.toml`` of one home directory, with env overrides applied."""

    home: Path
    role: str
    settings: dict[str, Any] = field(default_factory=dict)

    def get(self, dotted: str, default: Any = None) -> Any:
        """Returns setting ``section.key`` (env ``AIRLOCK_SECTION_KEY`` wins)."""
        env_name = "AIRLOCK_" + dotted.replace(".", "_").replace("-", "_").upper()
        if env_name in os.environ:
            return os.environ[env_name]
        node: Any = self.settings
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL of this home's database (relative SQLite paths resolved)."""
        url = str(self.get("database.url", f"sqlite:///{self.role}.db"))
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/"):
            return prefix + str((self.home / url[len(prefix) :]).resolve())
        return url

    @property
    def database_schema(self) -> str:
        """The PostgreSQL schema of this home's tables (``[database] schema``).

        Defaults to ``airlock_<role>``, so that a hub and a spoke given the same
        PostgreSQL database keep separate tables, audit logs included.

        Raises:
            UsageError: not a plain lower-case identifier.
        """
        schema = str(self.get("database.schema", f"airlock_{self.role or 'home'}"))
        if not SCHEMA_PATTERN.fullmatch(schema):
            raise UsageError(
                f"[database] schema {schema!r} of {self.home} is not a valid schema name",
                hint="use lower-case letters, digits and _ (at most 63), e.g. airlock_spoke",
            )
        return schema


def redacted_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a database URL)"


def url_has_password(url: str) -> bool:
    """Whether the database URL carries a password."""
    try:
        return bool(make_url(url).password)
    except ArgumentError:
        return False


def database_settings(role: str) -> dict[str, str]:
    """The ``[database]`` section ``init`` writes: the environment's choice, or SQLite.

    ``AIRLOCK_DATABASE_URL`` and ``AIRLOCK_DATABASE_SCHEMA`` given at ``init``
    are saved, so that the next command finds the same database without them.
    """
    settings = {"url": os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{role}.db"}
    if os.environ.get(DATABASE_SCHEMA_ENV):
        settings["schema"] = os.environ[DATABASE_SCHEMA_ENV]
    return settings


def write_config(home: Path, role: str, settings: dict[str, Any]) -> HomeConfig:
    """Writes a new ``airlock.toml`` (simple two-level TOML) and returns it parsed.

    The file is made readable by its owner only (0600) when its database URL
    carries a password.
    """
    lines = [f'role = "{role}"']
    sections: list[str] = []
    for key, value in settings.items():
        if isinstance(value, dict):
            sections.append(f"\n[{key}]")
            sections.extend(f"{k} = {_toml_value(v)}" for k, v in value.items())
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    database = settings.get("database")
    secret = isinstance(database, dict) and url_has_password(str(database.get("url", "")))
    atomic_write_bytes(
        home / CONFIG_FILE,
        ("\n".join(lines + sections) + "\n").encode(),
        mode=0o600 if secret else 0o644,
    )
    return load_config(home, role)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def load_config(home: Path, expected_role: str | None = None) -> HomeConfig:
    """Reads ``home/airlock.toml``.

    Raises:
        NotFoundError: the home has no configuration (not initialised).
        UsageError: the file is malformed or is for another role.
    """
    path = Path(home) / CONFIG_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        what = expected_role or "Airlock"
        raise NotFoundError(
            f"{home} is not an initialised {what} home (no {CONFIG_FILE})",
            hint=f"run `airlock {what} init` first, or pass the right --home",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    role = str(data.get("role", ""))
    if expected_role and role != expected_role:
        raise UsageError(
            f"{home} is a {role or 'unknown'} home, not a {expected_role} home",
            hint="pass the right --home",
        )
    return HomeConfig(home=Path(home), role=role, settings=data)
