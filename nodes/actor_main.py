"""`python -m petcd.nodes.actor_main <actor>`: the body of one actor process.

The supervisor starts each actor as a plain interpreter (no multiprocessing: no
resource-tracker process, no re-import of the supervisor's modules) and writes the
pickled MemberContext to its standard input.
"""

from __future__ import annotations

import ctypes
import importlib
import pickle
import signal
import sys

from petcd.actors.protocol import ACTORS

_PR_SET_PDEATHSIG = 1


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
    sys.exit(module.run(ctx))


if __name__ == "__main__":
    main()
