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
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from archive.errors import BadFileFormat, InexistentItem, ParameterOutOfRange
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


def _boolean(obj: dict, name: str, default: bool) -> bool:
    if name not in obj:
        return default
    if not isinstance(obj[name], bool):
        raise BadFileFormat(f"Boolean value expected in field: {name}")
    return obj[name]


def _manufacturer(text: str) -> str:
    if text not in MANUFACTURERS:
        raise ParameterOutOfRange(f"Unknown modality manufacturer: {text}")
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
        raise BadFileFormat("Integer value expected in field: Port")
    storage_commitment = _boolean(value, "AllowStorageCommitment", True)
    timeout = value.get("Timeout", 0)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
        raise BadFileFormat("Unsigned integer value expected in field: Timeout")
    method = _string(value, "RetrieveMethod", "")
    if method and method not in RETRIEVE_METHODS:
        raise ParameterOutOfRange(f"Unknown retrieve method: {method}")
    return Modality(
        aet=aet, host=host, port=_port(value["Port"]),
        manufacturer=_manufacturer(_string(value, "Manufacturer", "Generic")),
        allow_echo=_boolean(value, "AllowEcho", True), allow_find=_boolean(value, "AllowFind", True),
        allow_find_worklist=_boolean(value, "AllowFindWorklist", True), allow_get=_boolean(value, "AllowGet", True),
        allow_move=_boolean(value, "AllowMove", True), allow_store=_boolean(value, "AllowStore", True),
        allow_n_action=_boolean(value, "AllowNAction", storage_commitment),
        allow_event_report=_boolean(value, "AllowEventReport", storage_commitment),
        allow_transcoding=_boolean(value, "AllowTranscoding", True),
        use_dicom_tls=_boolean(value, "UseDicomTls", False), local_aet=_string(value, "LocalAet", ""),
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


def peer_parse(value) -> Peer:
    """A peer from its configuration: ``[Url(, Username, Password)]`` or an object."""
    if isinstance(value, list):
        if len(value) not in (1, 3) or not all(isinstance(v, str) for v in value):
            raise BadFileFormat("Bad file format for a peer")
        url = value[0]
        username, password = (value[1], value[2]) if len(value) == 3 else ("", "")
        return Peer(url=_slash(url), username=username, password=password)
    if not isinstance(value, dict):
        raise BadFileFormat("Bad file format for a peer")
    headers = value.get("HttpHeaders", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise BadFileFormat("Bad file format for the HttpHeaders of a peer")
    timeout = value.get("Timeout", 0)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
        raise BadFileFormat("Unsigned integer value expected in field: Timeout")
    return Peer(url=_slash(_string(value, "Url")), username=_string(value, "Username", ""),
                password=_string(value, "Password", ""), http_headers=dict(headers),
                certificate_file=_string(value, "CertificateFile", ""),
                certificate_key_file=_string(value, "CertificateKeyFile", ""),
                certificate_key_password=_string(value, "CertificateKeyPassword", ""),
                pkcs11=_boolean(value, "Pkcs11", False), timeout=timeout)


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def peer_json(p: Peer) -> dict:
    """As GET /peers?expand shows it: no password, the header names only (Orthanc 1.10.1)."""
    out = {"HttpHeaders": sorted(p.http_headers), "Pkcs11": p.pkcs11, "Url": p.url}
    if p.username:
        out["Username"] = p.username
    if p.certificate_file:
        out["CertificateFile"] = p.certificate_file
    if p.timeout:
        out["Timeout"] = p.timeout
    return dict(sorted(out.items()))


def _peer_config(p: Peer) -> dict:
    """The full object (password included) kept in the database."""
    return {"Url": p.url, "Username": p.username, "Password": p.password, "HttpHeaders": p.http_headers,
            "CertificateFile": p.certificate_file, "CertificateKeyFile": p.certificate_key_file,
            "CertificateKeyPassword": p.certificate_key_password, "Pkcs11": p.pkcs11, "Timeout": p.timeout}


# -- the registries -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Kind:
    key: str               # GlobalProperty key
    option: str            # configuration option with the entries
    in_database: str       # configuration option: only the database counts
    parse: object
    store: object          # entry -> JSON kept in the database


MODALITIES = _Kind("Modalities", "DicomModalities", "DicomModalitiesInDatabase", modality_parse, modality_json)
PEERS = _Kind("Peers", "OrthancPeers", "OrthancPeersInDatabase", peer_parse, _peer_config)


def _entries(kind: _Kind) -> dict:
    stored = GlobalProperty.objects.filter(key=kind.key).values_list("value", flat=True).first()
    if stored is not None:
        raw = json.loads(stored)
    elif settings.ORTHANC.get(kind.in_database, False):
        raw = {}
    else:
        raw = settings.ORTHANC.get(kind.option) or {}
    return {name: kind.parse(value) for name, value in sorted(raw.items())}


def _write(kind: _Kind, entries: dict) -> None:
    GlobalProperty.objects.update_or_create(
        key=kind.key, defaults={"value": json.dumps({n: kind.store(e) for n, e in sorted(entries.items())})})


def _update(kind: _Kind, name: str, entry) -> None:
    with transaction.atomic():  # read and write under the write lock: two PUTs at once both count
        GlobalProperty.objects.select_for_update().filter(key=kind.key).first()
        entries = _entries(kind)
        if entry is None:
            entries.pop(name, None)
        else:
            entries[name] = entry
        _write(kind, entries)


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
    _update(MODALITIES, name, modality)


def modality_delete(name: str) -> None:
    if name not in modalities_all():
        raise InexistentItem(f"Unknown DICOM modality with symbolic name: {name}")
    _update(MODALITIES, name, None)


def modalities_for_caller(aet: str, host: str) -> list[tuple[str, Modality]]:
    """The modalities a remote SCU may be (by AET, and by host with DicomCheckModalityHost), for the SCP's
    permission checks; several entries may share an AET."""
    check_host = bool(settings.ORTHANC.get("DicomCheckModalityHost", False))
    return [(name, m) for name, m in modalities_all().items()
            if m.aet == aet and (not check_host or m.host == host)]


def modality_by_aet(aet: str) -> tuple[str, Modality] | None:
    """The modality a C-MOVE names as its destination (Orthanc looks the AET up, first match)."""
    return next(((n, m) for n, m in modalities_all().items() if m.aet == aet), None)


def peers_all() -> dict[str, Peer]:
    return _entries(PEERS)


def peer_get(name: str) -> Peer:
    found = peers_all().get(name)
    if found is None:
        raise InexistentItem(f"No peer with symbolic name: {name}")
    return found


def peer_set(name: str, peer: Peer) -> None:
    _update(PEERS, name, peer)


def peer_delete(name: str) -> None:
    if name not in peers_all():
        raise InexistentItem(f"Unknown Orthanc peer with symbolic name: {name}")
    _update(PEERS, name, None)


__all__ = ["Modality", "Peer", "modalities_all", "modalities_for_caller", "modality_by_aet",
           "modality_delete", "modality_get", "modality_json", "modality_parse", "modality_set", "peer_delete",
           "peer_get", "peer_json", "peer_parse", "peer_set", "peers_all", "registry_reset"]
