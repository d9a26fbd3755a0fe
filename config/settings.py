"""Settings: one member's whole configuration, typed, parsed and checked.

`build_settings` turns merged text values (sources.py) into Settings, raising a
one-line ConfigError for the first bad value, then applies etcd's cross-flag rules
(embed.Config.Validate). The checks that compare --name, --initial-cluster and
--initial-advertise-peer-urls live in bootstrap.py, because etcd makes them only when
a member bootstraps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .authtoken import JwtSettings, parse_auth_token
from .ciphers import check_cipher_suites
from .errors import BadValue, ConfigError
from .flags import FLAGS_BY_NAME
from .sources import Layer, RawValue
from .urls import InitialMember, Url, parse_initial_cluster, parse_url_list
from .values import (
    parse_bool,
    parse_choice,
    parse_duration_seconds,
    parse_int,
    parse_periodic_retention_seconds,
    parse_revision_retention,
)

DEFAULT_QUOTA_BACKEND_BYTES = 2 * 1024**3  # etcd's quota when --quota-backend-bytes is 0
MAX_ELECTION_TIMEOUT_MS = 50_000           # etcd's maxElectionMs
CLUSTER_STATES = ("new", "existing")
COMPACTION_MODES = ("periodic", "revision")
METRICS_LEVELS = ("basic", "extensive")  # etcd's --metrics
TLS_VERSIONS = ("TLS1.2", "TLS1.3")
MIN_BCRYPT_COST, MAX_BCRYPT_COST = 4, 31  # golang.org/x/crypto/bcrypt's
LOG_LEVELS = ("debug", "info", "warn", "error", "panic", "fatal")
LOG_FORMATS = ("json", "console")
DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL_S = 600.0  # etcd's progressReportInterval
MIN_WATCH_PROGRESS_NOTIFY_INTERVAL_S = 0.1        # etcd's minWatchProgressInterval
DEFAULT_LEASE_CHECKPOINT_INTERVAL_S = 300.0       # etcd's defaultLeaseCheckpointInterval


@dataclass(frozen=True, slots=True)
class Settings:
    name: str
    data_dir: Path
    wal_dir: Path    # effective: --wal-dir, or <data-dir>/member/wal
    snap_dir: Path   # <data-dir>/member/snap
    listen_peer_urls: tuple[Url, ...]
    initial_advertise_peer_urls: tuple[Url, ...]
    listen_client_urls: tuple[Url, ...]
    listen_client_http_urls: tuple[Url, ...]    # empty: HTTP on listen_client_urls too
    listen_metrics_urls: tuple[Url, ...]        # /metrics and the probes alone there
    metrics_extensive: bool                     # --metrics extensive: gRPC latency histograms
    advertise_client_urls: tuple[Url, ...]
    initial_cluster: tuple[InitialMember, ...]  # given, or derived as etcd derives it
    initial_cluster_token: str
    initial_cluster_state: str                  # "new" | "existing"
    strict_reconfig_check: bool                 # refuse member changes that risk the quorum
    max_learners: int                           # >= 0
    force_new_cluster: bool                     # restart as a one-member cluster, data kept
    discovery_endpoints: tuple[str, ...]        # v3 discovery service; () = no discovery
    discovery_token: str
    discovery_dial_timeout_s: float             # > 0
    discovery_request_timeout_s: float          # > 0
    initial_corrupt_check: bool                 # compare HashKV with peers before serving
    corrupt_check_time_s: float                 # periodic check between passes; 0 = off
    snapshot_count: int                         # applied entries between snapshots, > 0
    snapshot_catchup_entries: int               # entries kept after a snapshot, > 0
    heartbeat_interval_ms: int                  # > 0
    election_timeout_ms: int                    # 5 * heartbeat_interval_ms <= this <= 50000
    max_snapshots: int                          # 0 = unlimited
    max_wals: int                               # 0 = unlimited
    max_request_bytes: int
    max_txn_ops: int
    quota_backend_bytes: int                    # effective: 0 given means 2 GiB
    auto_compaction_mode: str                   # "periodic" | "revision"
    auto_compaction_retention_seconds: float    # periodic mode only; 0 = off
    auto_compaction_retention_revisions: int    # revision mode only; 0 = off
    watch_progress_notify_interval_s: float     # >= MIN_WATCH_PROGRESS_NOTIFY_INTERVAL_S
    lease_checkpoint_interval_s: float          # > 0
    # Transport security (etcd's names; checked and used by the network actor):
    cert_file: Path | None                      # client URLs' certificate; None: none
    key_file: Path | None
    client_cert_auth: bool
    trusted_ca_file: Path | None
    auto_tls: bool
    self_signed_cert_validity_years: int        # >= 1
    peer_cert_file: Path | None
    peer_key_file: Path | None
    peer_client_cert_auth: bool
    peer_trusted_ca_file: Path | None
    peer_auto_tls: bool
    peer_cert_allowed_cn: str
    peer_cert_allowed_hostname: str
    cipher_suites: tuple[str, ...]              # Go's names; () = the library's defaults
    tls_min_version: str                        # "TLS1.2" | "TLS1.3"
    tls_max_version: str                        # "" (no maximum) | "TLS1.2" | "TLS1.3"
    # Auth:
    auth_token: JwtSettings | None              # --auth-token: None for simple tokens
    bcrypt_cost: int                            # 4..31
    auth_token_ttl_s: int                       # > 0
    log_level: str
    log_format: str
    config_file: Path | None

    def __post_init__(self) -> None:
        assert self.name, "a member needs a name"
        assert self.initial_cluster_state in CLUSTER_STATES, self.initial_cluster_state
        assert self.snapshot_count > 0 and self.snapshot_catchup_entries > 0
        assert 0 < 5 * self.heartbeat_interval_ms <= self.election_timeout_ms <= MAX_ELECTION_TIMEOUT_MS
        assert self.max_snapshots >= 0 and self.max_wals >= 0
        assert self.max_request_bytes > 0 and self.max_txn_ops > 0 and self.quota_backend_bytes > 0
        assert self.auto_compaction_mode in COMPACTION_MODES, self.auto_compaction_mode
        assert self.watch_progress_notify_interval_s >= MIN_WATCH_PROGRESS_NOTIFY_INTERVAL_S
        assert self.lease_checkpoint_interval_s > 0
        assert self.max_learners >= 0 and self.corrupt_check_time_s >= 0
        assert self.discovery_dial_timeout_s > 0 and self.discovery_request_timeout_s > 0
        assert self.auto_compaction_retention_seconds >= 0 and self.auto_compaction_retention_revisions >= 0
        # Only the retention of the chosen mode may be set.
        if self.auto_compaction_mode == "periodic":
            assert self.auto_compaction_retention_revisions == 0
        else:
            assert self.auto_compaction_retention_seconds == 0
        assert self.initial_cluster and all(m.peer_urls for m in self.initial_cluster)
        assert self.listen_peer_urls and self.initial_advertise_peer_urls and self.listen_client_urls
        assert self.tls_min_version in TLS_VERSIONS and self.tls_max_version in ("", *TLS_VERSIONS)

    @property
    def election_ticks(self) -> int:
        """Raft's election timeout counted in heartbeat ticks, as etcd computes it."""
        return self.election_timeout_ms // self.heartbeat_interval_ms


