"""Puts and linearizable reads through a member's JSON gateway, each recorded in a
History (tests/lincheck) as it is made, and a reader thread made of such reads.

How a call ends in the history: answered, ok with the header's revision; refused at
connect, failed (nothing was sent, so nothing can be applied); any other error or no
answer in time, unknown (the member may have proposed it before it died or timed out,
so it may take effect later, or never). Each helper re-raises after recording, so its
caller handles the error as it did before it recorded anything.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

from tests.cluster.members import Cluster, HttpError, Member, b64, unb64
from tests.lincheck import Call, History, Kind

READ_PAUSE_S = 0.05  # between reads: 30 to 140 answered in a failpoint case (measured)


def put(history: History, client: str, member: Member, key: str, value: str,
        timeout_s: float) -> int:
    """The revision the put was answered at."""
    call = history.invoke(client, Kind.PUT, key, value)
    body = {"key": b64(key), "value": b64(value)}
    resp = _recorded(call, lambda: member.call("/v3/kv/put", body, timeout_s=timeout_s))
    revision = int(resp["header"]["revision"])
    call.ok(revision=revision)
    return revision


def get(history: History, client: str, member: Member, key: str, timeout_s: float) -> str | None:
    """A linearizable read: the value, None if the key is absent."""
    call = history.invoke(client, Kind.GET, key)
    body = {"key": b64(key)}
    resp = _recorded(call, lambda: member.call("/v3/kv/range", body, timeout_s=timeout_s))
    kvs = resp.get("kvs", [])
    value = unb64(kvs[0].get("value", "")) if kvs else None
    call.ok(value, revision=int(resp["header"]["revision"]))
    return value


def _recorded(call: Call, send: Callable[[], dict]) -> dict:
    try:
        return send()
    except OSError as err:
        if refused(err):
            call.failed()  # never sent
        else:
            call.unknown()
        raise
    except BaseException:
        call.unknown()
        raise


def refused(err: Exception) -> bool:
    """The member was not listening (not yet, or no more)."""
    return isinstance(getattr(err, "reason", err), ConnectionRefusedError)


class Reader(threading.Thread):
    """Linearizable reads, each of the key `pick_key(rng)` names, through a live member
    picked anew for each read: while one member is down or has lost its leader, the
    reads that go elsewhere are answered. Runs until finish()."""

    def __init__(self, cluster: Cluster, history: History, pick_key: Callable[[random.Random], str],
                 timeout_s: float) -> None:
        super().__init__(daemon=True)
        self.cluster, self.history, self.pick_key = cluster, history, pick_key
        self.timeout_s = timeout_s
        self.reads = 0  # answered
        self.stop_flag = threading.Event()
        self.rng = random.Random(1)

    def run(self) -> None:
        while not self.stop_flag.wait(READ_PAUSE_S):
            live = [m for m in self.cluster.members if m.alive]
            if not live:
                continue
            try:
                get(self.history, "reader", self.rng.choice(live), self.pick_key(self.rng),
                    self.timeout_s)
            except (OSError, HttpError):
                continue  # recorded as such; the next read picks again
            self.reads += 1

    def finish(self) -> int:
        """Stops the reads (one in flight ends within timeout_s); how many were answered."""
        self.stop_flag.set()
        self.join(self.timeout_s + 5)
        assert not self.is_alive(), "the reader did not stop"
        return self.reads
