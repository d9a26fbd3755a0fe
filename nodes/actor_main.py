"""How the supervisor starts an actor process: fork from a parent that has already
imported what the actors use, so that those pages are shared copy-on-write.

A fresh interpreter per actor paid for its own copy of everything it imported (ZeroMQ,
msgpack, structlog, asyncio, the bus, the settings types): an idle member was five
processes of 30 to 60 MiB RSS. Forked, the actors share the supervisor's copy of
`PRELOADED_MODULES`. Measured on an idle 3-member dev cluster, summed over a member's
five processes: PSS (what the member costs) 115 -> 72 MiB, RSS 189 -> 162 MiB.

An import in a child costs it more than the module: it writes to pages it shares with
the supervisor (reference counts of the interned names and code it touches, the import
system's state, free slots in the allocator's pools), and each written page becomes
the child's own copy: 0.3 to 0.7 MiB per module, 4 MiB for the raft actor's nine
(compared page by page in /proc/<pid>/pagemap). So the supervisor imports the raft,
WAL and apply actors too: pages of an actor's code that the other processes only map
are counted once. Idle 3-member cluster, anonymous PSS per member 66.4 -> 61.8 MiB.
Not the network actor: it runs so much of gRPC, aiohttp and protobuf that preloading
them moved its copies into the other four processes' shares of a bigger image
(network -12 MiB, the others +13 MiB) and added 60 MiB of RSS.

Fork safety: the supervisor forks every actor before it creates a ZeroMQ context, a
socket or a thread (`ActorProcess.fork` asserts it is single-threaded; ZeroMQ's I/O
threads and gRPC's do not survive a fork), and nothing in `PRELOADED_MODULES` makes one
when imported. The child resets what a fresh interpreter would not have inherited
(signal handlers, stdin), then does what `python -m` of an actor did: die with the
supervisor, import the actor, freeze the collector's view of what importing made, run,
exit with the actor's status. It never returns into the supervisor's stack.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, NoReturn

from petcd.actors.protocol import ACTORS

if TYPE_CHECKING:
    from petcd.actors.member import MemberContext

# Imported by the supervisor before it forks: what every actor imports, and every
# actor but the network's (see above). Nothing here may create a ZeroMQ context, a
# thread or an LMDB environment on import, nor import gRPC or aiohttp.
PRELOADED_MODULES = (
    "petcd.actors.bus.sockets",  # zmq, asyncio, msgpack
    "petcd.actors.bus.codec",    # the Raft types
    "petcd.actors.protocol",
    "petcd.actors.logs",         # structlog
    "petcd.actors.member",       # the settings types
    "petcd.actors.skeleton",
    "petcd.actors.raft.actor",
    "petcd.actors.wal.actor",
    "petcd.actors.apply.actor",  # LMDB, protobuf, the MVCC store
)

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
# Actors allocate a few small objects per message and keep few cycles: the default
# (a young collection every 700 allocations) cost a 3-member cluster about 4% of its
# CPU per put and 6% of its throughput (petcd-bench put, 64 connections, back to back).
GC_THRESHOLDS = (50_000, 20, 100)
_REAP_INTERVAL_S = 0.01


def preload() -> None:
    """Import PRELOADED_MODULES in the supervisor, before it forks the first actor."""
    for name in PRELOADED_MODULES:
        importlib.import_module(name)
    _glibc()
    _release_free_heap()


class ActorProcess:
    """One forked actor: its pid and, once reaped, its exit status (negative: the
    signal that ended it, as subprocess.Popen.returncode reports it)."""

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self.pid = pid
        self.returncode: int | None = None

    @classmethod
    def fork(cls, name: str, ctx: MemberContext) -> ActorProcess:
        """Start the actor `name`. Only from a process with one thread and no ZeroMQ
        context yet (the supervisor, before its inbox)."""
        assert name in ACTORS, name
        assert threading.active_count() == 1, \
            f"forking a process with threads is unsafe: {threading.enumerate()}"
        parent_pid = os.getpid()
        # Else the child would write again what the parent had buffered.
        _flush_std_streams()
        # Objects that exist now are the child's inheritance: out of the collector's
        # reach, its collections never write to (and so copy) their pages.
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            _child(name, ctx, parent_pid)
        return cls(name, pid)

    def poll(self) -> int | None:
        """The exit status if the actor has exited (reaping it), else None."""
        if self.returncode is None:
            pid, wait_status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(wait_status)
        return self.returncode

    def wait(self, timeout_s: float) -> int | None:
        """The exit status, waiting at most `timeout_s`; None if still running."""
        deadline = time.monotonic() + timeout_s
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(_REAP_INTERVAL_S)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        # An exited actor stays a zombie until poll() reaps it, so its pid cannot
        # have been reused by another process while returncode is None.
        if self.returncode is None:
            os.kill(self.pid, signum)


def _child(name: str, ctx: MemberContext, parent_pid: int) -> NoReturn:
    status = 1
    try:
        status = _exit_status(_run(name, ctx, parent_pid))  # as sys.exit(run(ctx)) would
    except SystemExit as exit_:
        status = _exit_status(exit_.code)
    except BaseException:
        sys.excepthook(*sys.exc_info())  # the traceback an interpreter would print
        raise
    finally:
        # Whatever was raised above (even by a signal handler), the child ends here:
        # the supervisor's stack and atexit handlers are not its own. As with
        # multiprocessing's fork children, interpreter shutdown is skipped: the actors
        # close what they own before run() returns, and crash-only recovery covers
        # the rest.
        try:
            _flush_std_streams()
        finally:
            os._exit(status)


def _run(name: str, ctx: MemberContext, parent_pid: int) -> object:
    _reset_inherited_state()
    _die_with(parent_pid)
    _set_process_name(f"petcd-{name}")
    module = importlib.import_module(f"petcd.actors.{name}.actor")
    gc.freeze()  # what importing made lives as long as the process: never scan it
    gc.set_threshold(*GC_THRESHOLDS)
    _release_free_heap()
    return module.run(ctx)


def _reset_inherited_state() -> None:
    """What a fresh interpreter would have had: default handlers for the signals the
    supervisor handles (the actor installs its own), and no terminal on stdin."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)