T = TypeVar("T")


class _Reader:
    """Reads one flag's winning value and parses it; a parser's BadValue becomes a
    ConfigError naming the flag and where the value came from."""

    def __init__(self, layer: Layer) -> None:
        self._layer = layer

    def is_set(self, name: str) -> bool:
        return name in self._layer

    def raw(self, name: str) -> RawValue:
        default = FLAGS_BY_NAME[name].default
        return self._layer.get(name) or RawValue(default or "", "")

    def text(self, name: str) -> str:
        return self.raw(name).text

    def parsed(self, name: str, parse: Callable[[str], T]) -> T:
        raw = self.raw(name)
        try:
            return parse(raw.text)
        except BadValue as error:
            raise ConfigError.invalid(name, raw.text, str(error), raw.origin) from None

    def integer(self, name: str, minimum: int) -> int:
        return self.parsed(name, lambda text: parse_int(text, minimum))

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        return self.parsed(name, lambda text: parse_choice(text, choices))

    def urls(self, name: str, bind: bool = False) -> tuple[Url, ...]:
        return self.parsed(name, lambda text: _checked_urls(text, bind))


def _checked_urls(text: str, bind: bool) -> tuple[Url, ...]:
    urls = parse_url_list(text)
    for url in urls:
        if bind and not url.is_bind_address():
            raise BadValue(f"expected IP in URL for binding ({url})")
    return urls


