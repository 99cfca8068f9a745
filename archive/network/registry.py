"""The known DICOM modalities and Orthanc peers: from the configuration ("DicomModalities", "OrthancPeers") and
from the REST API (PUT/DELETE /modalities/{id}, /peers/{id}), as Orthanc keeps them.

Every process must see the same registry (several HTTP workers, the SCP, the job workers), so a change made
through the REST API is kept in the database (GlobalProperty "Modalities" / "Peers": the whole registry as
Orthanc's JSON). Without "DicomModalitiesInDatabase" ("OrthancPeersInDatabase"), Orthanc keeps such changes
in memory until it stops: ``registry_reset()`` (called by ``serve`` at start) forgets them, so the
configuration file is the registry again. With it, the configuration's entries are ignored and only the
database counts, as in Orthanc.

The JSON shapes and errors were checked against Orthanc 1.10.1 (RetrieveMethod is 1.12.6).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from archive.body_fields import boolean_field, unsigned_field
from archive.errors import (
    ArchiveError,
    BadFileFormat,
    InexistentItem,
    OrthancError,
    ParameterOutOfRange,
    UnknownResource,
)
from archive.models import GlobalProperty

MANUFACTURERS = ("Generic", "GenericNoWildcardInDates", "GenericNoUniversalWildcard", "Vitrea", "GE")
RETRIEVE_METHODS = ("C-MOVE", "C-GET")


@dataclass(frozen=True)
class Modality:
    aet: str
    host: str
    port: int
    manufacturer: str = "Generic"
    allow_echo: bool = True
    allow_find: bool = True
    allow_find_worklist: bool = True
    allow_get: bool = True
    allow_move: bool = True
    allow_store: bool = True
    allow_n_action: bool = True
    allow_event_report: bool = True
    allow_transcoding: bool = True
    use_dicom_tls: bool = False
    local_aet: str = ""
    timeout: int = 0
    retrieve_method: str = ""  # "" means the global DicomDefaultRetrieveMethod


@dataclass(frozen=True)
class Peer:
    url: str
    username: str = ""
    password: str = ""
    http_headers: dict = field(default_factory=dict)
    certificate_file: str = ""
    certificate_key_file: str = ""
    certificate_key_password: str = ""
    pkcs11: bool = False
    timeout: int = 0
    user_properties: dict = field(default_factory=dict)  # other keys of the object, kept as strings


# -- parsing (Orthanc's RemoteModalityParameters::Unserialize / WebServiceParameters) ----------------------------

def _port(value) -> int:
    if isinstance(value, bool):
        raise BadFileFormat()
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise BadFileFormat() from None
    if not 1 <= port <= 65534:
        raise ParameterOutOfRange(f"A TCP port number must be in range [1..65534], but found: {port}")
    return port


def _string(obj: dict, name: str, default: str | None = None) -> str:
    if name not in obj:
        if default is None:
            raise BadFileFormat(f"String value expected in field: {name}")
        return default
    if not isinstance(obj[name], str):
        raise BadFileFormat(f"String value expected in field: {name}")
    return obj[name]


def _manufacturer(text: str) -> str:
    if text not in MANUFACTURERS:
        raise ParameterOutOfRange(f'Unknown modality manufacturer: "{text}"')
    return text


def modality_parse(value) -> Modality:
    """A modality from its configuration: ``[AET, Host, Port(, Manufacturer)]`` or an object."""
    if isinstance(value, list):
        if len(value) not in (3, 4) or not all(isinstance(v, str) for v in value[:2]):
            raise BadFileFormat()
        return Modality(aet=value[0], host=value[1], port=_port(value[2]),
                        manufacturer=_manufacturer(value[3]) if len(value) == 4 else "Generic")
    if not isinstance(value, dict):
        raise BadFileFormat()
    aet, host = _string(value, "AET"), _string(value, "Host")
    if "Port" not in value:
        raise BadFileFormat()
    storage_commitment = boolean_field(value, "AllowStorageCommitment", True)
    timeout = unsigned_field(value, "Timeout", 0)
    method = _string(value, "RetrieveMethod", "")
    if method and method not in RETRIEVE_METHODS:
        raise ParameterOutOfRange(f"Unknown retrieve method: {method}")
    return Modality(
        aet=aet, host=host, port=_port(value["Port"]),
        manufacturer=_manufacturer(_string(value, "Manufacturer", "Generic")),
        allow_echo=boolean_field(value, "AllowEcho", True), allow_find=boolean_field(value, "AllowFind", True),
        allow_find_worklist=boolean_field(value, "AllowFindWorklist", True), allow_get=boolean_field(value, "AllowGet", True),
        allow_move=boolean_field(value, "AllowMove", True), allow_store=boolean_field(value, "AllowStore", True),
        allow_n_action=boolean_field(value, "AllowNAction", storage_commitment),
        allow_event_report=boolean_field(value, "AllowEventReport", storage_commitment),
        allow_transcoding=boolean_field(value, "AllowTranscoding", True),
        use_dicom_tls=boolean_field(value, "UseDicomTls", False), local_aet=_string(value, "LocalAet", ""),
        timeout=timeout, retrieve_method=method)


def modality_json(m: Modality) -> dict:
    """As GET /modalities?expand and /modalities/{id}/configuration show it."""
    out = {
        "AET": m.aet, "AllowEcho": m.allow_echo, "AllowEventReport": m.allow_event_report,
        "AllowFind": m.allow_find, "AllowFindWorklist": m.allow_find_worklist, "AllowGet": m.allow_get,
        "AllowMove": m.allow_move, "AllowNAction": m.allow_n_action, "AllowStore": m.allow_store,
        "AllowTranscoding": m.allow_transcoding, "Host": m.host, "LocalAet": m.local_aet,
        "Manufacturer": m.manufacturer, "Port": m.port, "Timeout": m.timeout, "UseDicomTls": m.use_dicom_tls,
    }
    if m.retrieve_method:
        out["RetrieveMethod"] = m.retrieve_method
    return out


_PEER_KEYS = ("CertificateFile", "CertificateKeyFile", "CertificateKeyPassword", "HttpHeaders", "Password",
              "Pkcs11", "Url", "URL", "Username", "Timeout")


def _peer_url(url: str) -> str:
    """WebServiceParameters::SetUrl: only HTTP(S) when a scheme is given; a trailing slash added."""
    if "://" in url and not url.startswith(("http://", "https://")):
        raise BadFileFormat(f"Bad URL: {url}")
    if not url:
        raise BadFileFormat("Empty URL")
    return url if url.endswith("/") else url + "/"


def _peer_string(obj: dict, name: str) -> str:
    value = obj.get(name, "")
    if not isinstance(value, str):
        raise BadFileFormat()
    return value


def _peer_credentials(username: str, password: str) -> tuple[str, str]:
    if not username and password:
        raise BadFileFormat()
    return username, password


def _peer_property(name: str, value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    raise BadFileFormat(f"User-defined properties associated with a Web service must be strings: {name}")


def peer_parse(value) -> Peer:
    """A peer from its configuration or a PUT body, as Orthanc's WebServiceParameters::Unserialize:
    ``[Url]``, ``[Url, Username, Password]`` or an object (Url or URL, Username, Password, HttpHeaders,
    CertificateFile/KeyFile/KeyPassword, Pkcs11, Timeout, and user properties). Errors as Orthanc 1.10.1's
    (most are a bare "Bad file format")."""
    if isinstance(value, list):
        if len(value) not in (1, 3) or not all(isinstance(v, str) for v in value):
            raise BadFileFormat()
        username, password = _peer_credentials(*value[1:]) if len(value) == 3 else ("", "")
        return Peer(url=_peer_url(value[0]), username=username, password=password)
    if not isinstance(value, dict):
        raise BadFileFormat()
    url = _peer_string(value, "Url") or _peer_string(value, "URL")
    url = _peer_url(url)
    username, password = _peer_credentials(_peer_string(value, "Username"), _peer_string(value, "Password"))
    certificate = _peer_string(value, "CertificateFile")
    key_file = _peer_string(value, "CertificateKeyFile") if certificate else ""
    key_password = _peer_string(value, "CertificateKeyPassword") if certificate else ""
    pkcs11 = value.get("Pkcs11", False)
    if not isinstance(pkcs11, bool):
        raise BadFileFormat()
    headers = value.get("HttpHeaders", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise BadFileFormat()
    properties = {k: _peer_property(k, v) for k, v in value.items() if k not in _PEER_KEYS}
    timeout = unsigned_field(value, "Timeout", 0)
    return Peer(url=url, username=username, password=password, http_headers=dict(headers),
                certificate_file=certificate, certificate_key_file=key_file,
                certificate_key_password=key_password, pkcs11=pkcs11, timeout=timeout,
                user_properties=properties)


def peer_json(p: Peer) -> dict:
    """As GET /peers?expand and /peers/{id}/configuration show it (WebServiceParameters::FormatPublic): no
    secret, Password and the certificate key shown as null, the header names only."""
    out: dict = {"HttpHeaders": sorted(p.http_headers), "Pkcs11": p.pkcs11, "Timeout": p.timeout, "Url": p.url}
    if p.username:
        out.update(Username=p.username, Password=None)
    if p.certificate_file:
        out.update(CertificateFile=p.certificate_file, CertificateKeyFile=None, CertificateKeyPassword=None)
    out.update(p.user_properties)
    return dict(sorted(out.items()))


def _peer_serialized(p: Peer, *, passwords: bool) -> dict:
    """WebServiceParameters::Serialize in its advanced (object) format."""
    out: dict = {"Url": p.url, "Pkcs11": p.pkcs11, "Timeout": p.timeout, "HttpHeaders": dict(p.http_headers)}
    if p.username or p.password:
        out["Username"] = p.username
        if passwords:
            out["Password"] = p.password
    if p.certificate_file:
        out["CertificateFile"] = p.certificate_file
    if p.certificate_key_file:
        out["CertificateKeyFile"] = p.certificate_key_file
    if p.certificate_key_password and passwords:
        out["CertificateKeyPassword"] = p.certificate_key_password
    out.update(p.user_properties)
    return dict(sorted(out.items()))


def peer_job_json(p: Peer) -> list | dict:
    """The peer as an OrthancPeerStore job's Content shows it (Serialize without passwords): ``[Url]`` or
    ``[Url, Username, ""]`` when nothing else is set, else the object. Like Orthanc, the object shows the
    values of the HttpHeaders."""
    advanced = (p.certificate_file or p.certificate_key_file or p.certificate_key_password or p.pkcs11
                or p.http_headers or p.user_properties or p.timeout)
    if advanced:
        return _peer_serialized(p, passwords=False)
    return [p.url, p.username, ""] if p.username or p.password else [p.url]


def peer_config(p: Peer) -> dict:
    """The full object (passwords included) kept in the database; peer_parse reads it back."""
    return _peer_serialized(p, passwords=True)


# -- the registries -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Kind:
    key: str               # GlobalProperty key
    option: str            # configuration option with the entries
    in_database: str       # configuration option: only the database counts
    parse: object
    store: object          # entry -> JSON kept in the database


MODALITIES = _Kind("Modalities", "DicomModalities", "DicomModalitiesInDatabase", modality_parse, modality_json)
PEERS = _Kind("Peers", "OrthancPeers", "OrthancPeersInDatabase", peer_parse, peer_config)


def _stored(key: str) -> str | None:
    # Plain SQL: the DICOM server reads the modalities for every association, and the ORM's query building
    # cost 0.24 ms of it where the statement costs 0.02.
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {quote('value')} FROM {quote(GlobalProperty._meta.db_table)} "
                       f"WHERE {quote('key')} = %s", [key])
        row = cursor.fetchone()
    return None if row is None else row[0]


_NAME = re.compile(r"[A-Za-z0-9_-]*")


def name_check(name: str) -> None:
    """OrthancConfiguration::CheckAlphanumeric, for the names of modalities and peers."""
    if not _NAME.fullmatch(name):
        raise BadFileFormat("Only alphanumeric, dash characters and underscores are allowed in the names of "
                            f"modalities/peers, but found: {name}")


def peer_certificate_check(peer: Peer) -> None:
    """WebServiceParameters::CheckClientCertificate: the files of a client certificate exist."""
    if not peer.certificate_file:
        return
    if not os.path.isfile(peer.certificate_file):
        raise ArchiveError(f"Cannot open certificate file: {peer.certificate_file}",
                           orthanc_error=OrthancError.INEXISTENT_FILE)
    if peer.certificate_key_file and not os.path.isfile(peer.certificate_key_file):
        raise ArchiveError(f"Cannot open key file: {peer.certificate_key_file}",
                           orthanc_error=OrthancError.INEXISTENT_FILE)


def _configured(kind: _Kind) -> dict:
    """The entries of the configuration file, checked as Orthanc checks them when it starts."""
    raw = settings.ORTHANC.get(kind.option) or {}
    if not isinstance(raw, dict):
        raise BadFileFormat(f'Bad format of the "{kind.option}" configuration section')
    entries = {}
    for name, value in sorted(raw.items()):
        name_check(name)
        entries[name] = kind.parse(value)
    return entries


def _entries(kind: _Kind) -> dict:
    stored = _stored(kind.key)
    if stored is not None:
        return {name: kind.parse(value) for name, value in sorted(json.loads(stored).items())}
    if settings.ORTHANC.get(kind.in_database, False):
        return {}
    return _configured(kind)


def registry_check() -> None:
    """At server start, as Orthanc refuses to start: the modalities and peers of the configuration file are
    well formed. Raises BadFileFormat or ParameterOutOfRange with the first fault."""
    for kind in (MODALITIES, PEERS):
        if not settings.ORTHANC.get(kind.in_database, False):
            _configured(kind)


def _update(kind: _Kind, name: str, entry, *, missing: Exception | None = None) -> None:
    """Set (or with ``entry`` None, remove) one entry, reading and writing under the row's lock: two PUTs at
    once both count, and of two DELETEs of one entry one succeeds and the other raises ``missing``, as
    Orthanc's lock on its configuration makes them. The first change creates the row, which no one could lock
    before: a concurrent first change makes the insert fail, and the whole is done again on the row it made."""
    for attempt in range(2):
        try:
            with transaction.atomic():
                row = GlobalProperty.objects.select_for_update().filter(key=kind.key).first()
                entries = _entries(kind)
                if entry is None:
                    if name not in entries:
                        if missing is not None:
                            raise missing
                        return
                    del entries[name]
                else:
                    entries[name] = entry
                value = json.dumps({n: kind.store(e) for n, e in sorted(entries.items())})
                if row is None:
                    GlobalProperty.objects.create(key=kind.key, value=value)
                else:
                    GlobalProperty.objects.filter(key=kind.key).update(value=value)
            return
        except IntegrityError:
            if attempt:
                raise


def registry_reset() -> None:
    """At server start: forget REST changes kept for this run only (the *InDatabase options being false)."""
    for kind in (MODALITIES, PEERS):
        if not settings.ORTHANC.get(kind.in_database, False):
            GlobalProperty.objects.filter(key=kind.key).delete()


def modalities_all() -> dict[str, Modality]:
    return _entries(MODALITIES)


def modality_get(name: str) -> Modality:
    found = modalities_all().get(name)
    if found is None:
        raise InexistentItem(f"No modality with symbolic name: {name}")
    return found


def modality_set(name: str, modality: Modality) -> None:
    name_check(name)
    _update(MODALITIES, name, modality)


def modality_delete(name: str) -> None:
    _update(MODALITIES, name, None, missing=InexistentItem(f"Unknown DICOM modality with symbolic name: {name}"))


def aet_same(a: str, b: str) -> bool:
    """Orthanc's IsSameAETitle: AETs compare without case, unless StrictAetComparison is true."""
    if settings.ORTHANC.get("StrictAetComparison", False):
        return a == b
    return a.strip().upper() == b.strip().upper()


