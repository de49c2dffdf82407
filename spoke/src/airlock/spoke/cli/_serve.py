"""``airlock spoke serve``: run the spoke's HTTP API for the site's nodes.

Loopback only by default. Listening on any other address needs TLS
(``--tls-cert``/``--tls-key``), or the explicit ``--insecure-http`` (every
node request is still signed, but nothing is private). The site key is
unlocked once at start; the background tasks (:func:`periodic_tasks`) use it
to run the rollout engine and keep the site director's metadata signed and fresh.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from pathlib import Path

import click
from securesystemslib.signer import Signer

from airlock.bundles.audit import failure_details, failure_outcome
from airlock.bundles.cli import closing_home
from airlock.bundles.clock import Clock, SystemClock
from airlock.bundles.errors import AirlockError, MissingFileError, UsageError
from airlock.spoke.cli._options import HOME_OPTION, open_home
from airlock.spoke.site._home import SpokeHome

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8750
TICK_EVERY_SECONDS = 1.0
"""How often the rollout engine looks at the fleet (analysis itself runs per plan interval)."""
AUDIT_FAILURE_EVERY_SECONDS = 60.0
EVENTS_EVERY_SECONDS = 2.0
"""How often the outbox's CloudEvents go to the outbox file and the webhook."""


def periodic_tasks(home: SpokeHome, signer: Signer, clock: Clock) -> list[Callable[[], None]]:
    """The callables the service runs in the background, each in its own transaction.

    One: the rollout engine's tick (:func:`airlock.spoke.rollout._engine.tick`) — analysis,
    promotions, rollbacks, the revocation fast path, then the site director signs what
    changed and renews what expires. A tick that fails changes nothing; its error is
    audited (at most once a minute for the same error) and the next tick tries again.
    Two: event delivery (:func:`airlock.bundles.events._delivery.deliver_best_effort`), the
    outbox's CloudEvents to ``HOME/events/outbox.jsonl`` and the webhook; never raises.
    """
    from airlock.bundles import events as event_delivery
    from airlock.spoke.rollout import _engine as rollout_engine

    last_failure: dict[str, float] = {}
    memo = rollout_engine.TickMemo()

    def rollout_tick() -> None:
        try:
            rollout_engine.tick(home, signer, clock.now(), memo)
        except AirlockError as exc:
            now = time.monotonic()
            if now - last_failure.get(exc.message, -AUDIT_FAILURE_EVERY_SECONDS) >= (
                AUDIT_FAILURE_EVERY_SECONDS
            ):
                last_failure[exc.message] = now
                home.audit.record(
                    "spoke.rollout.tick",
                    failure_outcome(exc),
                    details=failure_details(exc),
                    when=clock.now(),
                )
            raise

    def deliver_events() -> None:
        event_delivery.deliver_best_effort(
            home.engine, home.path, home.config, clock.now(), home.audit
        )

    return [
        at_most_every(TICK_EVERY_SECONDS, rollout_tick),
        at_most_every(EVENTS_EVERY_SECONDS, deliver_events),
    ]


def at_most_every(seconds: float, task: Callable[[], None]) -> Callable[[], None]:
    """Wraps ``task`` so that calling it more often than every ``seconds`` does nothing."""
    last: list[float] = []

    def throttled() -> None:
        now = time.monotonic()
        if last and now - last[0] < seconds:
            return
        last[:] = [now]
        task()

    throttled.__name__ = getattr(task, "__name__", "task")
    return throttled


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(
    host: str, tls_cert: Path | None, tls_key: Path | None, insecure_http: bool
) -> None:
    """Refuses a listening setup that would expose the API without TLS.

    Raises:
        UsageError: only one of the TLS files, or a non-loopback host without TLS.
        NotFoundError: a TLS file does not exist.
    """
    if (tls_cert is None) != (tls_key is None):
        raise UsageError(
            "--tls-cert and --tls-key go together", hint="pass both PEM files, or neither"
        )
    for path in (tls_cert, tls_key):
        if path is not None and not Path(path).is_file():
            raise MissingFileError(f"the TLS file {path} does not exist")
    if tls_cert is None and not is_loopback(host) and not insecure_http:
        raise UsageError(
            f"refusing to serve on {host} without TLS",
            hint="pass --tls-cert and --tls-key (nodes trust the certificate through their "
            "bootstrap), or --insecure-http if the network is private and you accept that",
        )


@click.command("serve", short_help="Serve the node API: TUF mirror, reports, metrics.")
@HOME_OPTION
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, help="TCP port.")
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PEM certificate (chain) for HTTPS.",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PEM private key of the certificate (unencrypted).",
)
@click.option(
    "--insecure-http",
    is_flag=True,
    help="Allow plain HTTP on a non-loopback address (requests are still signed).",
)
@click.option("--access-log", is_flag=True, help="Log every request (noisy with many nodes).")
def serve(
    home: Path,
    host: str,
    port: int,
    tls_cert: Path | None,
    tls_key: Path | None,
    insecure_http: bool,
    access_log: bool,
) -> None:
    """Serve the local TUF mirror, node reports and metrics, and /metrics.

    \b
    Nodes (enrolled with `airlock spoke node enroll`) poll this API; every
    node request is signed with the node's key. /metrics (Prometheus) and
    /healthz need no signature; /metrics answers loopback clients only unless
    [service] metrics_remote = true. The site passphrase comes from
    AIRLOCK_SPOKE_PASSPHRASE or a prompt. Stop with Ctrl-C.
    """
    import uvicorn

    from airlock.spoke.service._app import create_app

    with closing_home(open_home(home)) as spoke_home:
        clock = SystemClock()
        details = {"host": host, "port": port, "tls": tls_cert is not None}
        try:
            check_listen(host, tls_cert, tls_key, insecure_http)
            signer = spoke_home.keystore().signer(spoke_home.signing_key())
        except Exception as exc:
            spoke_home.audit.record(
                "spoke.serve.start",
                failure_outcome(exc),
                object="spoke-service",
                details={**details, **failure_details(exc)},
                when=clock.now(),
            )
            raise
        spoke_home.audit.record(
            "spoke.serve.start",
            "success",
            object="spoke-service",
            details=details,
            when=clock.now(),
        )
        app = create_app(spoke_home, clock, periodic=periodic_tasks(spoke_home, signer, clock))
        scheme = "https" if tls_cert else "http"
        click.echo(f"airlock spoke serving site {spoke_home.site_id} on {scheme}://{host}:{port}")
        uvicorn.run(
            app,
            host=host,
            port=port,
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
            access_log=access_log,
            log_level="info",
        )