def _die_with(parent_pid: int) -> None:
    """Linux: never outlive the supervisor (it may be SIGKILLed)."""
    if not _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM):
        return
    if os.getppid() != parent_pid:  # it died before the line above took effect
        raise SystemExit("the supervisor exited while the actor was starting")


def _set_process_name(name: str) -> None:
    """Linux: the name ps and top show (at most 15 bytes); a forked actor has its
    supervisor's command line, where a spawned one had `actor_main <name>`."""
    _prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]))


def _release_free_heap() -> None:
    """Hand back to the OS the heap's pages that hold only freed blocks (glibc's
    malloc_trim). Importing frees a buffer per module (the .pyc read, or the compiler's
    work where there is none) between objects that live on, and glibc keeps those
    pages for later; an idle actor never fills them. Called before the forks and in
    each child after its import: 0.8 MiB of PSS per member each (idle 3-member cluster)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def _prctl(option: int, arg: object) -> bool:
    libc = _glibc()
    return libc is not None and libc.prctl(option, arg) == 0


_libc: ctypes.CDLL | None = None


def _glibc() -> ctypes.CDLL | None:
    """glibc with prctl and malloc_trim looked up; None elsewhere. Opened once, by
    preload() in the supervisor: an actor that opened it itself (three times: two
    prctl calls and malloc_trim) made a ctypes class per handle and a function object
    per call, and copied 0.2-0.3 MiB of the supervisor's pages doing so."""
    global _libc
    if _libc is None:
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            for function in ("prctl", "malloc_trim"):  # ctypes caches each on first lookup
                getattr(libc, function)
        except (OSError, AttributeError):  # not Linux with glibc
            return None
        _libc = libc
    return _libc


def _exit_status(code: object) -> int:
    """The status an interpreter exits with for SystemExit(code)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF  # what the parent sees of exit(code)
    print(code, file=sys.stderr)
    return 1


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass  # closed or None: nothing buffered to lose
