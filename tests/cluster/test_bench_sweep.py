"""petcd-bench sweep as a user runs it: a tiny sweep of two --snapshot-count values on
3-member clusters prints a row per value under the table's columns, writes a PNG, and
leaves no member behind."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psutil

BENCH = str(Path(sys.executable).parent / "petcd-bench")
SWEEP_TIMEOUT_S = 180
NUMBER = r"[\d,.]+"


def _left_behind(root: Path) -> list[str]:
    """Command lines of processes still using the sweep's directory."""
    out = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        if str(root) in cmdline:
            out.append(cmdline)
    return out


def test_a_tiny_sweep_prints_a_row_per_value_and_plots(tmp_path):
    plot = tmp_path / "sweep.png"
    out = subprocess.run(
        [BENCH, "sweep", "--snapshot-count", "100,1000", "--duration", "2", "--conns", "4",
         "--dir", str(tmp_path / "clusters"), "--plot", str(plot)],
        capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    header, *rows, last = out.stdout.splitlines()
    assert header.split() == [
        "system", "snapshot-count", "snapshots", "req/s", "p50", "ms", "p99", "ms", "p99.9",
        "ms", "max", "near", "snap", "ms", "max", "away", "ms", "RSS", "peak", "MiB", "PSS",
        "peak", "MiB", "WAL", "MiB", "snap", "MiB", "catch-up", "s", "by", "restart", "s",
        "errors"]
    assert [row.split()[:2] for row in rows] == [["petcd", "100"], ["petcd", "1,000"]]
    for row in rows:
        cells = row.split()
        # Every figure measured: the follower caught up (by log: it missed too few
        # entries for a snapshot), the restarted member answered, no request failed.
        # Only the longest latencies near and far from snapshots may be "-": at 100
        # snapshots come every fraction of a second, at 1,000 perhaps none in 2 s.
        assert all(re.fullmatch(NUMBER, c) for c in cells[1:7] + cells[9:14] + [cells[15]]), row
        assert all(re.fullmatch(NUMBER, c) or c == "-" for c in cells[7:9]), row
        assert cells[14] == "log" and cells[16] == "0", row
    snapshots = [int(row.split()[2]) for row in rows]
    assert snapshots[0] > snapshots[1], rows  # ten times the count: fewer snapshots
    assert last == f"plot: {plot}"
    data = plot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert _left_behind(tmp_path) == []
