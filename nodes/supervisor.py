"""The supervisor: starts a member's four actor processes, watches them, stops them.

The actors are forked from this process, which has imported what they use first (all
but the network actor's own modules: nodes/actor_main.py), so those pages are shared
copy-on-write.

Crash-only: if any actor dies, the others are stopped and the member exits non-zero
with a log line naming the actor and its exit status (launch scripts and systemd
restart it; recovery is from the WAL and the store). SIGTERM/SIGINT stop every actor
cleanly (in-flight fsyncs finish, LMDB is closed) and the member exits 0.
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

from petcd.actors import failpoints
from petcd.actors.bus.sockets import Inbox
from petcd.actors.logs import configure
from petcd.actors.member import MemberContext
from petcd.actors.protocol import ACTORS, SUPERVISOR, Kind
from petcd.actors.skeleton import EXIT_BAD_CONFIG, Stop
from petcd.config import ids

from . import actor_main, bootstrap, discovery
from .actor_main import ActorProcess
from petcd.actors.bus.rundir import RunDir, RunDirBusy

START_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 10.0
WATCH_INTERVAL_MS = 100
REMOVED_GRACE_S = 1.0


class Supervisor:
    def __init__(self, ctx: MemberContext) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.log = configure(s.log_level, s.log_format, ctx.name, ctx.member_id, SUPERVISOR)
        self.procs: dict[str, ActorProcess] = {}
        self.stopping = False

    def run(self) -> int:
        try:
            failpoints.arm_crash(self.log)  # before the forks: every actor inherits it
        except Stop as err:
            self.log.error(err.event, **err.fields)
            return err.status
        try:
            self._prepare_dirs()
        except OSError as err:  # etcd's words, and its exit status
            self.log.error("cannot access data directory", error=str(err))
            return 1
        try:
            run_dir = RunDir.claim(self.ctx.run_dir)
        except RunDirBusy:
            self.log.error("data dir is in use by another petcd member",
                           data_dir=str(self.ctx.settings.data_dir.resolve()),
                           run_dir=str(self.ctx.run_dir))
            return 1
        except OSError as err:
            self.log.error("cannot create the member's socket dir", error=str(err),
                           run_dir=str(self.ctx.run_dir))
            return 1
        with run_dir:
            try:
                self._identify()
            except bootstrap.BootstrapError as err:
                self.log.error("cannot start", error=str(err))
                return err.status
            except bootstrap.RemovedMember:
                self.log.warning("the member has been permanently removed from the cluster")
                return 0
            return self._run()

    def _identify(self) -> None:
        """The member and cluster IDs (restart, join or new cluster: bootstrap.py);
        the log names the member by its final ID."""
        ctx = self.ctx = bootstrap.member_context(self.ctx.settings, self.log)
        s = ctx.settings
        self.log = configure(s.log_level, s.log_format, ctx.name, ctx.member_id, SUPERVISOR)

    def _run(self) -> int:
        try:
            # Every actor is forked before this process makes its ZeroMQ context (the
            # inbox below): see actor_main. Their READY messages wait in their
            # outboxes until the inbox is bound.
            actor_main.preload()
            for name in ACTORS:
                self.procs[name] = ActorProcess.fork(name, self.ctx)
            with Inbox.for_actor(self.ctx.run_dir, SUPERVISOR) as inbox:
                status = self._await_ready(inbox)
                if status is None:
                    status = self._watch(inbox)
        except BaseException:
            self._stop_all(None, status=1)  # no actor outlives a supervisor that failed
            raise
        return status

    def _prepare_dirs(self) -> None:
        for path in (self.ctx.wal_dir, self.ctx.snap_dir):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _await_ready(self, inbox: Inbox) -> int | None:
        """None once every actor is ready; an exit status if start-up failed."""
        pending = set(ACTORS)
        deadline = time.monotonic() + START_TIMEOUT_S
        while pending:
            for kind, payload in inbox.drain(16, 100):
                if kind == Kind.READY:
                    pending.discard(payload)
                elif kind == Kind.REMOVED:
                    return self._removed()
            died = self._dead_actor()
            if died is not None or self.stopping:
                return self._stop_all(died)
            if time.monotonic() > deadline:
                self.log.error("actors did not start in time", waiting=sorted(pending))
                return self._stop_all(None, status=1)
        s = self.ctx.settings
        self.log.info("ready to serve client requests",
                      client_urls=[str(u) for u in s.advertise_client_urls],
                      cluster_id=ids.format_id(self.ctx.cluster_id),
                      pids={n: p.pid for n, p in self.procs.items()})
        return None

    def _watch(self, inbox: Inbox) -> int:
        while not self.stopping:
            died = self._dead_actor()
            if died is not None:
                return self._stop_all(died)
            if any(kind == Kind.REMOVED for kind, _ in inbox.drain(16, WATCH_INTERVAL_MS)):
                return self._removed()
        return self._stop_all(None)

    def _removed(self) -> int:
        """etcd's words and exit status (0: systemd's Restart=on-failure leaves it
        stopped). The answers in flight, e.g. to the MemberRemove itself, get
        REMOVED_GRACE_S to leave first."""
        self.log.warning("the member has been permanently removed from the cluster")
        time.sleep(REMOVED_GRACE_S)
        self.stopping = True  # an actor that stops first is not a failure now
        return self._stop_all(None)

    def _dead_actor(self) -> str | None:
        """An actor that exited unasked: at all before a stop was asked for, or with a
        failure after. (Ctrl-C reaches the actors too, and they may exit 0 before this
        process has looked at its own flag, e.g. while waiting for READY.)"""
        for name, proc in self.procs.items():
            status = proc.poll()
            if status is not None and (status != 0 or not self.stopping):
                return name
        return None

    def _stop_all(self, died: str | None, status: int | None = None) -> int:
        if died is not None:
            code = self.procs[died].returncode
            self.log.error("actor exited; stopping the member", failed_actor=died, exit_status=code)
            status = EXIT_BAD_CONFIG if code == EXIT_BAD_CONFIG else 1
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)  # finish the batch, close files
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for name, proc in self.procs.items():
            if proc.wait(max(0.0, deadline - time.monotonic())) is None:
                self.log.error("actor did not stop in time; killing it", failed_actor=name)
                proc.send_signal(signal.SIGKILL)
                proc.wait(1.0)
        if status is None:
            self.log.info("member stopped")
            return 0
        return status


def run_member(ctx: MemberContext) -> int:
    supervisor = Supervisor(ctx)

    def stop(signum: int, frame: Any) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return supervisor.run()


def main(argv: list[str] | None = None) -> None:
    from petcd.config import load_or_exit
    settings = discovery.discovered_or_exit(load_or_exit(argv))
    sys.exit(run_member(MemberContext.from_settings(settings)))


if __name__ == "__main__":
    main()
