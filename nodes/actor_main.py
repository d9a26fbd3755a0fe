"""`python -m petcd.nodes.actor_main <actor>`: the body of one actor process.

The supervisor starts each actor as a plain interpreter (no multiprocessing: no
resource-tracker process, no re-import of the supervisor's modules) and writes the
pickled MemberContext to its standard input.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import pickle
import signal
import sys

from petcd.actors.protocol import ACTORS

_PR_SET_PDEATHSIG = 1
# Actors allocate a few small objects per message and keep few cycles: the default
# (a young collection every 700 allocations) cost a 3-member cluster about 4% of its
# CPU per put and 6% of its throughput (petcd-bench put, 64 connections, back to back).
GC_THRESHOLDS = (50_000, 20, 100)


def main() -> None:
    name = sys.argv[1]
    assert name in ACTORS, name
    ctx = pickle.load(sys.stdin.buffer)
    sys.stdin.close()
    try:  # Linux: never outlive the supervisor (it may be SIGKILLed)
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass
    module = importlib.import_module(f"petcd.actors.{name}.actor")
    gc.freeze()  # what importing made lives as long as the process: never scan it
    gc.set_threshold(*GC_THRESHOLDS)
    sys.exit(module.run(ctx))


if __name__ == "__main__":
    main()
