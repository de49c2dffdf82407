"""The node side of the node protocol: signed HTTP requests to the spoke, and a TUF fetcher.

:class:`NodeClient` holds one keep-alive ``httpx.Client`` and signs every
request with the node's key (:func:`airlock.bundles.protocol.sign_request`),
over the exact path and query the server will see. Errors come back as
Airlock errors carrying the spoke's own message::

    404        → NotFoundError
    401        → SignatureError   (not enrolled, bad signature, stale date, replay)
    403        → WrongSiteError   (another node's files)
    409        → ConflictError    (an older or replayed report)
    other 4xx  → UsageError
    5xx        → MediaError
    no answer  → MediaError "spoke unreachable"

:class:`SignedFetcher` plugs the client into ``tuf.ngclient``: every metadata
and target download is a signed request, and any status but 200 raises
``DownloadHTTPError`` at once (ngclient's root-version probe relies on a 404).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from typing import Any

import httpx
from securesystemslib.signer import Signer
from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient.fetcher import FetcherInterface

from airlock.bundles.clock import Clock
from airlock.bundles.errors import (
    AirlockError,
    ConflictError,
    MediaError,
    NotFoundError,
    SignatureError,
    UsageError,
    WrongSiteError,
)
from airlock.bundles.protocol import SignedDocument, sign_request

CHUNK_BYTES = 1024 * 1024


class NodeClient:
    """Signed requests from one node to its spoke over one keep-alive connection pool."""

    def __init__(
        self,
        base_url: str,
        node_id: str,
        signer: Signer,
        clock: Clock,
        ca_pem: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Creates the client.

        Args:
            base_url: The spoke's URL, e.g. ``https://spoke.plant-7:8750``.
            node_id: This node's enrolled id.
            signer: This node's private key.
            clock: Dates the requests (the spoke refuses more than 5 minutes of skew).
            ca_pem: PEM certificate(s) to trust for the spoke's TLS certificate
                (from the bootstrap file); None uses the system's trust store.
            timeout: Seconds to wait for the spoke at each step of a request.
        """
        self.base_url = base_url.rstrip("/")
        self.node_id = node_id
        self._signer = signer
        self._clock = clock
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cadata=ca_pem) if ca_pem else True
        )
        self._http = httpx.Client(base_url=self.base_url, verify=verify, timeout=timeout)

    def get(self, path: str) -> bytes:
        """GETs ``path`` (relative to the base URL, or absolute) and returns the body.

        Raises:
            NotFoundError, SignatureError, WrongSiteError, ConflictError,
            UsageError, MediaError: see the module docstring.
        """
        response = self._send("GET", path)
        if response.status_code != 200:
            raise error_of(response)
        return response.content

    def post_document(self, path: str, doc: SignedDocument) -> dict[str, Any]:
        """POSTs a signed document (report, metrics) as JSON; returns the spoke's answer.

        Raises:
            the errors of :meth:`get`.
        """
        body = json.dumps(doc.to_dict(), sort_keys=True).encode()
        response = self._send("POST", path, body)
        if not 200 <= response.status_code < 300:
            raise error_of(response)
        try:
            answer = response.json()
        except ValueError:
            raise MediaError("the spoke's answer is not JSON") from None
        return answer if isinstance(answer, dict) else {"answer": answer}

    def open(self, url: str) -> httpx.Response:
        """Sends a signed GET for ``url`` and returns the response with its body unread.

        The caller reads (``iter_bytes``) and closes the response.

        Raises:
            MediaError: the spoke is unreachable.
        """
        return self._send("GET", url, stream=True)

    def close(self) -> None:
        """Closes the connection pool."""
        self._http.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _send(
        self, method: str, path: str, body: bytes = b"", stream: bool = False
    ) -> httpx.Response:
        request = self._http.build_request(method, path, content=body or None)
        signed_path = request.url.raw_path.decode("ascii")
        request.headers.update(
            sign_request(self._signer, self.node_id, method, signed_path, body, self._clock.now())
        )
        if body:
            request.headers["Content-Type"] = "application/json"
        try:
            return self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise MediaError(
                f"spoke unreachable at {self.base_url} ({type(exc).__name__})",
                hint="check the spoke is running (airlock spoke serve) and the URL and "
                "TLS certificate in the bootstrap file",
            ) from None


def error_of(response: httpx.Response) -> AirlockError:
    """The Airlock error for a refused request, with the spoke's message and hint."""
    message, hint = f"the spoke answered HTTP {response.status_code}", ""
    try:
        body = response.json()
        if isinstance(body, dict):
            message = str(body.get("message") or message)
            hint = str(body.get("hint") or "")
    except ValueError:
        pass
    status = response.status_code
    if status == 404:
        return NotFoundError(message, hint)
    if status == 401:
        return SignatureError(message, hint)
    if status == 403:
        return WrongSiteError(message, hint)
    if status == 409:
        return ConflictError(message, hint)
    if 400 <= status < 500:
        return UsageError(message, hint)
    return MediaError(message, hint or "the spoke could not answer; try again later")


class SignedFetcher(FetcherInterface):
    """A ``tuf.ngclient`` fetcher whose every download is a signed node request."""

    def __init__(self, client: NodeClient) -> None:
        self._client = client

    def _fetch(self, url: str) -> Iterator[bytes]:
        response = self._client.open(url)
        if response.status_code != 200:
            try:
                response.read()
                message = error_of(response).message
            finally:
                response.close()
            raise DownloadHTTPError(message, response.status_code)
        return _chunks(response)


def _chunks(response: httpx.Response) -> Iterator[bytes]:
    try:
        yield from response.iter_bytes(CHUNK_BYTES)
    finally:
        response.close()
