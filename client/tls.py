"""TLS for client connections, with etcdctl 3.4's flags and rules.

    --cacert, --cert, --key      any of them: TLS (clientv3's TLSInfo.ClientConfig)
    --insecure-transport=false   TLS even without them (system CAs)
    --insecure-skip-tls-verify   do not check the server's certificate or name; only
                                 with one of the above (etcdctl applies it to a TLS
                                 configuration it made, none for a bare https:// URL)
    https://host:port            always TLS; http://host:port never (clientv3's processCreds)

grpcio cannot skip verification, so --insecure-skip-tls-verify trusts whatever
certificate the server presents at dial time, for the name it carries: the same
protection as Go's InsecureSkipVerify (none) for a self-signed certificate such as
--auto-tls makes. A server certificate signed by an unknown CA is still refused.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class TlsOptions:
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure_transport: bool = True   # etcdctl's default: plain unless told otherwise
    insecure_skip_verify: bool = False

    def configured(self) -> bool:
        return bool(self.ca_file or self.cert_file or self.key_file) or not self.insecure_transport

    def secure(self, endpoint: str) -> bool:
        """Whether `endpoint`, as the user wrote it, is dialled with TLS."""
        if endpoint.startswith("https://"):
            return True
        if endpoint.startswith("http://"):
            return False
        return self.configured()


def credentials(options: TlsOptions, target: str) -> tuple[grpc.ChannelCredentials, tuple[tuple[str, str], ...]]:
    """Channel credentials for `target` (host:port), and channel options they need."""
    key = Path(options.key_file).read_bytes() if options.key_file else None
    cert = Path(options.cert_file).read_bytes() if options.cert_file else None
    if options.insecure_skip_verify and options.configured():
        presented = _presented_certificate(target, options)
        name = _name_in(presented)
        return (grpc.ssl_channel_credentials(presented, key, cert),
                (("grpc.ssl_target_name_override", name),) if name else ())
    root = Path(options.ca_file).read_bytes() if options.ca_file else None
    return grpc.ssl_channel_credentials(root, key, cert), ()


def _presented_certificate(target: str, options: TlsOptions) -> bytes:
    host, _, port = target.rpartition(":")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    if options.cert_file:
        context.load_cert_chain(options.cert_file, options.key_file or None)
    with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S) as raw:
        with context.wrap_socket(raw, server_hostname=host.strip("[]")) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der, "a TLS server always presents a certificate"
    return ssl.DER_cert_to_PEM_cert(der).encode()


def _name_in(pem: bytes) -> str:
    """A name the certificate is valid for: its first DNS or IP name, else its CN."""
    # Imported here: cryptography's x509 costs every petcdctl run ~40 ms, and only a
    # run that skips verification comes here.
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_pem_x509_certificate(pem)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = x509.SubjectAlternativeName([])
    for dns in names.get_values_for_type(x509.DNSName):
        return dns
    for ip in names.get_values_for_type(x509.IPAddress):
        return str(ipaddress.ip_address(ip))
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(common[0].value) if common else ""


PLAIN = TlsOptions()  # etcdctl's defaults: TLS only for https:// endpoints
