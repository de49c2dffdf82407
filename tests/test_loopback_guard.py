"""The loopback guard refuses what would leave the machine and lets loopback through.

192.0.2.1 is TEST-NET-1 (RFC 5737): never routed, so even a guard that failed
open would send nothing anywhere; the guard refuses it before any packet goes.
The guard covers this process and the Python processes tests start.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
from helpers.netguard import OutsideLoopbackError, is_loopback
from helpers.netguard_plugin import Refusals

TESTS = Path(__file__).resolve().parent
OUTSIDE = ("192.0.2.1", 9)
PLUGINS = ("-p", "helpers.netguard_plugin", "-p", "no:xdist", "-p", "no:cacheprovider")
REACH_OUT = "import socket; socket.create_connection(('192.0.2.1', 9), timeout=2)"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP socket listening on 127.0.0.1 (a free port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def test_a_connection_outside_loopback_is_refused(netguard_refusals: Refusals) -> None:
    with pytest.raises(OutsideLoopbackError, match=r"192\.0\.2\.1"):
        socket.create_connection(OUTSIDE, timeout=2)
    with socket.socket() as sock, pytest.raises(OutsideLoopbackError):
        sock.connect_ex(OUTSIDE)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        with pytest.raises(OutsideLoopbackError):
            sock.sendto(b"x", OUTSIDE)
        with pytest.raises(OutsideLoopbackError):
            sock.sendto(b"x", 0, ("::ffff:192.0.2.1", 9))
    assert len(netguard_refusals.new()) == 4


def test_a_name_is_not_looked_up(netguard_refusals: Refusals) -> None:
    for lookup in (socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex):
        with pytest.raises(OutsideLoopbackError, match=r"example\.com"):
            lookup("www.example.com", *((443,) if lookup is socket.getaddrinfo else ()))
    assert len(netguard_refusals.new()) == 3


def test_loopback_and_unix_sockets_are_allowed(
    listener: socket.socket, tmp_path: Path, netguard_refusals: Refusals
) -> None:
    port = listener.getsockname()[1]
    for host in ("127.0.0.1", "localhost"):
        with socket.create_connection((host, port), timeout=5):
            pass
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) == 0
    assert socket.getaddrinfo("localhost", port)
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as server, socket.socket(socket.AF_UNIX) as client:
        server.bind(str(path))
        server.listen()
        client.connect(str(path))
    assert netguard_refusals.new() == []


def test_ipv6_loopback_is_allowed(netguard_refusals: Refusals) -> None:
    try:
        server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        server.bind(("::1", 0))
    except OSError:  # no IPv6 here: the guard must still let the call through to the OS
        with pytest.raises(OSError):  # the OS's refusal, not the guard's (a RuntimeError)
            socket.create_connection(("::1", 9), timeout=5)
        assert netguard_refusals.new() == []
        return
    with server:
        server.listen()
        with socket.create_connection(("::1", server.getsockname()[1]), timeout=5):
            pass
    assert netguard_refusals.new() == []


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("api.localhost", True),
        (b"127.0.0.1", True),
        ("192.0.2.1", False),
        ("::ffff:192.0.2.1", False),
        ("0.0.0.0", False),  # noqa: S104 (connecting to it reaches this host, but say so)
        ("10.0.0.5", False),
        ("example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_what_counts_as_loopback(host: str | bytes, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_child_python_process_is_guarded_too(
    listener: socket.socket, netguard_refusals: Refusals
) -> None:
    refused = subprocess.run(
        [sys.executable, "-c", REACH_OUT], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0
    assert "OutsideLoopbackError" in refused.stderr
    assert any("192.0.2.1" in line for line in netguard_refusals.new())

    port = listener.getsockname()[1]
    allowed = subprocess.run(
        [sys.executable, "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert allowed.returncode == 0, allowed.stderr
    assert netguard_refusals.new() == []


def test_a_test_that_swallows_the_refusal_still_fails(tmp_path: Path) -> None:
    sneaky = textwrap.dedent(
        """
        import socket, subprocess, sys

        def test_in_process():
            try:
                socket.create_connection(("192.0.2.1", 9), timeout=2)
            except Exception:
                pass

        def test_in_a_child():
            subprocess.run([sys.executable, "-c", REACH_OUT], capture_output=True, check=False)

        def test_on_loopback():
            socket.getaddrinfo("127.0.0.1", 80)
        """
    )
    (tmp_path / "test_sneaky.py").write_text(f"REACH_OUT = {REACH_OUT!r}\n{sneaky}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ["PYTHONPATH"]])}
    report = tmp_path / "report.xml"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-o",
            "addopts=",
            *PLUGINS,
            f"--junitxml={report}",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    # The JUnit report, not the console: how much of a failure the console
    # repeats in its short summary depends on the terminal's width.
    failures = {
        case.get("name"): case.find("failure")
        # The report is the one this test's own pytest run just wrote.
        for case in ElementTree.parse(report).getroot().iter("testcase")  # noqa: S314
    }
    assert set(failures) == {"test_in_process", "test_in_a_child", "test_on_loopback"}
    assert failures["test_on_loopback"] is None
    for name in ("test_in_process", "test_in_a_child"):
        failure = failures[name]
        assert failure is not None, name
        told = (failure.get("message") or "") + (failure.text or "")
        assert "network access outside loopback" in told, name
