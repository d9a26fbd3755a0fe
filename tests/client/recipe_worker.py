"""One process's part in a test of petcd.client.recipes, run by tests/client/test_recipes.py:

    python -m tests.client.recipe_worker ENDPOINTS COMMAND ARGS...

Each step is a line on stdout ("<what> <time.time()> ..."), flushed at once; a worker
that holds something (a barrier, a lock, a double barrier's entry) lets go when it
reads a line on stdin. Every wait is bounded by WAIT_S, so a bug ends the worker
with a nonzero exit instead of hanging the test.
"""

from __future__ import annotations

import sys
import time

from petcd.client import Client

WAIT_S = 20.0


def say(*words: object) -> None:
    print(*words, flush=True)


def produce(client: Client, prefix: str, name: str, count: str) -> None:
    queue = client.queue(prefix)
    for sequence in range(int(count)):
        queue.enqueue(f"{name} {sequence}")
    say("done", time.time())


def consume(client: Client, prefix: str) -> None:
    """Dequeue until the item "stop"; each item as "got <value>"."""
    queue = client.queue(prefix)
    while True:
        value = queue.dequeue(timeout_s=WAIT_S)
        if value is None:
            sys.exit("consume: the queue stayed empty")
        if value == b"stop":
            return
        say("got", value.decode())


def hold(client: Client, key: str) -> None:
    barrier = client.barrier(key)
    barrier.hold()
    say("held", time.time())
    sys.stdin.readline()
    say("releasing", time.time())
    barrier.release()


def wait(client: Client, key: str) -> None:
    say("waiting", time.time())
    if not client.barrier(key).wait(timeout_s=WAIT_S):
        sys.exit("wait: the barrier stayed up")
    say("passed", time.time())


def rwlock(client: Client, mode: str, name: str, ttl: str) -> None:
    with client.rwlock(name, ttl=int(ttl)) as rw:
        say("asking", time.time())
        taking = rw.read if mode == "read" else rw.write
        with taking(timeout_s=WAIT_S) as held:
            say("locked", time.time(), held.revision)
            sys.stdin.readline()
            say("unlocking", time.time())


def enter(client: Client, key: str, count: str, ttl: str) -> None:
    with client.double_barrier(key, int(count), ttl=int(ttl)) as barrier:
        say("entering", time.time())
        barrier.enter(timeout_s=WAIT_S)
        say("entered", time.time())
        sys.stdin.readline()
        say("leaving", time.time())
        barrier.leave(timeout_s=WAIT_S)
        say("left", time.time())


COMMANDS = {"produce": produce, "consume": consume, "hold": hold, "wait": wait,
            "rwlock": rwlock, "enter": enter}


def main(argv: list[str]) -> None:
    endpoints, command, *args = argv
    with Client(endpoints.split(",")) as client:
        COMMANDS[command](client, *args)


if __name__ == "__main__":
    main(sys.argv[1:])
