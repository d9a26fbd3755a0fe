"""Log lines of a member's processes share one file: no line may be cut by another's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROCESSES = 4
LINES_PER_PROCESS = 400

_CHILD = """
import sys
from petcd.actors import logs
log = logs.configure("info", "json", "m1", 0x65cda26ed6dbee2b, sys.argv[1])
for i in range(int(sys.argv[2])):
    log.info("a line long enough to be written in pieces", i=i, pad="x" * 300)
"""


def test_concurrent_processes_write_whole_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "member.log"
    with open(path, "ab") as out:  # as the test harness and launch scripts do
        procs = [subprocess.Popen([sys.executable, "-c", _CHILD, f"actor{n}",
                                   str(LINES_PER_PROCESS)], stderr=out)
                 for n in range(PROCESSES)]
        for proc in procs:
            assert proc.wait(60) == 0
    lines = path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # fails on an interleaved line
    assert len(records) == PROCESSES * LINES_PER_PROCESS
    for n in range(PROCESSES):
        seen = [r["i"] for r in records if r["actor"] == f"actor{n}"]
        assert seen == list(range(LINES_PER_PROCESS))
