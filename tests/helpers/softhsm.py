"""A real SoftHSM2 token for tests, in a temporary directory.

PKCS#11 modules read their configuration once per process (at C_Initialize),
and SoftHSM2 does not see tokens created after that, so every token and key a
test session needs is created up front by :func:`make_tokens`, with the stock
``softhsm2-util`` and ``pkcs11-tool`` (Debian packages ``softhsm2``, ``opensc``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
SO_PIN = "so-pin-12345678"
USER_PIN = "1234-user-pin"


@dataclass(frozen=True)
class TokenKey:
    """A key pair on a token: its label, PKCS#11 id (hex) and curve."""

    token: str
    key_id: str
    curve: str

    @property
    def slot(self) -> str:
        """``TOKEN:KEY_ID``, as ``airlock ceremony keygen --hsm ROLE=…`` takes it."""
        return f"{self.token}:{self.key_id}"


def available() -> bool:
    """Whether SoftHSM2 and pkcs11-tool are installed."""
    return (
        bool(shutil.which("softhsm2-util") and shutil.which("pkcs11-tool"))
        and Path(MODULE).exists()
    )


def environment(base: Path) -> dict[str, str]:
    """The environment variables that point PKCS#11 users at the token directory."""
    return {"SOFTHSM2_CONF": str(base / "softhsm2.conf"), "PYKCS11LIB": MODULE}


def make_tokens(base: Path, keys: list[TokenKey]) -> dict[str, str]:
    """Creates the tokens and key pairs under ``base``; returns the environment to use."""
    (base / "tokens").mkdir(parents=True)
    (base / "softhsm2.conf").write_text(
        f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    env = {**os.environ, **environment(base)}
    for label in sorted({key.token for key in keys}):
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label,
             "--so-pin", SO_PIN, "--pin", USER_PIN],
            check=True, capture_output=True, env=env,
        )  # fmt: skip
    for key in keys:
        subprocess.run(
            ["pkcs11-tool", "--module", MODULE, "--token-label", key.token, "--login",
             "--pin", USER_PIN, "--keypairgen", "--key-type", f"EC:{key.curve}",
             "--id", key.key_id, "--label", f"airlock-{key.key_id}"],
            check=True, capture_output=True, env=env,
        )  # fmt: skip
    return environment(base)
