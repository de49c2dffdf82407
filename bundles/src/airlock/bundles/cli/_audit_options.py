"""What the ``airlock audit`` commands share: their options and the files they read.

``verify`` and ``report`` both check the log against checkpoint keys and
checkpoints kept outside the home; ``query`` and ``report`` both filter by time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from securesystemslib.signer import Key

from airlock.bundles.audit._checkpoint_store import CheckpointKey, read_checkpoint_key
from airlock.bundles.cli._toolkit import home_option
from airlock.bundles.errors import MediaError, MissingFileError
from airlock.bundles.keys._pem import read_public_key_pem

HOME_OPTION = home_option(envvar="AIRLOCK_HOME", help="Hub or spoke home directory.")
LOG_HOME_OPTION = home_option(
    envvar="AIRLOCK_HOME", help="Hub, spoke or ceremony home directory whose log to read."
)
TRUSTED_KEY_OPTION = click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The checkpoint public key you trust (PEM or JSON); default: the home's published one.",
)
KEPT_CHECKPOINTS_OPTION = click.option(
    "--checkpoint",
    "notes",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A signed checkpoint kept outside the home, to check the log against (repeatable).",
)


def time_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--since`` and ``--until`` (UTC; a date alone covers the whole day)."""
    func = click.option(
        "--until",
        metavar="WHEN",
        help="Entries before this UTC time; a date alone includes that whole day.",
    )(func)
    return click.option(
        "--since", metavar="WHEN", help="Entries at or after this UTC date or time (ISO 8601)."
    )(func)


def read_text(path: Path, what: str) -> str:
    """A text file the auditor gave (a proof, a checkpoint).

    Raises:
        MissingFileError: no such file.
        MediaError: unreadable, or not UTF-8.
    """
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MissingFileError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MediaError(f"{what} {path} is unreadable ({exc})") from None


def read_key_file(path: Path) -> Key:
    """A checkpoint public key: ``audit-checkpoint-key.pem`` or ``audit-checkpoint-key.json``.

    Raises:
        MissingFileError: no such file.
        UsageError: not a public key.
    """
    if Path(path).suffix == ".json":
        try:
            data = json.loads(read_text(path, "key file"))
        except ValueError:
            raise MediaError(f"key file {path} is not JSON") from None
        return CheckpointKey.from_dict(data).ref.public_key
    return read_public_key_pem(Path(path))


def checkpoint_keys(home: Path, key_path: Path | None) -> dict[str, Key]:
    """The keys checkpoints are checked with: ``--key``, else the home's published ones."""
    if key_path is not None:
        return {"": read_key_file(key_path)}
    published = read_checkpoint_key(home)
    return published.keys if published else {}
