"""Where the HTTP server listens: HttpBindAddresses (Orthanc 1.12.10) on HttpPort, for ``manage.py serve`` and
for the Procfile's gunicorn processes (explorer/gunicorn_conf.py). No Django set-up needed."""

from __future__ import annotations

import ipaddress

from django.core.management.base import CommandError


def http_binds(cfg: dict) -> list[str]:
    """gunicorn's --bind of each address of HttpBindAddresses, on HttpPort; every interface without it.
    CommandError on anything but a list of IP addresses."""
    port = int(cfg.get("HttpPort", 8042))
    addresses = cfg.get("HttpBindAddresses") or []
    if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        raise CommandError("HttpBindAddresses must be a list of IP addresses")
    binds = []
    for text in addresses:
        try:
            address = ipaddress.ip_address(text.strip())
        except ValueError:
            raise CommandError(f"HttpBindAddresses: not an IP address: {text!r}") from None
        binds.append(f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}")
    return binds or [f"0.0.0.0:{port}"]
