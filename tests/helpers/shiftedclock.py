"""Real ``airlock`` processes on loopback, optionally with a shifted system clock (libfaketime).

The red team found that a cut-off site stops serving its nodes by running the
real ``airlock spoke serve`` and node agents with their clocks moved weeks
ahead. These helpers do the same: :func:`libfaketime` finds the preloadable
library (Debian package ``faketime``; ``make system-deps`` installs it),
:func:`airlock_env` builds a clean environment whose clock is ``days`` ahead
of the real one, :func:`run` runs one command and :func:`spoke_service` keeps
``airlock spoke serve`` running on a loopback port until the block ends.

Only the wall clock moves (``FAKETIME_DONT_FAKE_MONOTONIC=1``), as on a real
machine whose date is weeks after the last bundle: the monotonic clock counts
from boot. Shifting it too breaks libfaketime 0.9.10 itself under Python 3.11:
a timed wait (``threading.Event.wait``, which the spoke service's periodic
tasks use) computes its deadline on the shifted clock, but ``sem_clockwait``
is not intercepted, so it sleeps for the whole shift and the service never
ticks again. (With the monotonic clock real, ``time.sleep`` fails with
EINVAL under libfaketime 0.9.10; the code paths run here do not call it.)
"""

from __future__ import annotations

import contextlib
import glob
import os
import socket
import subprocess
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers.spokeenv import AIRLOCK, SITE_PASSPHRASE

LIBFAKETIME = "libfaketime.so.1"
COMMAND_SECONDS = 120
"""Upper bound of one command's run time (a hung process fails the test instead)."""


def libfaketime() -> Path:
    """The path of ``libfaketime.so.1`` on this machine (fails the test when it is missing)."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    candidates = [f"/usr/lib/{multiarch}/faketime/{LIBFAKETIME}"] if multiarch else []
    candidates += sorted(glob.glob(f"/usr/lib/*/faketime/{LIBFAKETIME}"))
    candidates += [f"/usr/lib/faketime/{LIBFAKETIME}", f"/usr/local/lib/faketime/{LIBFAKETIME}"]
    for candidate in candidates:
        if Path(candidate).is_file():
            return Path(candidate)
    pytest.fail(f"{LIBFAKETIME} not found: install libfaketime (`make system-deps`)")


def airlock_env(days: int = 0, **extra: str) -> dict[str, str]:
    """A clean environment (no inherited ``AIRLOCK_*``) whose clock runs ``days`` ahead."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRLOCK_", "FAKETIME"))}
    env.pop("LD_PRELOAD", None)
    env.update({"AIRLOCK_PRINCIPAL": "site-admin", "COLUMNS": "200", "NO_COLOR": "1", **extra})
    if days:
        env.update(
            {
                "LD_PRELOAD": str(libfaketime()),
                "FAKETIME": f"+{days}d",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            }
        )
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Runs ``airlock ARGS`` in ``env`` (bounded in time; the exit code is not checked)."""
    return subprocess.run(
        [str(AIRLOCK), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def spoke_service(home: Path, port: int, env: dict[str, str], log: Path) -> Iterator[str]:
    """``airlock spoke serve`` on 127.0.0.1:``port`` until the block ends; yields its URL.

    Its output goes to ``log``.
    """
    env = {**env, "AIRLOCK_SPOKE_PASSPHRASE": SITE_PASSPHRASE}
    command = [str(AIRLOCK), "spoke", "serve", "--home", str(home), "--port", str(port)]
    out = log.open("a")
    proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"spoke serve exited: {log.read_text()}"
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the spoke service did not start"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        out.close()