def modalities_for_caller(aet: str, host: str, modalities: dict[str, Modality] | None = None
                          ) -> list[tuple[str, Modality]]:
    """The modalities a remote SCU may be (by AET, and by host with DicomCheckModalityHost), for the SCP's
    permission checks; several entries may share an AET. ``modalities``: as read by ``modalities_all`` a
    moment ago, else read now."""
    check_host = bool(settings.ORTHANC.get("DicomCheckModalityHost", False))
    if modalities is None:
        modalities = modalities_all()
    return [(name, m) for name, m in modalities.items()
            if aet_same(m.aet, aet) and (not check_host or m.host == host)]


def modality_by_aet(aet: str) -> tuple[str, Modality] | None:
    """The modality a C-MOVE names as its destination (Orthanc looks the AET up, first match)."""
    return next(((n, m) for n, m in modalities_all().items() if aet_same(m.aet, aet)), None)


def peers_all() -> dict[str, Peer]:
    return _entries(PEERS)


def peer_get(name: str) -> Peer:
    found = peers_all().get(name)
    if found is None:
        raise UnknownResource(f"No peer with symbolic name: {name}")
    return found


def peer_set(name: str, peer: Peer) -> None:
    name_check(name)
    peer_certificate_check(peer)   # as Orthanc's UpdatePeer: a peer whose certificate is missing is refused
    _update(PEERS, name, peer)


def peer_delete(name: str) -> None:
    _update(PEERS, name, None, missing=InexistentItem(f"Unknown Orthanc peer: {name}"))


__all__ = ["Modality", "Peer", "aet_same", "modalities_all", "modalities_for_caller", "modality_by_aet",
           "modality_delete", "modality_get", "modality_json", "modality_parse", "modality_set", "name_check",
           "peer_certificate_check", "peer_delete", "peer_config", "peer_get", "peer_job_json", "peer_json",
           "peer_parse", "peer_set", "peers_all", "registry_check", "registry_reset"]
