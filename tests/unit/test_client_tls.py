"""Client TLS pieces without a member: etcd's checks of the TLS flags, the Go names of
cipher suites, the auto-tls certificate, and the reload of certificate files."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from petcd.actors.bus.selfcert import self_cert
from petcd.actors.bus.tlsfiles import ReloadingTls
from petcd.actors.network.servertls import TlsConfig, build_context
from petcd.client.tls import TlsOptions
from petcd.config import ConfigError, load
from petcd.config.ciphers import openssl_cipher_list

HTTPS = ["--listen-client-urls", "https://127.0.0.1:2379",
         "--advertise-client-urls", "https://127.0.0.1:2379"]


def error_of(*argv: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(list(argv), {})
    return str(info.value)


def test_https_without_certificate_or_auto_tls_is_refused_in_etcds_words():
    assert error_of(*HTTPS) == ("TLS key/cert (--cert-file, --key-file) must be provided for client url "
                                "https://127.0.0.1:2379 with HTTPS scheme")
    assert load([*HTTPS, "--auto-tls"], {}).auto_tls


def test_a_certificate_without_its_key_is_refused():
    assert error_of(*HTTPS, "--cert-file", "c.pem") == "KeyFile and CertFile must both be present[key: , cert: c.pem]"


def test_tls_version_and_cipher_checks_are_etcds():
    assert error_of("--tls-min-version", "TLS1.3", "--tls-max-version", "TLS1.2") == \
        "min version (TLS1.3) is greater than max version (TLS1.2)"
    assert error_of("--tls-min-version", "TLS1.3", "--cipher-suites", "TLS_AES_128_GCM_SHA256") == \
        "cipher suites cannot be configured when only TLS1.3 is enabled"
    assert error_of("--cipher-suites", "TLS_RSA_WITH_AES_128_CBC_SHA,NOPE") == 'unexpected TLS cipher suite "NOPE"'


def test_go_cipher_names_become_openssl_names_and_tls13_ones_configure_nothing():
    names = ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256",
             "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305")
    assert openssl_cipher_list(names) == "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305"


@pytest.fixture
def issued(tmp_path: Path):
    ca = trustme.CA()

    def write(name: str) -> tuple[Path, Path]:
        cert = ca.issue_cert("127.0.0.1", f"{name}.example")
        cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}-key.pem"
        cert.cert_chain_pems[0].write_to_path(str(cert_path))
        cert.private_key_pem.write_to_path(str(key_path))
        return cert_path, key_path
    return write


class Log:
    def __init__(self) -> None:
        self.events: list[str] = []

    def info(self, event: str, **fields: object) -> None:
        self.events.append(event)

    warning = info


def test_changed_files_are_reloaded_once_a_second_at_most_and_bad_ones_keep_the_last_good(
        tmp_path: Path, issued):
    cert, key = issued("first")
    now = [0.0]
    log = Log()
    config = TlsConfig(cert, key, None, False, "", "TLS1.2", "")
    tls = ReloadingTls(lambda: build_context(config), config.files(), "client TLS", log,
                       clock=lambda: now[0])
    first = tls.context()
    cert.write_text("garbage")
    assert tls.context() is first  # not looked at within the second
    now[0] = 1.0
    assert tls.context() is first and log.events == [
        "client TLS files changed but cannot be used; using the previous ones"]
    second_cert, second_key = issued("second")
    cert.write_bytes(second_cert.read_bytes())
    key.write_bytes(second_key.read_bytes())
    now[0] = 2.0
    assert tls.context() is not first and log.events[-1] == "client TLS files reloaded"


def test_auto_tls_certificate_is_made_once_and_names_the_listening_hosts(tmp_path: Path):
    cert, key, made = self_cert(tmp_path / "fixtures" / "client", ["127.0.0.1", "node1"], 1)
    assert made and oct(key.stat().st_mode & 0o777) == "0o600"
    context = build_context(TlsConfig(cert, key, None, False, "", "TLS1.2", ""))
    assert isinstance(context, ssl.SSLContext)
    client = ssl.create_default_context(cafile=str(cert))
    assert client.cert_store_stats()["x509_ca"] == 1  # usable as its own CA
    assert self_cert(tmp_path / "fixtures" / "client", ["other"], 1) == (cert, key, False)


def test_etcdctl_rules_for_when_an_endpoint_uses_tls():
    plain = TlsOptions()
    assert plain.secure("https://a:1") and not plain.secure("a:1") and not plain.secure("http://a:1")
    with_ca = TlsOptions(ca_file="ca.pem")
    assert with_ca.secure("a:1") and not with_ca.secure("http://a:1")
    assert TlsOptions(insecure_transport=False).secure("a:1")