def build_settings(layer: Layer, config_file: Path | None = None) -> Settings:
    """Settings from merged text values (flag > env > file already applied)."""
    read = _Reader(layer)
    name = read.parsed("name", _non_empty)
    data_dir = Path(read.text("data-dir") or f"{name}.petcd")
    advertise_peer_urls = read.urls("initial-advertise-peer-urls")
    heartbeat_ms, election_ms = _raft_timing(read)
    mode = read.choice("auto-compaction-mode", COMPACTION_MODES)
    _check_peer_tls(read)
    settings = Settings(
        name=name,
        data_dir=data_dir,
        wal_dir=Path(read.text("wal-dir") or data_dir / "member" / "wal"),
        snap_dir=data_dir / "member" / "snap",
        listen_peer_urls=read.urls("listen-peer-urls", bind=True),
        initial_advertise_peer_urls=advertise_peer_urls,
        listen_client_urls=read.urls("listen-client-urls", bind=True),
        listen_client_http_urls=(read.urls("listen-client-http-urls", bind=True)
                                 if read.text("listen-client-http-urls") else ()),
        listen_metrics_urls=(read.urls("listen-metrics-urls", bind=True)
                             if read.text("listen-metrics-urls") else ()),
        metrics_extensive=read.choice("metrics", METRICS_LEVELS) == "extensive",
        advertise_client_urls=_advertise_client_urls(read),
        initial_cluster=_initial_cluster(read, name, advertise_peer_urls),
        initial_cluster_token=read.text("initial-cluster-token"),
        initial_cluster_state=read.choice("initial-cluster-state", CLUSTER_STATES),
        strict_reconfig_check=read.parsed("strict-reconfig-check", parse_bool),
        max_learners=read.integer("max-learners", minimum=0),
        force_new_cluster=read.parsed("force-new-cluster", parse_bool),
        discovery_endpoints=_discovery_endpoints(read),
        discovery_token=read.text("discovery-token"),
        discovery_dial_timeout_s=read.parsed("discovery-dial-timeout", _positive_duration_s),
        discovery_request_timeout_s=read.parsed("discovery-request-timeout", _positive_duration_s),
        initial_corrupt_check=read.parsed("experimental-initial-corrupt-check", parse_bool),
        corrupt_check_time_s=read.parsed("experimental-corrupt-check-time", parse_duration_seconds),
        snapshot_count=read.integer("snapshot-count", minimum=1),
        snapshot_catchup_entries=read.integer("snapshot-catchup-entries", minimum=1),
        heartbeat_interval_ms=heartbeat_ms,
        election_timeout_ms=election_ms,
        max_snapshots=read.integer("max-snapshots", minimum=0),
        max_wals=read.integer("max-wals", minimum=0),
        max_request_bytes=read.integer("max-request-bytes", minimum=1),
        max_txn_ops=read.integer("max-txn-ops", minimum=1),
        quota_backend_bytes=read.integer("quota-backend-bytes", minimum=0) or DEFAULT_QUOTA_BACKEND_BYTES,
        auto_compaction_mode=mode,
        auto_compaction_retention_seconds=(
            read.parsed("auto-compaction-retention", parse_periodic_retention_seconds)
            if mode == "periodic" else 0.0),
        auto_compaction_retention_revisions=(
            read.parsed("auto-compaction-retention", parse_revision_retention)
            if mode == "revision" else 0),
        watch_progress_notify_interval_s=_progress_notify_interval_s(read),
        lease_checkpoint_interval_s=(
            read.parsed("experimental-lease-checkpoint-interval", parse_duration_seconds)
            or DEFAULT_LEASE_CHECKPOINT_INTERVAL_S),
        cert_file=_optional_path(read, "cert-file"),
        key_file=_optional_path(read, "key-file"),
        client_cert_auth=read.parsed("client-cert-auth", parse_bool),
        trusted_ca_file=_optional_path(read, "trusted-ca-file"),
        auto_tls=read.parsed("auto-tls", parse_bool),
        self_signed_cert_validity_years=read.integer("self-signed-cert-validity", minimum=1),
        peer_cert_file=_optional_path(read, "peer-cert-file"),
        peer_key_file=_optional_path(read, "peer-key-file"),
        peer_client_cert_auth=read.parsed("peer-client-cert-auth", parse_bool),
        peer_trusted_ca_file=_optional_path(read, "peer-trusted-ca-file"),
        peer_auto_tls=read.parsed("peer-auto-tls", parse_bool),
        peer_cert_allowed_cn=read.text("peer-cert-allowed-cn"),
        peer_cert_allowed_hostname=read.text("peer-cert-allowed-hostname"),
        cipher_suites=tuple(c.strip() for c in read.text("cipher-suites").split(",") if c.strip()),
        tls_min_version=read.choice("tls-min-version", TLS_VERSIONS),
        tls_max_version=read.choice("tls-max-version", ("", *TLS_VERSIONS)),
        auth_token=read.parsed("auth-token", parse_auth_token),
        bcrypt_cost=_bcrypt_cost(read),
        auth_token_ttl_s=read.integer("auth-token-ttl", minimum=1),
        log_level=read.choice("log-level", LOG_LEVELS),
        log_format=read.choice("log-format", LOG_FORMATS),
        config_file=config_file,
    )
    _check_client_tls(settings)
    return settings


