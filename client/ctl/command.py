"""What every petcdctl command gets: its parsed flags, a client, a printer."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from petcd.client.client import Client
from petcd.client.ctl import printers
from petcd.client.ctl.flags import Flag, Parsed
from petcd.client.tls import TlsOptions

GLOBAL_FLAGS = [
    Flag("endpoints", "strings", ["127.0.0.1:2379"]),
    Flag("dial-timeout", "duration", 2.0),
    Flag("command-timeout", "duration", 5.0),
    Flag("write-out", "string", "simple", short="w"),
    Flag("hex", "bool", False),
    # etcdctl's transport security flags (client/tls.py says when they turn TLS on)
    Flag("cacert", "string", ""),
    Flag("cert", "string", ""),
    Flag("key", "string", ""),
    Flag("insecure-transport", "bool", True),
    Flag("insecure-skip-tls-verify", "bool", False),
]


@dataclass
class Context:
    parsed: Parsed  # global and command flags together
    printer: printers.Printer
    _clients: list[Client] = field(default_factory=list)

    def flag(self, name: str):
        return self.parsed.values[name]

    @property
    def args(self) -> tuple[str, ...]:
        return self.parsed.args

    @property
    def endpoints(self) -> list[str]:
        return list(self.flag("endpoints"))

    def client(self, endpoints: list[str] | None = None) -> Client:
        """A client on `endpoints` (default: --endpoints), closed when the command ends."""
        made = Client(endpoints or self.endpoints, dial_timeout_s=self.flag("dial-timeout"),
                      command_timeout_s=self.flag("command-timeout"), tls=self.tls())
        self._clients.append(made)
        return made

    def tls(self) -> TlsOptions:
        return TlsOptions(ca_file=self.flag("cacert"), cert_file=self.flag("cert"),
                          key_file=self.flag("key"),
                          insecure_transport=self.flag("insecure-transport"),
                          insecure_skip_verify=self.flag("insecure-skip-tls-verify"))

    def close(self) -> None:
        for made in self._clients:
            made.close()

    def stdout(self, text: str) -> None:
        sys.stdout.buffer.write(text.encode())

    def stderr(self, text: str) -> None:
        sys.stdout.buffer.flush()
        sys.stderr.write(text)
        sys.stderr.flush()


@dataclass(frozen=True, slots=True)
class Command:
    words: tuple[str, ...]  # e.g. ("endpoint", "status")
    flags: list[Flag]
    run: Callable[[Context], int | None]  # returns the exit code (None: 0)
