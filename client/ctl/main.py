"""petcdctl: etcdctl's v3 commands, flags, output formats and exit codes, for petcd
(or any etcd). `petcdctl --help` lists the commands.

Global flags (anywhere on the line, or as ETCDCTL_<FLAG> environment variables as in
etcdctl): --endpoints, --dial-timeout, --command-timeout, -w/--write-out, --hex,
--user name[:password], --password, and the transport security ones: --cacert, --cert,
--key, --insecure-transport, --insecure-skip-tls-verify (client/tls.py).
"""

from __future__ import annotations

import os
import sys

from petcd.client.ctl import (auth_commands, check_perf, cluster_commands,
                              concurrency_commands, flags, kv_commands, lease_commands,
                              member_commands, printers, watch_commands)
from petcd.client.ctl.command import GLOBAL_FLAGS, Command, Context
from petcd.client.ctl.flags import EXIT_ERROR, CtlError
from petcd.client.errors import EtcdError

COMMANDS: list[Command] = (kv_commands.COMMANDS + watch_commands.COMMANDS
                           + lease_commands.COMMANDS + concurrency_commands.COMMANDS
                           + cluster_commands.COMMANDS + member_commands.COMMANDS
                           + auth_commands.COMMANDS + check_perf.COMMANDS)


def usage() -> str:
    names = "\n".join("\t" + " ".join(c.words) for c in COMMANDS)
    return ("NAME:\n\tpetcdctl - etcdctl's v3 commands for petcd and etcd\n\n"
            "USAGE:\n\tpetcdctl [flags] <command> [args]\n\nCOMMANDS:\n" + names +
            "\n\nGLOBAL OPTIONS:\n" +
            "".join(f"      {f.label()}\n" for f in GLOBAL_FLAGS))


def _find(argv: list[str]) -> Command | None:
    """The command named by the first positionals; None for a bare group or no
    command, where etcdctl prints its help (exit 0)."""
    # Only global flags may come before the command's words; a command's own flag
    # (--prefix of get is a bool, of check perf a string) cannot be told apart yet.
    words = flags.positionals(GLOBAL_FLAGS, argv)
    for command in COMMANDS:
        if tuple(words[:len(command.words)]) == command.words:
            return command
    if not words or any(c.words[0] == words[0] for c in COMMANDS):
        return None
    raise CtlError(EXIT_ERROR, f'unknown command "{words[0]}" for "petcdctl"\n'
                               "Run 'petcdctl --help' for usage.")


def _drop_words(args: tuple[str, ...], words: tuple[str, ...]) -> tuple[str, ...]:
    rest = list(args)
    for word in words:
        rest.remove(word)  # the command's words are its first positionals
    return tuple(rest)


def _environment_defaults() -> list[flags.Flag]:
    """Global flags with ETCDCTL_<NAME> from the environment as their default."""
    out = []
    for flag in GLOBAL_FLAGS:
        text = os.environ.get("ETCDCTL_" + flag.name.upper().replace("-", "_"))
        if text is None:
            out.append(flag)
            continue
        default = flags.parse([flag], [f"--{flag.name}={text}"]).values[flag.name]
        out.append(flags.Flag(flag.name, flag.kind, default, flag.short))
    return out


def run(argv: list[str]) -> int:
    command = None if {"-h", "--help", "help"} & set(argv[:1]) else _find(argv)
    if command is None:
        sys.stdout.write(usage())
        return 0
    parsed = flags.parse(_environment_defaults() + command.flags, argv)
    parsed = flags.Parsed(parsed.values, parsed.given, _drop_words(parsed.args, command.words))
    printer = printers.make(parsed.values["write-out"], sys.stdout.buffer,
                            parsed.values["hex"])
    ctx = Context(parsed, printer)
    try:
        return command.run(ctx) or 0
    finally:
        ctx.close()


def main() -> None:
    try:
        code = run(sys.argv[1:])
    except CtlError as exc:
        code = _fail(exc.exit_code, exc.message)
    except EtcdError as exc:
        code = _fail(EXIT_ERROR, exc.message)
    except KeyboardInterrupt:
        code = _fail(flags.EXIT_INTERRUPTED, "interrupted")
    sys.stdout.flush()
    sys.exit(code)


def _fail(code: int, message: str) -> int:
    sys.stdout.flush()
    sys.stderr.write(f"Error: {message}\n")
    return code
