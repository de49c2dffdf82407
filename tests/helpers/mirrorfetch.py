"""An in-memory transport for node verification tests: the spoke's mirror without HTTP.

:class:`MirrorFetcher` is a ``tuf.ngclient`` fetcher (RepositorySimulator
style) that answers the URLs a node asks for straight from a spoke home's
database and blob store, through the same lookups the spoke's HTTP service
uses (:mod:`airlock.spoke.service._mirror`, :mod:`airlock.spoke.director._director`).
Anything it does not serve raises ``DownloadHTTPError(..., 404)`` at once,
as ngclient expects of a missing file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib import parse

from sqlmodel import Session
from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient.fetcher import FetcherInterface

from airlock.bundles.clock import Clock
from airlock.bundles.protocol import IMAGE_PATH, NODES_PATH
from airlock.bundles.tuf import IMAGE
from airlock.node import NodeVerifier
from airlock.spoke import director as site_director
from airlock.spoke import service as mirror
from airlock.spoke.site import SpokeHome, TrustedMetadataFile

BASE_URL = "http://spoke.test"
IMAGE_URL = f"{BASE_URL}{IMAGE_PATH}/"
TARGETS_URL = f"{BASE_URL}{IMAGE_PATH}/targets/"


def director_url(node_id: str) -> str:
    """The site-director metadata base URL of ``node_id``."""
    return f"{BASE_URL}{NODES_PATH}/{node_id}/director/"


class MirrorFetcher(FetcherInterface):
    """Serves ``http://spoke.test/v1/…`` from ``home`` (see the module docstring).

    Attributes:
        requests: Every URL path asked for, in order.
    """

    def __init__(self, home: SpokeHome) -> None:
        self.home = home
        self.requests: list[str] = []

    def _fetch(self, url: str) -> Iterator[bytes]:
        parsed = parse.urlparse(url)
        path = parsed.path
        self.requests.append(path)
        if f"{parsed.scheme}://{parsed.netloc}" != BASE_URL:
            raise DownloadHTTPError(f"{url} is not on the spoke", 404)
        data = self._lookup(parse.unquote(path))
        if data is None:
            raise DownloadHTTPError(f"{path} not found", 404)
        return iter([data])

    def _lookup(self, path: str) -> bytes | None:
        with Session(self.home.engine) as session:
            targets_prefix = f"{IMAGE_PATH}/targets/"
            if path.startswith(targets_prefix):
                blob = mirror.image_target(self.home, session, path[len(targets_prefix) :])
                return None if blob is None else blob.read_bytes()
            if path.startswith(f"{IMAGE_PATH}/"):
                return mirror.image_metadata(session, path[len(IMAGE_PATH) + 1 :])
            parts = path[len(NODES_PATH) + 1 :].split("/")
            if path.startswith(f"{NODES_PATH}/") and len(parts) == 3 and parts[1] == "director":
                return site_director.node_metadata(session, parts[0], parts[2])
        return None


def trusted_image_root(home: SpokeHome) -> bytes:
    """The newest Image root the spoke trusts (what enrolment gives a node)."""
    with Session(home.engine) as session:
        row = session.get(TrustedMetadataFile, (IMAGE, "root.json"))
        assert row is not None, "the spoke trusts no Image root"
        return bytes(row.data)


def node_verifier(
    home: SpokeHome,
    metadata_dir: Path,
    node_id: str,
    *,
    served_node: str | None = None,
    site_id: str | None = None,
    clock: Clock | None = None,
) -> NodeVerifier:
    """A verifier for ``node_id`` reading ``served_node``'s director URL (default: its own).

    ``clock`` is the node's (default: the system clock).
    """
    return NodeVerifier(
        metadata_dir,
        node_id=node_id,
        site_id=site_id or home.site_id,
        image_url=IMAGE_URL,
        director_url=director_url(served_node or node_id),
        targets_url=TARGETS_URL,
        fetcher=MirrorFetcher(home),
        clock=clock,
    )