def _check_client_tls(settings: Settings) -> None:
    """etcd's checks of the TLS flags (embed.Config.Validate, configureClientListeners),
    in its order and words: a member that would serve https without a certificate,
    or with one it cannot build a TLS configuration from, does not start."""
    versions = {"TLS1.2": 12, "TLS1.3": 13}
    if settings.tls_max_version and versions[settings.tls_min_version] > versions[settings.tls_max_version]:
        raise ConfigError(f"min version ({settings.tls_min_version}) is greater than max version "
                          f"({settings.tls_max_version})")
    if settings.tls_min_version == "TLS1.3" and settings.cipher_suites:
        raise ConfigError("cipher suites cannot be configured when only TLS1.3 is enabled")
    check_cipher_suites(settings.cipher_suites)
    has_files = settings.cert_file is not None or settings.key_file is not None
    for url in (*settings.listen_client_urls, *settings.listen_client_http_urls):
        if url.scheme != "https":
            continue
        if not has_files and not settings.auto_tls:
            raise ConfigError(f"TLS key/cert (--cert-file, --key-file) must be provided for client url "
                              f"{url} with HTTPS scheme")
        if has_files and (settings.cert_file is None or settings.key_file is None):
            raise ConfigError(f"KeyFile and CertFile must both be present[key: {settings.key_file or ''}, "
                              f"cert: {settings.cert_file or ''}]")


def _progress_notify_interval_s(read: _Reader) -> float:
    """etcd keeps its default for 0 and raises anything shorter than 100 ms to it."""
    seconds = read.parsed("experimental-watch-progress-notify-interval", parse_duration_seconds)
    if seconds == 0:
        return DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL_S
    return max(seconds, MIN_WATCH_PROGRESS_NOTIFY_INTERVAL_S)


