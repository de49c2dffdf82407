"""Home directories and their TOML configuration.

A hub or spoke keeps everything under one home directory with an
``airlock.toml``::

    role = "spoke"
    site_id = "plant-7"

    [database]
    url = "sqlite:///spoke.db"     # relative SQLite paths resolve against the home

Every setting has a safe default, and ``AIRLOCK_<SECTION>_<KEY>`` (upper
case) in the environment overrides the file, e.g. ``AIRLOCK_DATABASE_URL``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airlock.bundles.atomic import atomic_write_bytes
from airlock.bundles.errors import NotFoundError, UsageError

CONFIG_FILE = "airlock.toml"


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


def write_config(home: Path, role: str, settings: dict[str, Any]) -> HomeConfig:
    """Writes a new ``airlock.toml`` (simple two-level TOML) and returns it parsed."""
    lines = [f'role = "{role}"']
    sections: list[str] = []
    for key, value in settings.items():
        if isinstance(value, dict):
            sections.append(f"\n[{key}]")
            sections.extend(f"{k} = {_toml_value(v)}" for k, v in value.items())
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    atomic_write_bytes(home / CONFIG_FILE, ("\n".join(lines + sections) + "\n").encode())
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
