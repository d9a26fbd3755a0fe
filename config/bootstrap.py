"""The checks etcd makes before a member bootstraps (etcdserver ServerConfig
VerifyBootstrap / VerifyJoinExisting): this member's name is in --initial-cluster and,
for a new cluster, its entry there lists exactly --initial-advertise-peer-urls.

etcd makes these checks only when the member has no WAL yet: on a restart the
membership comes from the WAL and --initial-cluster is ignored, so a stale launch
script still restarts. `load()` runs them by default; an entry point that knows
whether a WAL exists can load with bootstrap_checks=False and call this itself.
Unlike etcd, petcd compares URLs as written and does not resolve host names.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import ConfigError, quote
from .settings import Settings
from .urls import InitialMember, Url


def verify_bootstrap(settings: Settings) -> None:
    """Raise ConfigError unless the initial cluster fits this member."""
    local_urls = _local_urls(settings)
    if settings.initial_cluster_state == "existing" and settings.discovery_endpoints:
        raise ConfigError("discovery URL should not be set when joining existing initial cluster")
    if settings.initial_cluster_state == "new":
        _verify_advertise_matches_cluster(settings.name, local_urls, settings.initial_advertise_peer_urls)


def _local_urls(settings: Settings) -> tuple[Url, ...]:
    urls = tuple(u for m in settings.initial_cluster if m.name == settings.name for u in m.peer_urls)
    if not urls:
        raise ConfigError(
            f"couldn't find local name {quote(settings.name)} in the initial cluster configuration "
            f"(--initial-cluster={format_initial_cluster(settings.initial_cluster)})"
        )
    return urls


def _verify_advertise_matches_cluster(name: str, cluster_urls: tuple[Url, ...], advertised: tuple[Url, ...]) -> None:
    # Other members reach this one through its --initial-cluster entry; if that
    # differs from what it advertises, peers would dial an address nobody serves.
    in_cluster_only = [u for u in cluster_urls if u not in advertised]
    if in_cluster_only:
        raise ConfigError(
            f"--initial-cluster has {','.join(f'{name}={u}' for u in in_cluster_only)} but missing from "
            f"--initial-advertise-peer-urls={_joined(advertised)}"
        )
    advertised_only = [u for u in advertised if u not in cluster_urls]
    if advertised_only:
        raise ConfigError(
            f"--initial-advertise-peer-urls has {_joined(advertised_only)} but missing from "
            f"--initial-cluster={format_initial_cluster([InitialMember(name, cluster_urls)])}"
        )


def format_initial_cluster(members: Iterable[InitialMember]) -> str:
    """The --initial-cluster text form: name=url pairs, a name once per URL."""
    return ",".join(f"{m.name}={u}" for m in members for u in m.peer_urls)


def _joined(urls: Iterable[Url]) -> str:
    return ",".join(str(u) for u in urls)