def _check_peer_tls(read: _Reader) -> None:
    """etcd's listener rule: an https peer URL needs a certificate and key (or
    --peer-auto-tls to make them)."""
    if read.parsed("peer-auto-tls", parse_bool):
        return
    has_files = bool(read.text("peer-cert-file")) and bool(read.text("peer-key-file"))
    for url in read.urls("listen-peer-urls", bind=True):
        if url.scheme == "https" and not has_files:
            raise ConfigError(f"cannot listen on TLS for {url.netloc}: KeyFile and CertFile "
                              "are not presented")


def _optional_path(read: _Reader, name: str) -> Path | None:
    text = read.text(name)
    return Path(text) if text else None


def _bcrypt_cost(read: _Reader) -> int:
    cost = read.integer("bcrypt-cost", minimum=0)
    if not MIN_BCRYPT_COST <= cost <= MAX_BCRYPT_COST:  # etcd's words
        raise ConfigError(f"invalid bcrypt-cost: {cost} (want {MIN_BCRYPT_COST}..{MAX_BCRYPT_COST})")
    return cost


def _positive_duration_s(text: str) -> float:
    seconds = parse_duration_seconds(text)
    if seconds <= 0:
        raise BadValue("must be a positive duration")
    return seconds


def _non_empty(text: str) -> str:
    if not text.strip():
        raise BadValue("must not be empty")
    return text


def _raft_timing(read: _Reader) -> tuple[int, int]:
    """--heartbeat-interval and --election-timeout, checked together in etcd's words."""
    heartbeat_ms = read.integer("heartbeat-interval", minimum=0)
    election_ms = read.integer("election-timeout", minimum=0)
    if heartbeat_ms == 0:
        raise ConfigError(f"--heartbeat-interval must be >0 (set to {heartbeat_ms}ms)")
    if election_ms == 0:
        raise ConfigError(f"--election-timeout must be >0 (set to {election_ms}ms)")
    if 5 * heartbeat_ms > election_ms:
        raise ConfigError(f"--election-timeout[{election_ms}ms] should be at least as 5 times as "
                          f"--heartbeat-interval[{heartbeat_ms}ms]")
    if election_ms > MAX_ELECTION_TIMEOUT_MS:
        raise ConfigError(f"--election-timeout[{election_ms}ms] is too long, and should be set less than "
                          f"{MAX_ELECTION_TIMEOUT_MS}ms")
    return heartbeat_ms, election_ms


def _advertise_client_urls(read: _Reader) -> tuple[Url, ...]:
    # The default advertises localhost; a member told to listen elsewhere would then
    # send clients to the wrong place, so etcd insists on both.
    if read.is_set("listen-client-urls") and not read.is_set("advertise-client-urls"):
        raise ConfigError("--advertise-client-urls is required when --listen-client-urls is set explicitly")
    return read.urls("advertise-client-urls")


def _discovery_endpoints(read: _Reader) -> tuple[str, ...]:
    """--discovery-endpoints, checked with the flags it excludes or needs as etcd checks
    them (embed.Config.Validate): one way to bootstrap, and a token to find the others."""
    text = read.text("discovery-endpoints")
    endpoints = tuple(dict.fromkeys(e.strip() for e in text.split(","))) if text else ()  # etcd's UniqueStrings
    if endpoints and read.is_set("initial-cluster"):
        raise ConfigError('multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", '
                          '"discovery-endpoints" or "discovery-srv"')
    if bool(read.text("discovery-token")) != bool(endpoints):
        raise ConfigError("both --discovery-token and --discovery-endpoints must be set")
    if not all(endpoints):
        raise ConfigError("--discovery-endpoints must not contain empty endpoints")
    return endpoints


def _initial_cluster(read: _Reader, name: str, advertise_peer_urls: tuple[Url, ...]) -> tuple[InitialMember, ...]:
    # Not given: etcd derives "<name>=<each advertised peer URL>", which makes
    # `petcd --name x` a valid one-member cluster. With discovery this is etcd's
    # temporary cluster of one, until nodes/discovery.py replaces it.
    if not read.is_set("initial-cluster"):
        return (InitialMember(name, advertise_peer_urls),)
    return read.parsed("initial-cluster", parse_initial_cluster)
