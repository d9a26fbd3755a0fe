"""The network actor: clients and peers in, the member's other actors behind.

One asyncio loop in one process (forked by the supervisor):

    clients ──every --listen-client-urls──► frontdoor: gRPC ─► rpc ─┐
                                                 HTTP/1 ─► gateway ─┴─► server
        server ──PROPOSE / READ_INDEX──► raft      (requests.RaftClient, batched per turn)
    network inbox ◄── SEND_SNAPSHOT, PEER_FRAMES, READ_STATES, DROPPED, STATUS (raft);
                      APPLIED (with the answers), VISIBLE, RESPONSES (apply)
    SEND_SNAPSHOT ──► a stream of the store to that member (snapshots.py) over this
        actor's DEALERs; chunks in (PEER_FRAMES: the raft actor holds the peer ROUTER)
        ──► member/snap/<index>.snap.db, then the SNAP message ──PEER──► raft

Raft messages between members go from raft actor to raft actor (actors/raft/peers.py).

Start: bind the inbox and every client listener, connect to the other initial members,
then READY to the supervisor. Once a leader is known and the member table holds this
member, publish its name and client URLs through Raft (etcd's publishV3), so that
MemberList shows them on every member. Peer connections, this actor's and the raft
actor's (PEERS), follow the member table as conf changes are applied. SIGTERM or
SIGINT: refuse new requests and end every wait ("etcdserver: server stopped"), stop
listening, close sockets and the store, exit 0. A failure of one of the loops is a
bug: log it and exit 1, and the supervisor stops the member (crash-only).

What it shares with the other actors (actors/skeleton.py): the stop signals, Stop and
the exit statuses (`exit_status`), and `send_or_stop` for READY. What differs, and
why: its loop is asyncio's, not the skeleton's, because it serves many client
streams at once; so a signal sets an asyncio.Event that wakes `serve` (a flag would
only be seen at the next poll of one loop among several), and every other send is
non-blocking: a full raft or apply inbox refuses (the request fails, or Raft resends)
instead of holding every client for up to SEND_TIMEOUT_MS.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import grpc
import uvloop
from aiohttp import web
from petcd.actors.apply import members as member_table
from petcd.actors.bus import peertls
from petcd.actors.bus.peer import Channel, PeerDealers
from petcd.actors.bus.tlsfiles import ReloadingTls
from petcd.actors.bus.sockets import (
    AsyncInbox,
    Outbox,
    process_context,
    term_process_context,
)
from petcd.actors.logs import Log, configure
from petcd.actors.member import MemberContext
from petcd.actors.protocol import SUPERVISOR, Kind
from petcd.actors.skeleton import EXIT_OK, STOP_SIGNALS, Stop, exit_status, send_or_stop
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.config import Url
from petcd.storage.mvcc.quota import map_size_bytes

from . import backup, compactor, rpc
from .corruption import CorruptionCheck
from .errors import EtcdError
from .certnames import CertNames
from .frontdoor import FrontDoor, Routes
from .gateway import Gateway
from .local import LocalStore
from .peers import PeerLink
from .requests import RaftClient, RequestIds, Tracker, request_timeout_s
from .server import Server
from .servertls import client_tls_config, server_tls
from .snapshots import SnapshotStreams, remove_parts

NAME = "network"
MAX_BATCH_MSGS = 4096  # inbox messages or peer frames handled per loop turn
POLL_MS = 100
MEMBER_SYNC_EVERY_S = 1.0
PUBLISH_RETRY_S = 1.0
PUBLISH_POLL_S = 0.1  # how often a publish in flight looks for a new leader
HTTP_SHUTDOWN_TIMEOUT_S = 2.0
GRPC_SHUTDOWN_TIMEOUT_S = 2.0
GRPC_SOCKET_NAME = "grpc.sock"


class NetworkActor:
    def __init__(self, ctx: MemberContext, log: Any) -> None:
        self.ctx = ctx
        self.log = log
        s = ctx.settings
        self.timeout_s = request_timeout_s(s.election_timeout_ms)
        self.stopping = asyncio.Event()
        self.outbox = Outbox(ctx.run_dir)
        self.tracker = Tracker()
        self.raft = RaftClient(self.tracker, self._to_raft, RequestIds(ctx.member_id),
                               self.timeout_s)
        self.store = LocalStore(str(ctx.db_dir), quota_bytes=s.quota_backend_bytes,
                                max_txn_ops=s.max_txn_ops)
        self.server = Server(ctx, self.tracker, self.raft, self.store, log, self._to_apply)
        self.inbox: AsyncInbox | None = None
        self.peers: PeerLink | None = None
        self.snapshots: SnapshotStreams | None = None
        self.runners: list[web.AppRunner] = []  # the gateway's; the metrics URLs'
        self.grpc: grpc.aio.Server | None = None
        self.health: Any = None  # the grpc.health.v1 servicer
        self.doors: list[FrontDoor] = []
        self.corruption = CorruptionCheck(ctx, self.tracker, self.store, self._raise_corrupt,
                                          self.timeout_s, log)
        self._handlers = {
            Kind.SEND_SNAPSHOT.value: self._on_send_snapshot,
            Kind.PEER_FRAMES.value: self._on_peer_frames,
            Kind.READ_STATES.value: self.tracker.on_read_states,
            Kind.DROPPED.value: self.tracker.on_dropped, Kind.STATUS.value: self.tracker.on_status,
            Kind.RESPONSES.value: self.tracker.on_responses,
            Kind.APPLIED.value: self._on_applied, Kind.VISIBLE.value: self._on_visible,
            Kind.TRACE.value: self.tracker.traces.on_raft,
            Kind.METRICS.value: self.server.metrics.on_export,
        }

    # -- start and stop ----------------------------------------------------------------

    async def start(self) -> None:
        self.inbox = AsyncInbox.for_actor(self.ctx.run_dir, NAME)
        self._start_peers()
        if self.ctx.settings.initial_corrupt_check:
            await self.corruption.initial()
        await self._start_clients()
        send_or_stop(self.outbox, SUPERVISOR, Kind.READY, NAME)
        self.log.info("network ready",
                      client_urls=[str(u) for u in self.ctx.settings.listen_client_urls],
                      request_timeout_s=self.timeout_s)

    def _start_peers(self) -> None:
        dealers = PeerDealers(self.ctx.member_id, channel=Channel.SNAPSHOT,
                              route=peertls.dealer_route(self.ctx.run_dir,
                                                         peertls.enabled(self.ctx.settings)))
        self.peers = PeerLink(self.ctx.member_id, dealers, self._to_raft, self.log)
        removed = remove_parts(self.ctx.snap_dir) + backup.remove_parts(self.ctx.snap_dir)
        if removed:
            self.log.info("removed partial snapshot files", files=removed)
        self.snapshots = self.peers.snapshots = SnapshotStreams(
            self.ctx.member_id, self.ctx.snap_dir, self.ctx.db_dir, dealers,
            self._to_raft, self.log,
            max_size_bytes=map_size_bytes(self.ctx.settings.quota_backend_bytes),
            applied_index=lambda: self.tracker.applied.index)
        self.peers.connect((p.member_id, p.peer_urls) for p in self.ctx.initial_peers)

    async def _start_clients(self) -> None:
        """gRPC and the JSON gateway on every --listen-client-urls (frontdoor.py), or,
        with --listen-client-http-urls, gRPC alone there and HTTP on those, as etcd;
        /metrics and the health probes alone on --listen-metrics-urls. grpc.aio itself
        listens only on a unix socket in the run dir."""
        s = self.ctx.settings
        tls = self._client_tls()
        gateway = Gateway(self.server, self.log)
        self.grpc = grpc.aio.server(options=rpc.server_options(s.max_request_bytes))
        self.health = rpc.add_services(self.grpc, self.server, self.log)
        grpc_path = self.ctx.run_dir / GRPC_SOCKET_NAME
        grpc_path.unlink(missing_ok=True)  # left by a crashed run
        try:
            self.grpc.add_insecure_port(f"unix:{grpc_path}")
        except RuntimeError as err:  # grpcio's "Failed to bind"
            raise _cannot_listen(str(grpc_path), err) from None
        await self.grpc.start()
        door = await self._door(gateway.app(), str(grpc_path),
                                self.server.auth.cert_names if s.client_cert_auth else None)
        separate = bool(s.listen_client_http_urls)
        for url in s.listen_client_urls:
            await self._listen(door, url, tls, Routes(grpc=True, http=not separate))
        for url in s.listen_client_http_urls:
            await self._listen(door, url, tls, Routes(grpc=False, http=True))
        if s.listen_metrics_urls:
            metrics_door = await self._door(gateway.metrics_app(), str(grpc_path), None)
            for url in s.listen_metrics_urls:
                await self._listen(metrics_door, url, tls, Routes(grpc=False, http=True))
        await rpc.set_serving(self.health, True)

    async def _door(self, app: web.Application, grpc_path: str,
                    cert_names: CertNames | None) -> FrontDoor:
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               shutdown_timeout=HTTP_SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        self.runners.append(runner)
        assert runner.server is not None
        door = FrontDoor(runner.server, grpc_path, self.log, cert_names)
        self.doors.append(door)
        return door

    def _client_tls(self) -> ReloadingTls | None:
        try:
            config = client_tls_config(self.ctx.settings, self.log)
            return None if config is None else server_tls(config, self.log)
        except (OSError, ssl.SSLError, ValueError) as err:  # cryptography raises ValueError
            raise Stop("network cannot start", error=f"client TLS: {err}") from None

    async def _listen(self, door: FrontDoor, url: Url, tls: ReloadingTls | None,
                      routes: Routes) -> None:
        if url.scheme == "http" and tls is not None:
            self.log.warning("scheme is http while key and cert files are present; "
                             "ignoring key and cert files", client_url=str(url))
        try:
            await door.listen(url.host, url.port, tls if url.scheme == "https" else None, routes)
        except OSError as err:
            raise _cannot_listen(str(url), err) from None

    async def stop(self) -> None:
        self.tracker.stop()  # waiting requests answer "server stopped" now
        for door in self.doors:
            door.close()
        if self.grpc is not None:
            if self.health is not None:
                await rpc.set_serving(self.health, False)
            await self.grpc.stop(GRPC_SHUTDOWN_TIMEOUT_S)
        for runner in self.runners:
            await runner.cleanup()
        if self.snapshots is not None:
            await self.snapshots.close()
        if self.inbox is not None:
            self.inbox.close()
        if self.peers is not None:
            self.peers.dealers.close()
        self.outbox.close()
        await asyncio.get_running_loop().run_in_executor(None, self.store.close)

    # -- loops ---------------------------------------------------------------------

    async def serve(self) -> None:
        """Until SIGTERM/SIGINT; raises if a loop fails."""
        loops = [asyncio.create_task(self._inbox_loop(), name="inbox"),
                 asyncio.create_task(self._member_sync_loop(), name="members"),
                 *compactor.start(self.ctx.settings, self.server, self.log),
                 *self.server.watches.start(), *self.server.leasing.start()]
        if self.ctx.settings.corrupt_check_time_s:
            loops.append(asyncio.create_task(self.corruption.periodic(), name="corruption"))
        publish = asyncio.create_task(self._publish(), name="publish")
        stopped = asyncio.create_task(self.stopping.wait(), name="stop")
        try:
            done, _ = await asyncio.wait([stopped, *loops], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopped:
                    task.result()  # raises what ended the loop
                    raise RuntimeError(f"the {task.get_name()} loop ended")
            if publish.done():
                publish.result()  # raises if publishing failed by a bug
        finally:
            for task in [stopped, publish, *loops]:
                task.cancel()
            await asyncio.gather(stopped, publish, *loops, return_exceptions=True)

    async def _inbox_loop(self) -> None:
        assert self.inbox is not None
        counted = self.server.metrics.own.counted
        while True:
            batch = await self.inbox.drain(MAX_BATCH_MSGS, POLL_MS)
            counted(len(batch))
            for kind, payload in batch:
                handler = self._handlers.get(kind)
                if handler is None:
                    self.log.warning("unexpected message kind", kind=kind)
                else:
                    handler(payload)

    async def _member_sync_loop(self) -> None:
        """Follow the member table (conf changes) with the peer connections: this
        actor's, and the raft actor's (PEERS)."""
        assert self.peers is not None
        synced_at_index = -1
        told_raft: Any = None
        while True:
            await asyncio.sleep(MEMBER_SYNC_EVERY_S)
            applied = self.tracker.applied.index
            if not self.tracker.applied_known.is_set() or applied == synced_at_index:
                continue
            table = await self.store.call(member_table.read_member_table)
            urls = [(m.member_id, m.peer_urls) for m in table]
            self.peers.connect(urls)
            self.peers.disconnect(table.removed)
            peers = [urls, sorted(table.removed)]
            if peers != told_raft:
                if not self._to_raft(Kind.PEERS.value, peers):
                    continue  # again next time
                told_raft = peers
            synced_at_index = applied

    async def _publish(self) -> None:
        """etcd's publishV3: once this member is in the member table and a leader is
        known, propose its name and client URLs, retrying until they are applied."""
        urls = tuple(str(u) for u in self.ctx.settings.advertise_client_urls)
        while not await self._published(urls):
            await asyncio.sleep(PUBLISH_RETRY_S)

    async def _published(self, urls: tuple[str, ...]) -> bool:
        if not (self.tracker.status.has_leader and self.tracker.applied_known.is_set()):
            return False
        mine = (await self.store.call(member_table.read_member_table)).get(self.ctx.member_id)
        if mine is None:
            return False  # the table has not taken this member in yet
        if (mine.name, mine.client_urls) == (self.ctx.name, urls):
            return True  # published before a restart
        publishing = asyncio.ensure_future(self.server.publish(self.ctx.name, urls))
        while await self._lost_with_the_leader(publishing):
            # Until this member is published no other can reach its client URL
            # (leader.py forwards there): ask the new leader at once, not after the
            # request timeout (setting the same attributes twice is harmless).
            publishing = asyncio.ensure_future(self.server.publish(self.ctx.name, urls))
        try:
            publishing.result()
        except EtcdError as err:
            self.log.warning("cannot publish local member to cluster; retrying",
                             error=err.message)
            return False
        self.log.info("published local member to cluster", name=self.ctx.name,
                      client_urls=list(urls))
        return True

    async def _lost_with_the_leader(self, proposing: asyncio.Future[None]) -> bool:
        """Waits for a proposal; True (and the proposal cancelled) if the leader changed
        first: the proposal may have been lost with the old one."""
        leader = self.tracker.status.leader
        try:
            while not proposing.done():
                await asyncio.wait([proposing], timeout=PUBLISH_POLL_S)
                if not proposing.done() and self.tracker.status.leader != leader:
                    proposing.cancel()
                    await asyncio.gather(proposing, return_exceptions=True)
                    return True
        except asyncio.CancelledError:
            proposing.cancel()  # the member stops
            raise
        return False

    async def _raise_corrupt(self, member_id: int) -> None:
        await self.server.alarm(pb.AlarmRequest(action=pb.AlarmRequest.ACTIVATE,
                                                memberID=member_id, alarm=pb.CORRUPT))

    def _on_applied(self, payload: Any) -> None:
        # Watchers and leases first: a read woken by this APPLIED may lead its client
        # to watch, or to keep alive a lease it just granted.
        self.server.watches.on_applied(payload)
        self.server.leasing.on_applied(payload)
        self.tracker.on_applied(payload)
        if payload[6]:  # the batch's answers (actors/protocol.py)
            self.tracker.on_responses(payload[6])

    def _on_visible(self, payload: Any) -> None:
        self.tracker.on_visible(payload)
        self.server.watches.wake()  # watchers catching up from the store may go on

    def _on_send_snapshot(self, payload: Any) -> None:
        assert self.peers is not None
        self.peers.send_snapshots(payload)

    def _on_peer_frames(self, payload: Any) -> None:
        assert self.peers is not None
        self.peers.receive(payload)

    def _to_apply(self, kind: str, payload: Any) -> bool:
        ok = self.outbox.send("apply", kind, payload)
        if not ok:
            self.log.warning("apply inbox full; message dropped", kind=kind)
        return ok

    def _to_raft(self, kind: str, payload: Any) -> bool:
        # Never blocks the loop: a full raft inbox refuses (requests fail, peer
        # messages are dropped and resent by Raft).
        ok = self.outbox.send("raft", kind, payload)
        if not ok:
            self.log.warning("raft inbox full; message dropped", kind=kind)
        return ok


def _cannot_listen(url: str, err: Exception) -> Stop:
    return Stop("network cannot start", url=url, error=f"cannot listen for clients: {err}")


async def _main(ctx: MemberContext, log: Log) -> int:
    actor = NetworkActor(ctx, log)
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, actor.stopping.set)
    try:
        await actor.start()
        await actor.serve()
    except Exception as err:
        return exit_status(log, NAME, err)
    finally:
        await actor.stop()
    log.info(f"{NAME} actor stopped")
    return EXIT_OK


def run(ctx: MemberContext) -> int:
    """Process entry point (forked by the supervisor, nodes/actor_main.py)."""
    s = ctx.settings
    log = configure(s.log_level, s.log_format, ctx.name, ctx.member_id, NAME)
    process_context()
    try:
        # uvloop: the network actor is the member's busiest process (gRPC, HTTP,
        # peers), and on asyncio's own loop a 3-member cluster spent about a third
        # more CPU per put in it (petcd-bench put, 64 connections).
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_main(ctx, log))
    finally:
        term_process_context()
