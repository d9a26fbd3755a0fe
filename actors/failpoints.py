"""Test-only failpoints: environment variables that make an actor sleep at one point
of its loop, so that a test can stop or kill the member while it is there.

    PETCD_FAILPOINT_WAL_SLEEP_MS=<ms>           the WAL actor, before every fsync
    PETCD_FAILPOINT_APPLY_COMMIT_SLEEP_MS=<ms>  the apply actor, after answering a
                                                batch, before its store commit
"""

from __future__ import annotations

import os

WAL_SLEEP = "PETCD_FAILPOINT_WAL_SLEEP_MS"
APPLY_COMMIT_SLEEP = "PETCD_FAILPOINT_APPLY_COMMIT_SLEEP_MS"


def sleep_ms(variable: str) -> int:
    """The variable's milliseconds, 0 when unset; ValueError (naming the text) unless
    it is a non-negative integer."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return 0
    value = int(text)  # ValueError names the text
    if value < 0:
        raise ValueError(f"{variable}={text}: must be >= 0")
    return value
