"""Run etcdctl and petcdctl the way a user does, and compare what they print.

`run(tool, endpoints, args, stdin)` returns the exit code, stdout and stderr; stderr
loses etcdctl's own structured log lines ({"level": ...}), which are diagnostics of
the Go client, not part of the command's output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.client.etcd_server import ETCDCTL

PETCDCTL = str(Path(sys.executable).parent / "petcdctl")
TOOL_TIMEOUT_S = 60.0
_GO_LOG_LINE = re.compile(rb'^\{"level":.*\n', re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Outcome:
    code: int
    out: bytes
    err: bytes


def run(tool: str, endpoints: list[str], args: list[str], stdin: bytes = b"",
        env: dict[str, str] | None = None) -> Outcome:
    binary = {"etcdctl": ETCDCTL, "petcdctl": PETCDCTL}[tool]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")},
           "ETCDCTL_API": "3", **(env or {})}
    done = subprocess.run([binary, "--endpoints", ",".join(endpoints), *args],
                          input=stdin, capture_output=True, env=env,
                          timeout=TOOL_TIMEOUT_S)
    return Outcome(done.returncode, done.stdout, _GO_LOG_LINE.sub(b"", done.stderr))


def masked(outcome: Outcome, *patterns: tuple[bytes, bytes]) -> Outcome:
    """The outcome with each regex (pattern, replacement) applied to out and err."""
    out, err = outcome.out, outcome.err
    for pattern, replacement in patterns:
        out = re.sub(pattern, replacement, out)
        err = re.sub(pattern, replacement, err)
    return Outcome(outcome.code, out, err)


# A Go duration (1.2ms, 850µs, 5.0001s), e.g. endpoint health's "took".
DURATION = (rb"\d+(\.\d+)?(ns|\xc2\xb5s|ms|s|m)\b", b"<duration>")
# Table borders and padding move with the width of a masked cell.
TABLE_PADDING = (rb"[ -]+", b" ")
