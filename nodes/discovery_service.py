"""Talking to the discovery service, for nodes/discovery.py (whose header tells the
protocol). Runs in the child that module forks, since it loads gRPC.

Failures to reach the service are retried as etcd retries them (logAndBackoffForRetry):
a pause of 2, 4, 8 ... up to 256 seconds, the count reset by each success. etcd gives
up after 2^32 retries, that is never; petcd after MAX_RETRIES (about 45 minutes),
with etcd's "discovery: too many retries". Waiting for peers has no deadline, as in
etcd: the operator starts them when they start them. Every call has the request
timeout, and the child stops waiting if the supervisor is gone.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from petcd.actors.logs import Log, configure
from petcd.api.mvccpb.kv_pb2 import KeyValue
from petcd.client import Client, EtcdError
from petcd.config import Settings, ids

from . import discovery
from .discovery import DiscoveryError, Registration

MAX_RETRIES = 16
MAX_BACKOFF_EXPONENT = 8   # etcd's maxExponentialRetries: 2^8 s between tries at most
WAIT_SLICE_S = 1.0         # how often a wait for peers looks whether its parent lives
ACTOR = "discovery"


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading of the registry."""
    size: int
    found: tuple[Registration, ...]  # in create revision order
    revision: int                    # of the discovery service when read


def run(settings: Settings, parent_pid: int) -> str | None:
    """The initial cluster text, or None after logging why there is none."""
    member_id = ids.member_id([str(u) for u in settings.initial_advertise_peer_urls],
                              settings.discovery_token)
    log = configure(settings.log_level, settings.log_format, settings.name, member_id, ACTOR)
    log = log.bind(discovery_token=settings.discovery_token,
                   discovery_endpoints=",".join(settings.discovery_endpoints))
    with Client(settings.discovery_endpoints, dial_timeout_s=settings.discovery_dial_timeout_s,
                command_timeout_s=settings.discovery_request_timeout_s) as client:
        registry = Registry(client, settings.discovery_token, ids.format_id(member_id), log,
                            parent_alive=lambda: os.getppid() == parent_pid)
        try:
            value = discovery.registration_value(settings.name, settings.initial_advertise_peer_urls)
            text = registry.join(value)
        except DiscoveryError as err:
            log.error("failed to bootstrap; discovery token was already used",
                      error=f"failed to join discovery cluster ({err})")
            log.warning("do not reuse discovery token; generate a new one to bootstrap a cluster")
            return None
    log.info("discovery joined cluster successfully", cluster=text)
    return text


class Registry:
    """One token's registry in the discovery service, as one member sees it."""

    def __init__(self, client: Client, token: str, member_id_hex: str, log: Log, *,
                 parent_alive: Callable[[], bool],
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self._token = token
        self._own_key = discovery.member_key(token, member_id_hex)
        self._log = log
        self._parent_alive = parent_alive
        self._sleep = sleep
        self._retries = 0

    def join(self, value: str) -> str:
        """Register, wait for the others, and give the initial cluster (JoinCluster)."""
        self._checked()
        self._register(value)
        return self._complete(self._checked())

    def _complete(self, reading: Reading) -> str:
        while len(reading.found) < reading.size:
            reading = self._wait_peers(reading)
        self._log.info("found all needed peers from discovery service",
                       cluster_size=reading.size, found_peers=len(reading.found))
        return discovery.initial_cluster_text(reading.found, reading.size)

    def _checked(self) -> Reading:
        """The registry, if it has room for this member (etcd's checkCluster)."""
        reading = self._read()
        if discovery.is_full(reading.found, reading.size, self._own_key):
            raise DiscoveryError(discovery.ERR_FULL_CLUSTER)
        return reading

    def _read(self) -> Reading:
        while True:
            try:
                size = discovery.parse_size([kv.value for kv in self._client.get(
                    discovery.size_key(self._token)).kvs])
                response = self._client.get(discovery.members_prefix(self._token), prefix=True)
            except EtcdError as err:
                self._back_off("cluster status check", err)
                continue
            self._retries = 0
            found: tuple[Registration, ...] = ()
            for kv in response.kvs:
                found = self._with(found, kv)
            return Reading(size, found, response.header.revision)

    def _register(self, value: str) -> None:
        while True:
            try:
                self._client.put(self._own_key, value)
            except EtcdError as err:
                self._back_off("register member itself", err)
                continue
            self._retries = 0
            self._log.info("register member itself successfully", member_key=self._own_key,
                           member_info=value)
            return

    def _wait_peers(self, reading: Reading) -> Reading:
        """Watch the members prefix from after `reading` until enough registered; a
        watch that fails or ends is followed by a fresh reading."""
        self._log.info("waiting for peers from discovery service", cluster_size=reading.size,
                       found_peers=len(reading.found))
        found = reading.found
        try:
            with self._client.watch(discovery.members_prefix(self._token), prefix=True,
                                    start_revision=reading.revision + 1) as watch:
                while len(found) < reading.size and not watch.ended:
                    self._ensure_parent()
                    response = watch.get(timeout_s=WAIT_SLICE_S)
                    for event in response.events if response is not None else ():
                        found = self._with(found, event.kv)
        except EtcdError as err:
            self._back_off("watch peers", err)
        if len(found) >= reading.size:
            return Reading(reading.size, found, reading.revision)
        return self._read()

    def _with(self, found: tuple[Registration, ...], kv: KeyValue) -> tuple[Registration, ...]:
        key = kv.key.decode("utf-8", "replace").strip()
        value = kv.value.decode("utf-8", "replace").strip()
        new = Registration(key, value, kv.create_revision)
        problem = discovery.rejection(found, new, self._token)
        if problem is not None:
            self._log.warning(problem, member_key=key, member_info=value)
            return found
        self._log.info("found peer from discovery service", member_key=key, member_info=value)
        return discovery.added(found, new)

    def _back_off(self, step: str, err: EtcdError) -> None:
        self._retries += 1
        if self._retries > MAX_RETRIES:
            raise DiscoveryError(discovery.ERR_TOO_MANY_RETRIES)
        pause_s = float(2 ** min(self._retries, MAX_BACKOFF_EXPONENT))
        self._log.warning("retry connecting to discovery service", reason=step, backoff_s=pause_s,
                          error=str(err))
        for _ in range(math.ceil(pause_s / WAIT_SLICE_S)):
            self._ensure_parent()
            self._sleep(WAIT_SLICE_S)

    def _ensure_parent(self) -> None:
        if not self._parent_alive():
            raise SystemExit("discovery: the member's supervisor is gone")

