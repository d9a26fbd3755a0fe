"""TLS on the client URLs: the SSLContext each new connection's handshake uses.

A certificate renewed on disk is served without a restart (actors/bus/tlsfiles.py).

Which clients must show a certificate is etcd's rule (TLSInfo.ServerConfig): with
--client-cert-auth or a --trusted-ca-file, one signed by that CA (or by the system's
CAs when no file is given); the handshake fails otherwise.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from petcd.config import Settings
from petcd.config.ciphers import openssl_cipher_list

from petcd.actors.bus.selfcert import self_cert
from petcd.actors.bus.tlsfiles import ReloadingTls, set_versions

# The server's preference, which OpenSSL follows: a client that can speak HTTP/1.1
# (curl, browsers) gets it and reaches the JSON gateway; gRPC clients offer only h2.
# The front door then routes on the first bytes either way (frontdoor.py).
ALPN_PROTOCOLS = ["http/1.1", "h2"]


@dataclass(frozen=True, slots=True)
class TlsConfig:
    cert_file: Path
    key_file: Path
    trusted_ca_file: Path | None
    verify_clients: bool   # a client certificate is required and checked
    cipher_list: str       # OpenSSL's names; "" = OpenSSL's defaults
    min_version: str       # "TLS1.2" | "TLS1.3"
    max_version: str       # "" = the highest OpenSSL has

    def files(self) -> tuple[Path, ...]:
        ca = (self.trusted_ca_file,) if self.trusted_ca_file else ()
        return (self.cert_file, self.key_file, *ca)


def client_tls_config(settings: Settings, log: Any) -> TlsConfig | None:
    """The TLS of the https client URLs (None without any), making --auto-tls's
    certificate if needed. Flag combinations were checked in config/settings.py."""
    urls = (*settings.listen_client_urls, *settings.listen_client_http_urls)
    if not any(url.scheme == "https" for url in urls):
        return None
    common = dict(cipher_list=openssl_cipher_list(settings.cipher_suites),
                  min_version=settings.tls_min_version, max_version=settings.tls_max_version)
    if settings.cert_file is not None and settings.key_file is not None:
        if settings.auto_tls:
            log.warning("ignoring client auto TLS since certs given")
        return TlsConfig(settings.cert_file, settings.key_file, settings.trusted_ca_file,
                         settings.client_cert_auth or settings.trusted_ca_file is not None, **common)
    assert settings.auto_tls, "settings let https through without certificate or --auto-tls"
    cert, key, made = self_cert(settings.data_dir / "fixtures" / "client",
                                [url.host for url in urls], settings.self_signed_cert_validity_years)
    log.warning("automatically generated client certificate" if made else "using auto TLS certificate",
                cert_file=str(cert))
    if settings.client_cert_auth or settings.trusted_ca_file is not None:
        # etcd replaces the whole TLS configuration with the self-signed one.
        log.warning("--client-cert-auth and --trusted-ca-file are ignored with auto TLS")
    return TlsConfig(cert, key, None, False, **common)


def build_context(config: TlsConfig) -> ssl.SSLContext:
    """A server context; raises OSError or ssl.SSLError for unusable files."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    set_versions(context, config.min_version, config.max_version)
    if config.cipher_list:
        context.set_ciphers(config.cipher_list)
    context.load_cert_chain(config.cert_file, config.key_file)
    if config.verify_clients:
        context.verify_mode = ssl.CERT_REQUIRED
        if config.trusted_ca_file is not None:
            context.load_verify_locations(config.trusted_ca_file)
        else:
            context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    context.set_alpn_protocols(ALPN_PROTOCOLS)
    return context


def server_tls(config: TlsConfig, log: Any) -> ReloadingTls:
    """The client URLs' context, reloaded when the files change (tlsfiles.py)."""
    return ReloadingTls(lambda: build_context(config), config.files(), "client TLS", log)
