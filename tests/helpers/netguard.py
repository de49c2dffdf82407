"""The loopback guard: code under test may talk to 127.0.0.1 and ::1, never beyond.

:func:`install` wraps the ways Python code reaches another machine: the
``connect``, ``connect_ex``, ``sendto`` and ``sendmsg`` methods of
``socket.socket`` (so ``socket.create_connection``, httpx, uvicorn's clients,
asyncio and ``ssl`` too), and name lookups (``getaddrinfo``,
``gethostbyname``, ``gethostbyname_ex``), which would ask a DNS server
outside the machine. Anything other than a loopback address, ``localhost``
or a Unix socket raises :class:`OutsideLoopbackError` (deliberately not an
``OSError``, so that no retry loop mistakes it for a refused connection) and
is remembered (:func:`violations`), and, when a log file is given, appended
to it, so that a pytest fixture can fail the test even if the code under test
swallowed the error.

The module uses the standard library only: ``netguard_site/sitecustomize.py``
loads it by path into every Python process the tests start. Code that opens
sockets in C (libpq, for instance) is out of its reach.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable
from typing import Any

LOG_ENV = "TESTS_NETGUARD_LOG"
"""Environment variable naming the file where refusals are logged (child processes too)."""

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
INET_FAMILIES = (socket.AF_INET, socket.AF_INET6)

_refusals: list[str] = []
_installed: dict[str, Any] = {}


class OutsideLoopbackError(RuntimeError):
    """A test tried to reach an address outside loopback (or to look a name up in DNS)."""


def is_loopback(host: str | bytes | None) -> bool:
    """Whether ``host`` (an address literal or a name) stays on this machine.

    ``None`` and the empty string mean the local host to ``getaddrinfo``;
    ``localhost`` and its variants (RFC 6761) are loopback by name;
    an IPv4-mapped IPv6 address counts as the IPv4 address it maps.
    """
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    name = host.strip("[]").lower().rstrip(".")
    if name in ("", *LOOPBACK_NAMES) or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def violations() -> list[str]:
    """The refusals of this process so far, oldest first (a copy)."""
    return list(_refusals)


def _refuse(what: str, target: object) -> OutsideLoopbackError:
    message = f"tests must stay on loopback: {what} {target!r} refused (pid {os.getpid()})"
    _refusals.append(message)
    log = os.environ.get(LOG_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(message + "\n")
    return OutsideLoopbackError(message)


def _check_address(sock: socket.socket, address: Any, what: str) -> None:
    if sock.family not in INET_FAMILIES:
        return  # Unix sockets, netlink…: never leave the machine
    host = address[0] if isinstance(address, tuple) and address else address
    if not is_loopback(host):
        raise _refuse(what, address)


def _wrap_address_method(name: str, address_index: int) -> Callable[..., Any]:
    original = getattr(socket.socket, name)

    def guarded(self: socket.socket, *args: Any, **kwargs: Any) -> Any:
        if len(args) > address_index:
            _check_address(self, args[address_index], f"socket.{name} to")
        return original(self, *args, **kwargs)

    guarded.__name__ = guarded.__qualname__ = name
    guarded.__doc__ = original.__doc__
    _installed[f"socket.{name}"] = original
    return guarded


def _wrap_lookup(name: str) -> Callable[..., Any]:
    original = getattr(socket, name)

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback(host) and not _is_literal(host):
            raise _refuse(f"{name} of", host)
        return original(host, *args, **kwargs)

    guarded.__name__ = guarded.__qualname__ = name
    guarded.__doc__ = original.__doc__
    _installed[name] = original
    return guarded


def _is_literal(host: Any) -> bool:
    """An address literal resolves without asking anyone (``connect`` then judges it)."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        ipaddress.ip_address(str(host).strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def install() -> None:
    """Puts the guard in place in this process (idempotent)."""
    if _installed:
        return
    # the position of the address among each method's arguments (after self)
    socket.socket.connect = _wrap_address_method("connect", 0)  # type: ignore[method-assign]
    socket.socket.connect_ex = _wrap_address_method("connect_ex", 0)  # type: ignore[method-assign]
    socket.socket.sendto = _wrap_address_method("sendto", -1)  # type: ignore[method-assign]
    socket.socket.sendmsg = _wrap_address_method("sendmsg", 3)  # type: ignore[method-assign]
    for lookup in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        setattr(socket, lookup, _wrap_lookup(lookup))
