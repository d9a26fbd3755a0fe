"""Structured logs: one JSON object a line (or console text), with member and actor.

Every line carries `member` (name), `member_id` (hex, as etcd prints it) and `actor`,
so the interleaved output of a member's processes can be told apart and filtered.
"""

from __future__ import annotations

import logging
import sys

import structlog

from petcd.config import ids

Log = structlog.typing.FilteringBoundLogger  # what `configure` returns

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "error": logging.ERROR, "panic": logging.CRITICAL, "fatal": logging.CRITICAL}


def configure(level: str, fmt: str, member: str, member_id: int, actor: str) -> Log:
    renderer = (structlog.processors.JSONRenderer() if fmt == "json"
                else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        # One write per line (message and newline together): the member's processes
        # share one stderr, and print()'s two writes let another line land between.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # get_logger() is typed Any; with the wrapper_class above it makes a FilteringBoundLogger.
    logger: Log = structlog.get_logger()
    return logger.bind(member=member, member_id=ids.format_id(member_id), actor=actor)
