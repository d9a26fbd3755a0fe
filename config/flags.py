"""The table of petcd's flags (etcd's names, defaults and help groups) and the argparse
parser built from it.

The table is the one place a flag is declared: the parser, the PETCD_<FLAG>
environment variables, the YAML keys and --help all come from it. Values stay text
until settings.py parses them, so that a bad value gets the same one-line ConfigError
whether it came from a flag, the environment or the config file.
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from .. import __version__

API_VERSION = "3.5"  # the etcd v3 API version petcd's wire protocol follows
ENV_PREFIX = "PETCD"
CONFIG_FILE_FLAG = "config-file"


@dataclass(frozen=True, slots=True)
class Flag:
    name: str     # etcd's flag name, without the leading dashes
    group: str    # --help section, as etcd's help groups its flags
    default: str | None  # as a user would type it; None = derived from other flags
    help: str
    shown_default: str = ""  # for --help when the default is derived
    boolean: bool = False  # as Go's bool flags: `--flag` alone means true

    def __post_init__(self) -> None:
        assert self.name == self.name.lower() and not self.name.startswith("-"), self.name
        assert self.default is not None or self.shown_default, f"{self.name}: say the derived default"
        assert not self.boolean or self.default in ("true", "false"), self.name

    @property
    def env_var(self) -> str:
        return env_var_for(self.name)


def env_var_for(flag_name: str) -> str:
    """etcd's rule (flags.FlagToEnv) with petcd's prefix: --initial-cluster -> PETCD_INITIAL_CLUSTER."""
    return f"{ENV_PREFIX}_{flag_name.upper().replace('-', '_')}"


MEMBER, CLUSTERING, SECURITY, AUTH, MONITORING, LOGGING, CONFIGURATION = (
    "Member", "Clustering", "Security", "Auth", "Profiling and monitoring", "Logging",
    "Configuration")

FLAGS: tuple[Flag, ...] = (
    Flag("name", MEMBER, "default", "Human-readable name for this member."),
    Flag("data-dir", MEMBER, None, "Path to the data directory.", shown_default="${name}.petcd"),
    Flag("wal-dir", MEMBER, "", "Path to the dedicated wal directory (empty: <data-dir>/member/wal)."),
    Flag("snapshot-count", MEMBER, "10000", "Number of committed transactions to trigger a snapshot to disk."),
    Flag("snapshot-catchup-entries", MEMBER, "5000",
         "Number of entries for a slow follower to catch up after compacting the raft storage entries."),
    Flag("heartbeat-interval", MEMBER, "100", "Time (in milliseconds) of a heartbeat interval."),
    Flag("election-timeout", MEMBER, "1000",
         "Time (in milliseconds) for an election to timeout. At least 5 times --heartbeat-interval, at most 50000."),
    Flag("listen-peer-urls", MEMBER, "http://localhost:2380", "List of URLs to listen on for peer traffic."),
    Flag("listen-client-urls", MEMBER, "http://localhost:2379",
         "List of URLs to listen on for client grpc traffic and http."),
    Flag("listen-client-http-urls", MEMBER, "",
         "List of URLs to listen on for http only client traffic. Enabling this flag removes http "
         "services from --listen-client-urls."),
    Flag("max-snapshots", MEMBER, "5", "Maximum number of snapshot files to retain (0 is unlimited)."),
    Flag("max-wals", MEMBER, "5", "Maximum number of wal files to retain (0 is unlimited)."),
    Flag("quota-backend-bytes", MEMBER, "0",
         "Raise alarms when backend size exceeds the given quota (0 defaults to 2 GiB)."),
    Flag("max-txn-ops", MEMBER, "128", "Maximum number of operations permitted in a transaction."),
    Flag("max-request-bytes", MEMBER, "1572864", "Maximum client request size in bytes the server will accept."),
    Flag("initial-advertise-peer-urls", CLUSTERING, "http://localhost:2380",
         "List of this member's peer URLs to advertise to the rest of the cluster."),
    Flag("initial-cluster", CLUSTERING, None, "Initial cluster configuration for bootstrapping.",
         shown_default="${name}=${initial-advertise-peer-urls}, i.e. default=http://localhost:2380"),
    Flag("initial-cluster-state", CLUSTERING, "new",
         "Initial cluster state ('new' when bootstrapping a new cluster or 'existing' when adding new "
         "members to an existing cluster). After successful initialization, flag is ignored on restarts."),
    Flag("initial-cluster-token", CLUSTERING, "etcd-cluster",
         "Initial cluster token for the cluster during bootstrap. Specifying this can protect you from "
         "unintended cross-cluster interaction when running multiple clusters."),
    Flag("strict-reconfig-check", CLUSTERING, "true", boolean=True, help=
         "Reject reconfiguration requests that would cause quorum loss."),
    Flag("max-learners", CLUSTERING, "1",
         "Sets the maximum number of learners that can be available in the cluster membership."),
    Flag("force-new-cluster", CLUSTERING, "false", boolean=True, help=
         "Force to create a new one member cluster (keeping the data: the recovery path after a lost quorum)."),
    Flag("discovery-endpoints", CLUSTERING, "",
         "V3 discovery: List of gRPC endpoints of the discovery service."),
    Flag("discovery-token", CLUSTERING, "",
         "V3 discovery: discovery token for the etcd cluster to be bootstrapped."),
    Flag("discovery-dial-timeout", CLUSTERING, "2s", "V3 discovery: dial timeout for client connections."),
    Flag("discovery-request-timeout", CLUSTERING, "5s",
         "V3 discovery: timeout for discovery requests (excluding dial timeout)."),
    Flag("experimental-initial-corrupt-check", CLUSTERING, "false", boolean=True, help=
         "Enable to check data corruption before serving any client/peer traffic."),
    Flag("experimental-corrupt-check-time", CLUSTERING, "0s",
         "Duration of time between cluster corruption check passes (0: off)."),
    Flag("advertise-client-urls", CLUSTERING, "http://localhost:2379",
         "List of this member's client URLs to advertise to the public. "
         "Required when --listen-client-urls is set."),
    Flag("auto-compaction-retention", CLUSTERING, "0",
         "Auto compaction retention length. 0 means disable auto compaction."),
    Flag("auto-compaction-mode", CLUSTERING, "periodic",
         "Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration based "
         "retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision' for revision "
         "number based retention."),
    Flag("experimental-watch-progress-notify-interval", CLUSTERING, "10m0s",
         "Duration of periodic watch progress notifications."),
    Flag("experimental-lease-checkpoint-interval", CLUSTERING, "5m0s",
         "Duration of periodic checkpoints of the leases' remaining TTLs (0: the default). "
         "Unlike etcd, checkpoints are always on."),
    Flag("cert-file", SECURITY, "", "Path to the client server TLS cert file."),
    Flag("key-file", SECURITY, "", "Path to the client server TLS key file."),
    Flag("client-cert-auth", SECURITY, "false", boolean=True,
         help="Enable client cert authentication."),
    Flag("trusted-ca-file", SECURITY, "", "Path to the client server TLS trusted CA cert file."),
    Flag("auto-tls", SECURITY, "false", boolean=True,
         help="Client TLS using generated certificates."),
    Flag("self-signed-cert-validity", SECURITY, "1",
         "The validity period of the client and peer certificates, unit is year."),
    Flag("peer-cert-file", SECURITY, "", "Path to the peer server TLS cert file."),
    Flag("peer-key-file", SECURITY, "", "Path to the peer server TLS key file."),
    Flag("peer-client-cert-auth", SECURITY, "false", boolean=True,
         help="Enable peer client cert authentication."),
    Flag("peer-trusted-ca-file", SECURITY, "", "Path to the peer server TLS trusted CA file."),
    Flag("peer-auto-tls", SECURITY, "false", boolean=True,
         help="Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file "
              "are not provided."),
    Flag("peer-cert-allowed-cn", SECURITY, "", "Required CN for client certs connecting to the peer endpoint."),
    Flag("peer-cert-allowed-hostname", SECURITY, "",
         "Allowed TLS hostname for client certs connecting to the peer endpoint."),
    Flag("cipher-suites", SECURITY, "",
         "Comma-separated list of supported TLS cipher suites between client/server and peers "
         "(empty will be auto-populated by Go)."),
    Flag("tls-min-version", SECURITY, "TLS1.2",
         "Minimum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3."),
    Flag("tls-max-version", SECURITY, "",
         "Maximum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3 (empty defers "
         "to Go)."),
    Flag("auth-token", AUTH, "simple",
         "Specify a v3 authentication token type and token specific options, especially for "
         "JWT. Its format is \"type,var1=val1,var2=val2,...\". Possible type is 'simple' or "
         "'jwt'. Possible variables are 'sign-method' for specifying a sign method of jwt (its "
         "possible values are 'ES256', 'ES384', 'ES512', 'HS256', 'HS384', 'HS512', 'RS256', "
         "'RS384', 'RS512', 'PS256', 'PS384', 'PS512', or 'EdDSA'), 'pub-key' for specifying a path to a "
         "public key for verifying jwt, 'priv-key' for specifying a path to a private key for "
         "signing jwt, and 'ttl' for specifying TTL of jwt tokens."),
    Flag("bcrypt-cost", AUTH, "10",
         "Specify the cost / strength of the bcrypt algorithm for hashing auth passwords. Valid "
         "values are between 4 and 31."),
    Flag("auth-token-ttl", AUTH, "300", "The lifetime in seconds of the auth token."),
    Flag("metrics", MONITORING, "basic",
         "Set level of detail for exported metrics, specify 'extensive' to include server side "
         "grpc histogram metrics."),
    Flag("listen-metrics-urls", MONITORING, "",
         "List of URLs to listen on for the metrics and health endpoints."),
    Flag("log-level", LOGGING, "info",
         "Configures log level. Only supports debug, info, warn, error, panic, or fatal."),
    Flag("log-format", LOGGING, "json", "Configures log format. Only supports json, console."),
    Flag(CONFIG_FILE_FLAG, CONFIGURATION, "",
         "Path to the server configuration file (YAML, keys are the flag names). Unlike etcd, flags and "
         "environment variables override its values."),
)

FLAGS_BY_NAME: dict[str, Flag] = {f.name: f for f in FLAGS}
GROUPS = (MEMBER, CLUSTERING, SECURITY, AUTH, MONITORING, LOGGING, CONFIGURATION)

_DESCRIPTION = "Start a petcd member: a key-value store wire-compatible with etcd v3."
_EPILOG = (
    "Every flag can also be set with an environment variable PETCD_<FLAG> "
    "(e.g. PETCD_INITIAL_CLUSTER) or as a key of the --config-file YAML file "
    "(e.g. initial-cluster:). Precedence: flag > environment > config file > default."
)


def version_text() -> str:
    """What `petcd --version` prints, in the shape of `etcd --version`."""
    return (
        f"petcd Version: {__version__}\n"
        f"API Version: {API_VERSION}\n"
        f"Python Version: {platform.python_version()}\n"
        f"Python OS/Arch: {sys.platform}/{platform.machine()}\n"
    )


class _VersionAction(argparse.Action):
    # argparse's own version action re-wraps text into one paragraph; these lines
    # must stay lines.
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="Print the version and exit.")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        sys.stdout.write(version_text())
        parser.exit(0)


def build_parser(prog: str = "petcd") -> argparse.ArgumentParser:
    """argparse parser for every flag. Values are left as text, and a flag that is not
    given is absent from the namespace (SUPPRESS), so that the caller can tell
    "not given" from "given the default"."""
    parser = argparse.ArgumentParser(
        prog=prog, usage="%(prog)s [flags]", description=_DESCRIPTION, epilog=_EPILOG,
        argument_default=argparse.SUPPRESS,
        allow_abbrev=False,  # Go's flag package has no abbreviations; --name must not match --name-x
    )
    parser.add_argument("--version", action=_VersionAction)
    groups = {g: parser.add_argument_group(f"{g} flags") for g in GROUPS}
    for flag in FLAGS:
        group = groups[flag.group]
        if flag.boolean:
            group.add_argument(f"--{flag.name}", dest=flag.name, metavar=_metavar(flag),
                               help=_help(flag), nargs="?", const="true")
        else:
            group.add_argument(f"--{flag.name}", dest=flag.name, metavar=_metavar(flag),
                               help=_help(flag))
    return parser


def _metavar(flag: Flag) -> str:
    return flag.name.rsplit("-", 1)[-1].upper()


def _help(flag: Flag) -> str:
    shown = flag.shown_default if flag.default is None else flag.default
    # argparse formats help with %-interpolation.
    return f"{flag.help} (default: '{shown}'; env {flag.env_var})".replace("%", "%%")
