"""Test-only failpoints: environment variables that make an actor sleep at one point
of its loop, so that a test can stop or kill the member while it is there.

    PETCD_FAILPOINT_WAL_SLEEP_MS=<ms>           the WAL actor, before every fsync
    PETCD_FAILPOINT_APPLY_COMMIT_SLEEP_MS=<ms>  the apply actor, after answering a
                                                batch, before its store commit
"""

from __future__ import annotations

import os

from petcd.actors.logs import Log
from petcd.actors.skeleton import EXIT_BAD_CONFIG, Stop

WAL_SLEEP = "PETCD_FAILPOINT_WAL_SLEEP_MS"
APPLY_COMMIT_SLEEP = "PETCD_FAILPOINT_APPLY_COMMIT_SLEEP_MS"


def sleep_ms(variable: str, log: Log, where: str) -> int:
    """The variable's milliseconds, 0 when unset, with a warning naming `where` the
    actor will sleep when set; the actor refuses to start (Stop, EXIT_BAD_CONFIG)
    unless it is a non-negative integer."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return 0
    try:
        value = int(text)
        if value < 0:
            raise ValueError("must be >= 0")
    except ValueError as err:
        raise Stop("bad failpoint", EXIT_BAD_CONFIG, variable=variable,
                   error=f"{variable}={text}: {err}") from err
    if value:
        log.warning(f"failpoint active: sleeping {where}", variable=variable, sleep_ms=value)
    return value
