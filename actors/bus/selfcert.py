"""--auto-tls: a self-signed certificate, made once, as etcd's transport.SelfCert makes it.

Layout (etcd's): <data-dir>/fixtures/client/cert.pem and key.pem. Files already there
are used as they are, so a restarted member keeps its certificate and clients that
pinned it keep working. The certificate is its own CA (etcd's template: IsCA, server
auth) and names every host the member listens on, so a client told to trust it
verifies the hostname too. Its key is ECDSA P-256, not etcd's P-521: grpc's TLS
library (BoringSSL, in petcdctl and every grpcio client) does not offer P-521
signatures, and the handshake fails with "no suitable signature algorithm".
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAYS_PER_YEAR = 365  # etcd's: validity years * 365 * 24h


def self_cert(directory: Path, hosts: list[str], validity_years: int) -> tuple[Path, Path, bool]:
    """(cert path, key path, made now) for a self-signed certificate in `directory`."""
    assert validity_years > 0, "etcd refuses a validity of 0 years"
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path, False
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(key, hosts, validity_years)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    # The key is written readable by the owner alone, as etcd's 0600.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as key_file:
        key_file.write(key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.TraditionalOpenSSL,
                                         serialization.NoEncryption()))
    return cert_path, key_path, True


def _certificate(key: ec.EllipticCurvePrivateKey, hosts: list[str],
                 validity_years: int) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "etcd")])
    return (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(secrets.randbits(128))
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=validity_years * DAYS_PER_YEAR))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            # etcd's usages plus certificate signing: OpenSSL, unlike Go, refuses a CA
            # certificate without it as the anchor that signs itself.
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_encipherment=True, crl_sign=True,
                content_commitment=False, data_encipherment=False, key_agreement=False,
                key_cert_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
            .sign(key, hashes.SHA256()))


def _names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names
