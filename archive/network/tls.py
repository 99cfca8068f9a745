"""DICOM TLS (PS3.15 B.1), configured as Orthanc 1.9+ configures it.

The SCP serves TLS only when ``DicomTlsEnabled`` is true; our SCU uses TLS towards the modalities whose
``UseDicomTls`` is true. Both use the same certificate (``DicomTlsCertificate``), its private key
(``DicomTlsPrivateKey``, a separate PEM file) and the certificates of the peers we trust
(``DicomTlsTrustedCertificates``, concatenated PEM). ``DicomTlsRemoteCertificateRequired`` (default true)
refuses peers without a certificate, as DCMTK's ``--require-peer-cert``; a certificate that is presented must
always chain to a trusted one. Host names are not checked (DICOM peers are known by AET and address, and
DCMTK does not check them either). ``DicomTlsMinimumProtocolVersion`` (1.12.4) and
``DicomTlsCiphersAccepted`` tune the protocol; 0, the default, is the BCP 195 profile: TLS 1.2 or 1.3.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from archive.errors import ArchiveError, OrthancError

# DicomTlsMinimumProtocolVersion -> the lowest version accepted (1: SSL 3, which OpenSSL 3 no longer offers)
_MINIMUM_VERSIONS = {
    0: ssl.TLSVersion.TLSv1_2, 1: ssl.TLSVersion.MINIMUM_SUPPORTED, 2: ssl.TLSVersion.TLSv1,
    3: ssl.TLSVersion.TLSv1_1, 4: ssl.TLSVersion.TLSv1_2, 5: ssl.TLSVersion.TLSv1_3,
}
# BCP 195 (RFC 9325) recommended cipher suites for TLS 1.2; TLS 1.3 suites are OpenSSL's defaults
_BCP195_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                   "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                   "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384")


@dataclass(frozen=True)
class TlsSettings:
    enabled: bool = False                  # DicomTlsEnabled: the SCP serves TLS
    certificate: str = ""
    private_key: str = ""
    trusted: str = ""
    remote_certificate_required: bool = True
    minimum_version: int = 0
    ciphers: tuple[str, ...] = ()

    @classmethod
    def from_configuration(cls) -> TlsSettings:
        cfg = settings.ORTHANC
        version = cfg.get("DicomTlsMinimumProtocolVersion", 0)
        if not isinstance(version, int) or isinstance(version, bool) or version not in _MINIMUM_VERSIONS:
            raise ArchiveError("The configuration option \"DicomTlsMinimumProtocolVersion\" must be an integer "
                               "between 0 and 5", orthanc_error=OrthancError.BAD_FILE_FORMAT)
        ciphers = cfg.get("DicomTlsCiphersAccepted", [])
        if not isinstance(ciphers, list) or not all(isinstance(c, str) for c in ciphers):
            raise ArchiveError("The configuration option \"DicomTlsCiphersAccepted\" must be a list of strings",
                               orthanc_error=OrthancError.BAD_FILE_FORMAT)
        return cls(enabled=bool(cfg.get("DicomTlsEnabled", False)),
                   certificate=str(cfg.get("DicomTlsCertificate", "") or ""),
                   private_key=str(cfg.get("DicomTlsPrivateKey", "") or ""),
                   trusted=str(cfg.get("DicomTlsTrustedCertificates", "") or ""),
                   remote_certificate_required=bool(cfg.get("DicomTlsRemoteCertificateRequired", True)),
                   minimum_version=version, ciphers=tuple(ciphers))


def _missing(option: str) -> ArchiveError:
    return ArchiveError(f"DICOM TLS needs the configuration option \"{option}\" (a PEM file)",
                        orthanc_error=OrthancError.BAD_FILE_FORMAT)


def _context(tls: TlsSettings, purpose: ssl.Purpose) -> ssl.SSLContext:
    """An SSL context with our certificate and the trusted ones; ArchiveError (BadFileFormat, as Orthanc
    fails to start) when a file is missing or unreadable."""
    for option, path in (("DicomTlsCertificate", tls.certificate), ("DicomTlsPrivateKey", tls.private_key),
                         ("DicomTlsTrustedCertificates", tls.trusted)):
        if not path:
            raise _missing(option)
        if not Path(path).is_file():
            raise ArchiveError(f"DICOM TLS: cannot read the file \"{path}\" of option \"{option}\"",
                               orthanc_error=OrthancError.INEXISTENT_FILE)
    server = purpose is ssl.Purpose.CLIENT_AUTH
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.minimum_version = _MINIMUM_VERSIONS[tls.minimum_version]
    try:
        context.load_cert_chain(tls.certificate, tls.private_key)
        context.load_verify_locations(cafile=tls.trusted)
        if tls.ciphers:
            context.set_ciphers(":".join(tls.ciphers))
        elif tls.minimum_version == 0:
            context.set_ciphers(_BCP195_CIPHERS)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ArchiveError(f"DICOM TLS: bad certificate, key or cipher list: {exc}",
                           orthanc_error=OrthancError.BAD_FILE_FORMAT) from exc
    # A presented certificate must always chain to a trusted one; "required" also refuses peers without one
    # (a client can always be asked for one; a server always presents one).
    context.verify_mode = ssl.CERT_REQUIRED if tls.remote_certificate_required or not server else ssl.CERT_OPTIONAL
    return context


def server_context(tls: TlsSettings) -> ssl.SSLContext:
    """The context of our SCP's sockets."""
    return _context(tls, ssl.Purpose.CLIENT_AUTH)


def client_context(tls: TlsSettings) -> ssl.SSLContext:
    """The context of our SCU's sockets towards a modality with UseDicomTls."""
    return _context(tls, ssl.Purpose.SERVER_AUTH)
