"""One actor process: the loop the raft, WAL and apply actors share, and what all four
actors share with the network actor: how a stop is asked for, how a send that must
arrive fails, one exception that ends an actor, and the exit statuses.

    run(ctx, name, open_actor) -> exit status        (nodes/actor_main.py calls each
                                                      actor's run, which calls this)
        log for `name`; SIGTERM (and SIGINT, unless the actor leaves it to the
            supervisor) only sets the stop flag
        process_context(); bind the inbox, open the outbox
        actor = open_actor(runtime)      the actor's own files and sockets
        actor.start()                    what it tells the others before serving
        until a stop is asked for:       serve()
            wait for the inbox or actor.wake_on, at most actor.wait_ms()
            actor.handle(up to actor.max_batch_msgs messages; () if none came)
            once a second, its metrics to the network actor (actors/metrics.py)
        actor.close(); "<name> actor stopped" with actor.report(); exit EXIT_OK

The flag is looked at only between two batches, so a batch in hand is finished (the
WAL's written, synced and acknowledged) before the actor stops; and every wait is at
most POLL_TIMEOUT_MS, so an idle actor notices it within that.

Crash-only: a message to another actor of the member that must arrive and is not
taken within SEND_TIMEOUT_MS means that actor is stuck and the member broken
(`send_or_stop` raises Stop). Stop is the one way an actor ends itself: it carries
the event to log and the exit status. Any other exception (a failed write or fsync,
a bug) is logged with its traceback: EXIT_FAILED. The supervisor stops the member on
any exit it did not ask for and restarts nothing itself (launch scripts and systemd
do).

The network actor runs asyncio, so its loop is its own (actors/network/actor.py):
it shares STOP_SIGNALS, Stop, `send_or_stop`, `exit_status` and the statuses.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, Protocol

import zmq

from petcd import config
from petcd.actors import logs
from petcd.actors.bus.sockets import Inbox, Outbox, process_context, term_process_context, wait_any
from petcd.actors.member import MemberContext
from petcd.actors.metrics import ActorMetrics
from petcd.actors.protocol import Kind

EXIT_OK = 0  # stopped when asked, the batch in hand finished first
EXIT_FAILED = 1  # cannot go on: a stuck peer actor, a failed write, corrupt data, a bug
# Refuses to start as configured (another member's data dir, a bad failpoint variable):
# the supervisor exits with it too, the status of petcd given a bad flag.
EXIT_BAD_CONFIG = config.EXIT_BAD_CONFIG

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
POLL_TIMEOUT_MS = 100  # the longest an idle actor takes to notice a stop
SEND_TIMEOUT_MS = 1000  # a peer actor that takes no message for this long is stuck
NETWORK = "network"  # the actor that serves /metrics

Batch = Sequence[tuple[str, Any]]  # (kind, payload) as the inbox delivers them


class Stop(Exception):
    """Ends the actor: `event` and `fields` are logged (as an error unless `status` is
    EXIT_OK), `status` is the process's exit status."""

    def __init__(self, event: str, status: int = EXIT_FAILED, **fields: object) -> None:
        super().__init__(event)
        self.event = event
        self.status = status
        self.fields = fields


@dataclass(slots=True)
class StopFlag:
    """Set by a stop signal; names it."""

    signal_name: str | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name

    @property
    def requested(self) -> bool:
        return self.signal_name is not None


@dataclass(frozen=True, slots=True)
class Runtime:
    """What the skeleton has made for an actor by the time it is opened."""

    ctx: MemberContext
    name: str
    log: logs.Log
    stop: StopFlag
    inbox: Inbox
    outbox: Outbox
    metrics: ActorMetrics  # the actor adds its own to metrics.registry


class Actor(Protocol):
    """What an actor supplies to the skeleton."""

    @property
    def max_batch_msgs(self) -> int:
        """Inbox messages handed to one `handle`."""

    @property
    def wake_on(self) -> Sequence[zmq.Socket[bytes]]:
        """Sockets besides the inbox whose messages end a wait; `handle` reads them."""

    def start(self) -> None:
        """Before the loop: tell the other actors what they wait for (READY too)."""

    def wait_ms(self) -> int:
        """How long the loop may wait for a message now: at most POLL_TIMEOUT_MS."""

    def handle(self, batch: Batch) -> None:
        """One drained batch of the inbox, in arrival order; () when the wait ran out."""

    def close(self) -> None:
        """Release what the actor opened, whether it stops or fails."""

    def report(self) -> dict[str, object]:
        """Fields of the "stopped" log line: what the actor did."""


def run(ctx: MemberContext, name: str, open_actor: Callable[[Runtime], Actor], *,
        stop_signals: Sequence[signal.Signals] = STOP_SIGNALS) -> int:
    """An actor process's body; returns its exit status. A signal of STOP_SIGNALS that
    is not in `stop_signals` is ignored."""
    settings = ctx.settings
    log = logs.configure(settings.log_level, settings.log_format, ctx.name, ctx.member_id, name)
    stop = StopFlag()
    for signum in STOP_SIGNALS:
        signal.signal(signum, stop if signum in stop_signals else signal.SIG_IGN)
    process_context()  # created here, in this process (never inherited)
    try:
        with Inbox.for_actor(ctx.run_dir, name) as inbox, Outbox(ctx.run_dir) as outbox:
            metrics = ActorMetrics(name)
            actor = open_actor(Runtime(ctx, name, log, stop, inbox, outbox, metrics))
            try:
                actor.start()
                serve(stop, inbox, actor, metrics, outbox)
            finally:
                actor.close()
            log.info(f"{name} actor stopped", signal=stop.signal_name, **actor.report())
            return EXIT_OK
    except Exception as err:
        return exit_status(log, name, err)
    finally:
        term_process_context()


def serve(stop: StopFlag, inbox: Inbox, actor: Actor, metrics: ActorMetrics,
          outbox: Outbox) -> None:
    """The loop: batches to `actor.handle` until a stop is asked for; the actor's
    metrics to the network actor every EXPORT_EVERY_S, never waiting (the next export
    replaces a lost one)."""
    # Bound once: this loop runs for every message the raft actor receives.
    wait_ms, handle, take = actor.wait_ms, actor.handle, inbox.take
    sockets, max_batch_msgs = (inbox.socket, *actor.wake_on), actor.max_batch_msgs
    counted, clock = metrics.counted, time.monotonic
    while stop.signal_name is None:
        if wait_any(sockets, wait_ms()):
            batch = take(max_batch_msgs)
            counted(len(batch))
            handle(batch)
        else:
            handle(())
        now = clock()
        if metrics.due(now):
            outbox.send(NETWORK, Kind.METRICS.value, metrics.export(now))


def send_or_stop(outbox: Outbox, actor: str, kind: Kind, payload: Any) -> None:
    """Send a message that must arrive; Stop if `actor` does not take it within
    SEND_TIMEOUT_MS (messages that may be lost are sent without waiting)."""
    if not outbox.send(actor, kind.value, payload, timeout_ms=SEND_TIMEOUT_MS):
        raise Stop("actor not reading its inbox", peer_actor=actor, kind=kind.value,
                   timeout_ms=SEND_TIMEOUT_MS)


def exit_status(log: logs.Log, name: str, err: Exception) -> int:
    """Log why the actor ends and return its exit status: a Stop's own, EXIT_FAILED
    (with the traceback) for anything else. Call it where `err` is being handled."""
    if isinstance(err, Stop):
        if err.status == EXIT_OK:
            log.info(err.event, **err.fields)
        else:
            log.error(err.event, **err.fields)
        return err.status
    log.exception(f"{name} actor failed")
    return EXIT_FAILED
