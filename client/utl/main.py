"""petcdutl: etcdutl's commands that work on files, without a running member.

    petcdutl snapshot status FILE [-w simple|table|json|fields]
    petcdutl snapshot restore FILE [--data-dir --wal-dir --name --initial-cluster
        --initial-cluster-token --initial-advertise-peer-urls --skip-hash-check]

Messages and exit codes are etcdctl 3.4's (`etcdctl snapshot status`, which etcd
3.5 moved into etcdutl): `Error: <message>` on stderr, 128 for bad arguments, 1 for
a file that cannot be read.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from petcd.client.ctl import flags
from petcd.client.ctl.flags import EXIT_BAD_ARGS, EXIT_ERROR, CtlError, Flag
from petcd.client.utl import restore, status_output
from petcd.storage.mvcc import snapfile

GLOBAL_FLAGS = [Flag("write-out", "string", "simple", short="w")]

USAGE = ("NAME:\n\tpetcdutl - etcdutl's offline commands for petcd's files\n\n"
         "USAGE:\n\tpetcdutl [flags] <command> [args]\n\nCOMMANDS:\n"
         "\tsnapshot status\n\tsnapshot restore\n\nGLOBAL OPTIONS:\n"
         + "".join(f"      {f.label()}\n" for f in GLOBAL_FLAGS))


def snapshot_status(parsed: flags.Parsed) -> int:
    if len(parsed.args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "snapshot status requires exactly one argument")
    path = parsed.args[0]
    if not os.path.exists(path):
        raise CtlError(EXIT_ERROR, f"stat {path}: no such file or directory")
    render = status_output.formatter(str(parsed.values["write-out"]))  # etcdutl's order
    try:
        status = snapfile.status(path)
    except snapfile.SnapshotFileError as exc:
        raise CtlError(EXIT_ERROR, str(exc)) from None
    sys.stdout.write(render(status))
    return 0


# words -> (the command's own flags, its function)
COMMANDS: dict[tuple[str, ...], tuple[list[Flag], Callable[[flags.Parsed], int]]] = {
    ("snapshot", "status"): ([], snapshot_status),
    ("snapshot", "restore"): (restore.FLAGS, restore.snapshot_restore)}


def run(argv: list[str]) -> int:
    if {"-h", "--help", "help"} & set(argv[:1]):
        sys.stdout.write(USAGE)
        return 0
    # Global flags only before the words: a command's own (--name takes a value) are
    # known once the command is.
    words = flags.positionals(GLOBAL_FLAGS, argv)
    if tuple(words[:2]) not in COMMANDS:
        if words and words[0] != "snapshot":
            raise CtlError(EXIT_ERROR, f'unknown command "{words[0]}" for "petcdutl"')
        sys.stdout.write(USAGE)
        return 0
    command_flags, command = COMMANDS[tuple(words[:2])]
    parsed = flags.parse(GLOBAL_FLAGS + command_flags, argv)
    return command(flags.Parsed(parsed.values, parsed.given, parsed.args[2:]))


def main() -> None:
    try:
        code = run(sys.argv[1:])
    except CtlError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"Error: {exc.message}\n")
        code = exc.exit_code
    sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
