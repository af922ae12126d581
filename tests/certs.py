"""Certificates made at run time: a private CA and a server certificate for this machine.

::

    pki = make_pki(tmp_path)            # CA, server cert for 127.0.0.1/localhost, client cert
    pki.ca, pki.server_cert, pki.server_key, pki.client_cert, pki.client_key  # file paths

A second, unrelated CA (``make_pki(dir, name="other")``) stands for "a CA the client does not
trust"; ``hosts`` names whom the server certificate is for, so a wrong host name can be staged
by issuing it for another name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_pki(directory: Path, *, name: str = "test", hosts: tuple[str, ...] = LOCAL_HOSTS) -> Pki:
    """Write a CA, a server certificate for ``hosts`` and a client certificate as PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name=f"mirrorhub {name} CA")
    server = ca.issue_cert(*hosts)
    client = ca.issue_cert(f"{name}-client@mirrorhub.test")
    pki = Pki(
        ca=directory / f"{name}-ca.pem",
        server_cert=directory / f"{name}-server.pem",
        server_key=directory / f"{name}-server.key",
        client_cert=directory / f"{name}-client.pem",
        client_key=directory / f"{name}-client.key",
    )
    ca.cert_pem.write_to_path(str(pki.ca))
    # The chain (leaf first), as brokers expect in their certfile.
    pki.server_cert.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(pki.server_key))
    pki.client_cert.write_bytes(b"".join(blob.bytes() for blob in client.cert_chain_pems))
    client.private_key_pem.write_to_path(str(pki.client_key))
    return pki
