"""--cipher-suites: Go's cipher suite names (what etcd accepts) and OpenSSL's for them.

etcd looks each name up in Go's crypto/tls (tlsutil.GetCipherSuite) and refuses the
first unknown one. petcd serves TLS with OpenSSL, which names the same suites
differently. The TLS 1.3 suites are accepted but configure nothing: Go ignores
CipherSuites for TLS 1.3, and OpenSSL's cipher list applies only up to TLS 1.2 too.
"""

from __future__ import annotations

from .errors import ConfigError, quote

TLS13_ONLY = ""  # the OpenSSL name of a suite that cannot be configured

GO_TO_OPENSSL: dict[str, str] = {
    # tls.CipherSuites()
    "TLS_AES_128_GCM_SHA256": TLS13_ONLY,
    "TLS_AES_256_GCM_SHA384": TLS13_ONLY,
    "TLS_CHACHA20_POLY1305_SHA256": TLS13_ONLY,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    # tls.InsecureCipherSuites() (OpenSSL 3 may have dropped some: then they match nothing)
    "TLS_RSA_WITH_RC4_128_SHA": "RC4-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": "ECDHE-ECDSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": "ECDHE-RSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    # etcd's own aliases (tlsutil.GetCipherSuite)
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
}


def check_cipher_suites(names: tuple[str, ...]) -> None:
    """etcd's refusal of the first name Go does not know."""
    for name in names:
        if name not in GO_TO_OPENSSL:
            raise ConfigError(f"unexpected TLS cipher suite {quote(name)}")


def openssl_cipher_list(names: tuple[str, ...]) -> str:
    """The OpenSSL cipher string for `names` ("" when only TLS 1.3 suites are named)."""
    check_cipher_suites(names)
    return ":".join(GO_TO_OPENSSL[name] for name in names if GO_TO_OPENSSL[name])
