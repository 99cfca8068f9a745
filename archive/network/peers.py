"""The HTTP client to an Orthanc peer (Orthanc's HttpClient built from WebServiceParameters): the peer's Url,
Username/Password (basic authentication), HttpHeaders, Timeout (else the global "HttpTimeout"), a client
certificate (CertificateFile, CertificateKeyFile, CertificateKeyPassword), and the global "HttpProxy",
"HttpsVerifyPeers" and "HttpsCACertificates".

One ``PeerClient`` keeps one HTTP connection open (requests.Session, keep-alive), so a job that sends a
thousand instances opens one TCP connection, not a thousand.

Errors are Orthanc's, as 1.10.1 answers them (checked live):

- the peer cannot be reached: NetworkProtocol (9, HTTP 500) with curl's message as details
  ("libCURL error: Couldn't connect to server", "libCURL error: Timeout was reached");
- the peer answers an error status: ``PeerAnswer.ok`` is false and each route decides (GET /peers/{id}/system
  forwards 400/403/415/500 bare and reports any other status as BadHttpStatusInRest, 2005; a store fails
  with NetworkProtocol and no details);
- a certificate file that does not exist: InexistentFile (13, HTTP 404), "Cannot open certificate file: ...".
"""

from __future__ import annotations

import gzip
import json
import ssl
from dataclasses import dataclass

import requests
import urllib3
from django.conf import settings
from requests.adapters import HTTPAdapter

from archive.errors import ArchiveError, NetworkProtocolError, NotImplementedYet, OrthancError
from archive.network.registry import Peer, peer_certificate_check


class PeerUnreachable(NetworkProtocolError):
    """The HTTP exchange with the peer failed (no connection, timeout, TLS), or its answer was unusable."""


class PeerStatusError(ArchiveError):
    """Orthanc's RestApiOutput::SignalError with a peer's status: 400, 403, 415 and 500 are sent bare (no
    body), any other status is refused by Orthanc's REST layer (BadHttpStatusInRest, 2005, HTTP 500)."""

    SIGNALED = (400, 403, 415, 500)

    def __init__(self, status: int):
        if status in self.SIGNALED:
            super().__init__()
            self.bare = True
            self._status = status
        else:
            super().__init__(orthanc_error=BAD_HTTP_STATUS_IN_REST)
            self._status = BAD_HTTP_STATUS_IN_REST.http_status

    @property
    def http_status(self) -> int:
        return self._status


BAD_HTTP_STATUS_IN_REST = OrthancError.BAD_HTTP_STATUS_IN_REST


@dataclass(frozen=True)
class PeerAnswer:
    status: int
    content_type: str
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300  # as libcurl's answer is judged by Orthanc's HttpClient


class _CertificateAdapter(HTTPAdapter):
    """Client certificate with a key password: requests' ``cert=`` cannot take the password, an SSL
    context can."""

    def __init__(self, context: ssl.SSLContext):
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["ssl_context"] = self._context
        return super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, *args, **kwargs):
        kwargs["ssl_context"] = self._context
        return super().proxy_manager_for(*args, **kwargs)


def _option(name: str, default):
    return settings.ORTHANC.get(name, default)


def _timeout(peer: Peer) -> float | None:
    seconds = peer.timeout or int(_option("HttpTimeout", 60) or 0)
    return float(seconds) if seconds > 0 else None  # 0: no timeout, as libcurl


def _verify() -> bool | str:
    if not _option("HttpsVerifyPeers", True):
        return False
    return _option("HttpsCACertificates", "") or True


def _ssl_context(peer: Peer, verify: bool | str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    if verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(peer.certificate_file, peer.certificate_key_file or None,
                            peer.certificate_key_password or None)
    return context


class PeerClient:
    """HTTP exchanges with one peer on one kept-alive connection. Use as a context manager."""

    def __init__(self, peer: Peer):
        if peer.pkcs11:
            raise NotImplementedYet("PKCS#11 is not supported for Orthanc peers")
        peer_certificate_check(peer)
        self.peer = peer
        # libcurl takes a URL without scheme as http://, and so Orthanc's peers ("127.0.0.1:8042")
        self.base_url = peer.url if "://" in peer.url else f"http://{peer.url}"
        self.timeout = _timeout(peer)
        session = requests.Session()
        session.trust_env = False  # the configuration decides (HttpProxy), not the environment or ~/.netrc
        session.headers.update({"Accept": "*/*", **peer.http_headers})
        if peer.username or peer.password:
            session.auth = (peer.username, peer.password)
        verify = _verify()
        session.verify = verify
        proxy = _option("HttpProxy", "")
        if proxy:
            url = proxy if "://" in proxy else f"http://{proxy}"
            session.proxies = {"http": url, "https": url}
        if peer.certificate_file:
            session.mount("https://", _CertificateAdapter(_ssl_context(peer, verify)))
        self.session = session

    def __enter__(self) -> PeerClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    def _call(self, method: str, path: str, **kwargs) -> PeerAnswer:
        try:
            response = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
            body = response.content
        except requests.Timeout:
            raise PeerUnreachable("libCURL error: Timeout was reached") from None
        except requests.exceptions.SSLError:
            raise PeerUnreachable("libCURL error: SSL connect error") from None
        except requests.ConnectionError as exc:
            if _unresolved(exc):
                raise PeerUnreachable("libCURL error: Couldn't resolve host name") from None
            raise PeerUnreachable("libCURL error: Couldn't connect to server") from None
        except requests.RequestException as exc:
            raise PeerUnreachable(f"libCURL error: {type(exc).__name__}") from None
        return PeerAnswer(response.status_code, response.headers.get("Content-Type", ""), body)

    def get(self, path: str) -> PeerAnswer:
        return self._call("GET", path)

    def post(self, path: str, data: bytes, *, content_type: str = "application/dicom",
             compress: bool = False) -> PeerAnswer:
        headers = {"Content-Type": content_type}
        if compress:
            headers["Content-Encoding"] = "gzip"  # understood by Orthanc >= 1.6.0
        return self._call("POST", path, data=data, headers=headers)


def _unresolved(exc: requests.ConnectionError) -> bool:
    """Whether a connection failed on the peer's host name (libcurl has an error of its own for it)."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None    # urllib3's MaxRetryError
    return isinstance(reason, urllib3.exceptions.NameResolutionError)


def dicom_gzip(data: bytes) -> bytes:
    """The body of a compressed transfer ("Compress": true): gzip at the highest level, as Orthanc."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def peer_system(*, peer: Peer) -> bytes:
    """GET /system of the peer: its answer's bytes as received, or the peer's status signalled."""
    with PeerClient(peer) as client:
        answer = client.get("system")
    if not answer.ok:
        raise PeerStatusError(answer.status)
    return answer.body


def peer_store_straight(*, peer: Peer, name: str, data: bytes) -> object:
    """POST the bytes to the peer's /instances; its JSON answer. Any failure of the peer (an error status, an
    answer that is not JSON) is Orthanc's NetworkProtocol "Cannot send DICOM to remote peer: {name}"."""
    with PeerClient(peer) as client:
        answer = client.post("instances", data)
    try:
        if not answer.ok:
            raise ValueError
        return json.loads(answer.body)
    except ValueError:
        raise PeerUnreachable(f"Cannot send DICOM to remote peer: {name}") from None


__all__ = ["BAD_HTTP_STATUS_IN_REST", "PeerAnswer", "PeerClient", "PeerStatusError", "PeerUnreachable",
           "dicom_gzip", "peer_store_straight", "peer_system"]
