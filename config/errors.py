"""ConfigError: bad configuration, told to the operator in one line.

The `petcd` entry point prints `str(error)` to stderr and exits with status 2, so the
message must stand alone: it names the flag (and where a value came from when that was
not the command line) and says what is wrong, in etcd's words where etcd has them.
"""

from __future__ import annotations

import json


def quote(text: str) -> str:
    """Quote like Go's %q, so that etcd users see the form they know, and so that a
    value holding a newline cannot break the one-line message."""
    return json.dumps(text, ensure_ascii=False)


class ConfigError(ValueError):
    """Bad configuration. `str()` is one line naming the flag and the problem."""

    def __init__(self, message: str) -> None:
        one_line = " ".join(message.split("\n"))
        assert one_line.strip(), "a ConfigError must say what is wrong"
        super().__init__(one_line)

    @classmethod
    def invalid(cls, flag: str, value: str, reason: str, origin: str = "") -> ConfigError:
        """etcd's (Go flag's) form: `invalid value "foo" for flag --x: reason`.

        `origin` is empty for the command line, else where the value came from
        (`PETCD_X`, `config file petcd.yml`), because a value the user did not type
        on this command line is the hardest kind to find.
        """
        where = f" (from {origin})" if origin else ""
        return cls(f"invalid value {quote(value)} for flag --{flag}{where}: {reason}")


class BadValue(ValueError):
    """A value parser's complaint about one value. The caller knows which flag the
    value belongs to and where it came from, and turns this into a ConfigError."""
