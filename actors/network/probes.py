"""/livez and /readyz: etcd 3.6's probes (etcdhttp/health.go), beside /health.

    /livez    serializable_read                       is the process serving at all?
    /readyz   data_corruption, serializable_read,      should it get client traffic?
              linearizable_read, non_learner
    /livez/<check>, /readyz/<check>                   that check alone
    ?exclude=<check> (repeatable)                     all but those
    ?verbose                                          each check's line before "ok"

200 "ok\\n" when every check passes; else 503 with one line per check:
"[+]<check> ok" or "[-]<check> failed: <reason>", as etcd answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from petcd.api.etcdserverpb import rpc_pb2 as pb

from .errors import EtcdError

if TYPE_CHECKING:
    from .server import Server

Check = Callable[["Server"], Awaitable[str | None]]  # None: passed; else why not


async def _data_corruption(server: Server) -> str | None:
    if server.tracker.applied_known.is_set() and await server._local(
            lambda s: s.alarms(pb.CORRUPT)):
        return "alarm activated: CORRUPT"
    return None


def _read(serializable: bool) -> Check:
    async def check(server: Server) -> str | None:
        try:
            await server.read_check(serializable)
        except EtcdError as err:
            return err.message
        return None
    return check


async def _non_learner(server: Server) -> str | None:
    if server.ctx.member_id in server.tracker.status.learners:
        return "not supported for learner"
    return None


CHECKS: dict[str, dict[str, Check]] = {
    "livez": {"serializable_read": _read(True)},
    "readyz": {"data_corruption": _data_corruption, "serializable_read": _read(True),
               "linearizable_read": _read(False), "non_learner": _non_learner},
}


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    lines: str  # one line per check run


async def run(server: Server, probe: str, names: list[str]) -> Outcome:
    """The named checks of `probe` ("livez" or "readyz"), in their order."""
    checks = CHECKS[probe]
    lines, ok = [], True
    for name in names:
        failed = await checks[name](server)
        if failed is None:
            lines.append(f"[+]{name} ok\n")
        else:
            ok = False
            lines.append(f"[-]{name} failed: {failed}\n")
    return Outcome(ok, "".join(lines))


def selected(probe: str, check: str | None, excluded: list[str]) -> tuple[list[str], list[str]]:
    """(the checks to run, the excluded names that are no check of this probe)."""
    names = list(CHECKS[probe])
    if check is not None:
        return [check], []
    unknown = [name for name in excluded if name and name not in names]
    return [name for name in names if name not in excluded], unknown
