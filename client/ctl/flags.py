"""Command-line flags parsed as etcdctl's (spf13/pflag) are: `--name=value`,
`--name value`, `-w json`, `-wjson`, booleans as `--prefix` or `--prefix=false`, flags
anywhere among the arguments, `--` ending them. Error texts are pflag's.
"""

from __future__ import annotations

from dataclasses import dataclass

from petcd.client.ctl import gofmt

# etcdctl's exit codes (etcdctl/ctlv3/command/error.go).
EXIT_ERROR = 1
EXIT_BAD_CONNECTION = 2
EXIT_INVALID_INPUT = 3
EXIT_BAD_FEATURE = 4
EXIT_INTERRUPTED = 5
EXIT_BAD_ARGS = 128


class CtlError(Exception):
    """Printed as `Error: <message>` on stderr; the process exits with `exit_code`."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message


@dataclass(frozen=True, slots=True)
class Flag:
    name: str
    kind: str  # bool, string, int, uint, duration or strings (comma-separated list)
    default: object
    short: str = ""

    def label(self) -> str:
        return f"-{self.short}, --{self.name}" if self.short else f"--{self.name}"


def _go_int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax') from None


def _go_uint(text: str) -> int:
    """pflag's Uint64: strconv.ParseUint(text, 0, 64), no sign allowed."""
    try:
        value = int(text, 0)
    except ValueError:
        value = -1
    if value < 0 or text.startswith(("+", "-")):
        raise ValueError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    if value >= 1 << 64:
        raise ValueError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


def _go_bool(text: str) -> bool:
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


_CONVERT = {"bool": _go_bool, "string": str, "int": _go_int, "uint": _go_uint,
            "duration": gofmt.parse_duration,
            "strings": lambda text: [part for part in text.split(",")]}


def _convert(flag: Flag, text: str):
    try:
        return _CONVERT[flag.kind](text)
    except ValueError as exc:
        raise CtlError(EXIT_ERROR, f'invalid argument "{text}" for "{flag.label()}" '
                                   f"flag: {exc}") from None


@dataclass(frozen=True, slots=True)
class Parsed:
    values: dict[str, object]
    given: frozenset[str]  # flags set on the command line
    args: tuple[str, ...]  # positional arguments, in order


def _lookup(flags: list[Flag], arg: str) -> tuple[Flag, str | None]:
    if arg.startswith("--"):
        name, eq, value = arg[2:].partition("=")
        for flag in flags:
            if flag.name == name:
                return flag, value if eq else None
        raise CtlError(EXIT_ERROR, f"unknown flag: --{name}")
    short, rest = arg[1], arg[2:]
    for flag in flags:
        if flag.short == short:
            return flag, (rest.removeprefix("=") if rest else None)
    raise CtlError(EXIT_ERROR, f"unknown shorthand flag: '{short}' in {arg}")


def parse(flags: list[Flag], argv: list[str]) -> Parsed:
    values = {flag.name: flag.default for flag in flags}
    given: set[str] = set()
    args: list[str] = []
    pending = list(argv)
    while pending:
        arg = pending.pop(0)
        if arg == "--":
            args.extend(pending)
            break
        if not arg.startswith("-") or arg == "-":
            args.append(arg)
            continue
        flag, text = _lookup(flags, arg)
        if text is None and flag.kind == "bool":
            text = "true"
        elif text is None:
            if not pending:
                raise CtlError(EXIT_ERROR, f"flag needs an argument: {arg}")
            text = pending.pop(0)
        value = _convert(flag, text)
        if flag.kind == "strings" and flag.name in given:
            value = values[flag.name] + value  # a repeated list flag appends
        values[flag.name] = value
        given.add(flag.name)
    return Parsed(values, frozenset(given), tuple(args))


def positionals(flags: list[Flag], argv: list[str]) -> list[str]:
    """The positional arguments, skipping flags and the values of those in `flags`
    that take one; used to find the command before its own flags are known."""
    out, pending = [], list(argv)
    while pending:
        arg = pending.pop(0)
        if arg == "--":
            return out + pending
        if not arg.startswith("-") or arg == "-":
            out.append(arg)
            continue
        known = [f for f in flags if arg in (f"--{f.name}", f"-{f.short}") and f.kind != "bool"]
        if known and "=" not in arg and pending:
            pending.pop(0)
    return out
