"""petcd's configuration as an operator meets it: etcd's flags and defaults, PETCD_*
variables, the YAML config file, and one-line errors that exit with status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

import petcd
from petcd.config import (
    ConfigError, InitialMember, Url, load, load_or_exit, unknown_env_vars, verify_bootstrap,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "config" / "examples" / "petcd.conf.yml"
LOCAL_PEER = Url("http", "localhost", 2380)
LOCAL_CLIENT = Url("http", "localhost", 2379)


def load_args(*argv: str, env: dict[str, str] | None = None):
    return load(list(argv), env or {})


def error_of(*argv: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_args(*argv, env=env)
    return str(info.value)


@pytest.fixture
def config_file(tmp_path: Path):
    def write(text: str) -> str:
        path = tmp_path / "petcd.yml"
        path.write_text(text, encoding="utf-8")
        return str(path)
    return write


# --- Defaults: `petcd` with no flags is etcd's single local member ---------------------

def test_no_flags_gives_etcds_defaults():
    s = load_args()
    assert s.name == "default"
    assert s.data_dir == Path("default.petcd")
    assert s.wal_dir == Path("default.petcd/member/wal")
    assert s.snap_dir == Path("default.petcd/member/snap")
    assert s.listen_peer_urls == s.initial_advertise_peer_urls == (LOCAL_PEER,)
    assert s.listen_client_urls == s.advertise_client_urls == (LOCAL_CLIENT,)
    assert s.initial_cluster == (InitialMember("default", (LOCAL_PEER,)),)
    assert s.initial_cluster_token == "etcd-cluster"
    assert s.initial_cluster_state == "new"
    assert (s.snapshot_count, s.snapshot_catchup_entries) == (10000, 5000)
    assert (s.heartbeat_interval_ms, s.election_timeout_ms, s.election_ticks) == (100, 1000, 10)
    assert (s.max_snapshots, s.max_wals) == (5, 5)
    assert (s.max_request_bytes, s.max_txn_ops) == (1572864, 128)
    assert s.quota_backend_bytes == 2 * 1024**3
    assert s.auto_compaction_mode == "periodic"
    assert (s.auto_compaction_retention_seconds, s.auto_compaction_retention_revisions) == (0, 0)
    assert (s.log_level, s.log_format) == ("info", "json")
    assert s.config_file is None


def test_urls_print_as_typed():
    s = load_args()
    assert [str(u) for u in s.listen_client_urls] == ["http://localhost:2379"]
    assert str(s.initial_cluster[0].peer_urls[0]) == "http://localhost:2380"


def test_settings_are_frozen():
    s = load_args()
    with pytest.raises(AttributeError):
        s.name = "other"  # type: ignore[misc]


def test_name_alone_derives_data_dir_and_initial_cluster_as_etcd_does():
    s = load_args("--name", "infra1")
    assert s.data_dir == Path("infra1.petcd")
    assert s.initial_cluster == (InitialMember("infra1", (LOCAL_PEER,)),)


def test_initial_cluster_default_follows_advertised_peer_urls():
    s = load_args("--name", "a", "--initial-advertise-peer-urls", "http://10.0.0.1:2380,http://10.0.0.2:2380")
    assert s.initial_cluster == (
        InitialMember("a", (Url("http", "10.0.0.1", 2380), Url("http", "10.0.0.2", 2380))),
    )


def test_wal_dir_given_is_used_and_snap_dir_stays_under_data_dir():
    s = load_args("--data-dir", "/data/m1", "--wal-dir", "/fast/wal")
    assert (s.wal_dir, s.snap_dir) == (Path("/fast/wal"), Path("/data/m1/member/snap"))


def test_quota_backend_bytes_given_is_kept():
    assert load_args("--quota-backend-bytes", "8589934592").quota_backend_bytes == 8 * 1024**3


# --- Precedence: flag > PETCD_* env > config file > default ---------------------------

PRECEDENCE_CASES = [
    # flag, file value, env value, command-line value, how Settings shows each
    ("name", "from-file", "from-env", "from-flag", lambda s: s.name),
    ("snapshot-count", "20000", "30000", "40000", lambda s: str(s.snapshot_count)),
    ("heartbeat-interval", "150", "160", "170", lambda s: str(s.heartbeat_interval_ms)),
    ("log-level", "warn", "error", "debug", lambda s: s.log_level),
    ("initial-cluster-token", "file-token", "env-token", "flag-token", lambda s: s.initial_cluster_token),
    ("listen-peer-urls", "http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3",
     lambda s: str(s.listen_peer_urls[0])),
]
DEFAULTS = {"name": "default", "snapshot-count": "10000", "heartbeat-interval": "100", "log-level": "info",
            "initial-cluster-token": "etcd-cluster", "listen-peer-urls": "http://localhost:2380"}


@pytest.mark.parametrize("flag, file_value, env_value, flag_value, shown", PRECEDENCE_CASES,
                         ids=[c[0] for c in PRECEDENCE_CASES])
def test_precedence_flag_over_env_over_file_over_default(config_file, flag, file_value, env_value,
                                                         flag_value, shown):
    path = config_file(f"{flag}: {file_value}\n")
    env_var = "PETCD_" + flag.upper().replace("-", "_")
    assert shown(load_args()) == DEFAULTS[flag]
    assert shown(load_args("--config-file", path)) == file_value
    assert shown(load_args("--config-file", path, env={env_var: env_value})) == env_value
    assert shown(load_args("--config-file", path, f"--{flag}", flag_value, env={env_var: env_value})) == flag_value
    assert shown(load_args(f"--{flag}={flag_value}", env={env_var: env_value})) == flag_value


def test_config_file_can_be_named_by_env_and_flag_wins(config_file, tmp_path):
    from_env = config_file("name: env-named-file\n")
    other = tmp_path / "other.yml"
    other.write_text("name: flag-named-file\n")
    assert load_args(env={"PETCD_CONFIG_FILE": from_env}).name == "env-named-file"
    assert load_args("--config-file", str(other), env={"PETCD_CONFIG_FILE": from_env}).name == "flag-named-file"
    assert load_args(env={"PETCD_CONFIG_FILE": from_env}).config_file == Path(from_env)


def test_empty_env_var_counts_as_unset():
    assert load_args(env={"PETCD_NAME": ""}).name == "default"


def test_a_bad_value_that_is_overridden_does_not_matter():
    assert load_args("--snapshot-count", "5", env={"PETCD_SNAPSHOT_COUNT": "lots"}).snapshot_count == 5


def test_name_from_env_derives_data_dir_and_cluster():
    s = load_args(env={"PETCD_NAME": "m2"})
    assert s.data_dir == Path("m2.petcd") and s.initial_cluster[0].name == "m2"


def test_unknown_petcd_env_vars_are_reported_for_a_warning():
    env = {"PETCD_NAME": "a", "PETCD_SNAPSHOTCOUNT": "1", "PETCD_ENABLE_V2": "true", "HOME": "/"}
    assert unknown_env_vars(env) == ("PETCD_ENABLE_V2", "PETCD_SNAPSHOTCOUNT")


# --- Config file ----------------------------------------------------------------------

def test_yaml_numbers_lists_as_strings_and_empty_keys(config_file):
    path = config_file(
        "snapshot-count: 25000\n"
        "listen-client-urls: http://127.0.0.1:2379, http://10.0.0.1:2379\n"
        "advertise-client-urls: http://10.0.0.1:2379\n"
        "auto-compaction-retention: 2\n"
        "wal-dir:\n"
    )
    s = load_args("--config-file", path)
    assert s.snapshot_count == 25000
    assert [str(u) for u in s.listen_client_urls] == ["http://127.0.0.1:2379", "http://10.0.0.1:2379"]
    assert s.auto_compaction_retention_seconds == 2 * 3600  # a bare number means hours
    assert s.wal_dir == Path("default.petcd/member/wal")


def test_empty_config_file_sets_nothing(config_file):
    assert load_args("--config-file", config_file("# all commented out\n")).name == "default"


def test_example_config_loads_as_member_infra0():
    s = load_args("--config-file", str(EXAMPLE))
    assert s.name == "infra0"
    assert [m.name for m in s.initial_cluster] == ["infra0", "infra1", "infra2"]
    assert [str(m.peer_urls[0]) for m in s.initial_cluster] == [
        "http://10.0.1.10:2380", "http://10.0.1.11:2380", "http://10.0.1.12:2380"]
    assert s.initial_cluster_token == "petcd-cluster-1"
    assert s.data_dir == Path("/var/lib/petcd/infra0.petcd")
    assert s.quota_backend_bytes == 8 * 1024**3
    assert s.auto_compaction_retention_seconds == 3600
    assert s.config_file == EXAMPLE


def test_example_config_serves_the_other_members_with_their_own_lines():
    s = load_args("--config-file", str(EXAMPLE), "--name", "infra1",
                  "--listen-peer-urls", "http://10.0.1.11:2380",
                  "--initial-advertise-peer-urls", "http://10.0.1.11:2380",
                  "--advertise-client-urls", "http://10.0.1.11:2379")
    assert s.name == "infra1" and len(s.initial_cluster) == 3


# --- Parsed values --------------------------------------------------------------------

@pytest.mark.parametrize("retention, seconds", [
    ("0", 0), ("1h", 3600), ("30m", 1800), ("5s", 5), ("1h30m", 5400), ("1.5h", 5400),
    ("500ms", 0.5), ("5", 5 * 3600),
])
def test_periodic_retention_in_seconds(retention, seconds):
    s = load_args("--auto-compaction-retention", retention)
    assert s.auto_compaction_retention_seconds == pytest.approx(seconds)
    assert s.auto_compaction_retention_revisions == 0


def test_revision_retention_is_a_count():
    s = load_args("--auto-compaction-mode", "revision", "--auto-compaction-retention", "1000")
    assert (s.auto_compaction_retention_revisions, s.auto_compaction_retention_seconds) == (1000, 0)


def test_url_lists_trim_spaces_drop_repeats_and_keep_host_case():
    s = load_args("--initial-advertise-peer-urls", "HTTP://Node1:2380, http://[::1]:2380,http://Node1:2380",
                  "--initial-cluster", "default=http://Node1:2380,default=http://[::1]:2380")
    assert [str(u) for u in s.initial_advertise_peer_urls] == ["http://Node1:2380", "http://[::1]:2380"]


def test_a_name_repeated_in_initial_cluster_is_one_member_with_several_urls():
    # etcd's --initial-cluster form for a member with two peer URLs.
    s = load_args("--name", "a", "--initial-advertise-peer-urls", "http://10.0.0.2:2380,http://10.0.0.1:2380",
                  "--initial-cluster", "a=http://10.0.0.1:2380,b=http://10.0.0.3:2380,a=http://10.0.0.2:2380")
    assert s.initial_cluster == (
        InitialMember("a", (Url("http", "10.0.0.1", 2380), Url("http", "10.0.0.2", 2380))),
        InitialMember("b", (Url("http", "10.0.0.3", 2380),)),
    )


def test_https_urls_are_accepted():
    # With a certificate to serve, as etcd requires (tests/unit/test_client_tls.py).
    s = load_args("--listen-client-urls", "https://127.0.0.1:2379", "--advertise-client-urls", "https://h:2379",
                  "--auto-tls")
    assert s.advertise_client_urls == (Url("https", "h", 2379),)


# --- Errors: one line naming the flag, exit status 2 ------------------------------------

ERROR_CASES = [
    # (id, argv, env, the whole message)
    ("scheme", ["--listen-client-urls", "foo"], {},
     'invalid value "foo" for flag --listen-client-urls: URL scheme must be http or https: foo'),
    ("unix-scheme", ["--listen-peer-urls", "unix://petcd.sock"], {},
     'invalid value "unix://petcd.sock" for flag --listen-peer-urls: URL scheme must be http or https: '
     'unix://petcd.sock'),
    ("host-without-scheme", ["--advertise-client-urls", "10.0.0.1:2379"], {},
     'invalid value "10.0.0.1:2379" for flag --advertise-client-urls: URL scheme must be http or https: '
     '10.0.0.1:2379'),
    ("no-port", ["--initial-advertise-peer-urls", "http://10.0.0.1"], {},
     'invalid value "http://10.0.0.1" for flag --initial-advertise-peer-urls: '
     'URL address does not have the form "host:port": http://10.0.0.1'),
    ("bad-port", ["--listen-peer-urls", "http://127.0.0.1:99999"], {},
     'invalid value "http://127.0.0.1:99999" for flag --listen-peer-urls: '
     'URL address does not have the form "host:port": http://127.0.0.1:99999'),
    ("path", ["--advertise-client-urls", "http://10.0.0.1:2379/v3"], {},
     'invalid value "http://10.0.0.1:2379/v3" for flag --advertise-client-urls: '
     'URL must not contain a path: http://10.0.0.1:2379/v3'),
    ("trailing-slash", ["--initial-advertise-peer-urls", "http://localhost:2380/"], {},
     'invalid value "http://localhost:2380/" for flag --initial-advertise-peer-urls: '
     'URL must not contain a path: http://localhost:2380/'),
    ("bind-to-name", ["--listen-peer-urls", "http://example.com:2380"], {},
     'invalid value "http://example.com:2380" for flag --listen-peer-urls: '
     'expected IP in URL for binding (http://example.com:2380)'),
    ("empty-url-in-list", ["--listen-peer-urls", "http://127.0.0.1:2380,"], {},
     'invalid value "http://127.0.0.1:2380," for flag --listen-peer-urls: empty URL in comma-separated list'),
    ("name-not-in-cluster", ["--name", "x", "--initial-cluster", "default=http://localhost:2380"], {},
     "couldn't find local name \"x\" in the initial cluster configuration "
     "(--initial-cluster=default=http://localhost:2380)"),
    ("cluster-url-not-advertised",
     ["--name", "a", "--initial-cluster", "a=http://10.0.0.1:2380",
      "--initial-advertise-peer-urls", "http://10.0.0.2:2380"], {},
     "--initial-cluster has a=http://10.0.0.1:2380 but missing from "
     "--initial-advertise-peer-urls=http://10.0.0.2:2380"),
    ("advertised-url-not-in-cluster",
     ["--name", "a", "--initial-cluster", "a=http://10.0.0.1:2380",
      "--initial-advertise-peer-urls", "http://10.0.0.1:2380,http://10.0.0.2:2380"], {},
     "--initial-advertise-peer-urls has http://10.0.0.2:2380 but missing from "
     "--initial-cluster=a=http://10.0.0.1:2380"),
    ("duplicate-url", ["--initial-cluster", "default=http://localhost:2380,b=http://localhost:2380"], {},
     'invalid value "default=http://localhost:2380,b=http://localhost:2380" for flag --initial-cluster: '
     "initial cluster has duplicate url http://localhost:2380"),
    ("duplicate-entry", ["--initial-cluster", "default=http://localhost:2380,default=http://localhost:2380"], {},
     'invalid value "default=http://localhost:2380,default=http://localhost:2380" for flag --initial-cluster: '
     "initial cluster has duplicate url http://localhost:2380"),
    ("cluster-entry-without-name", ["--initial-cluster", "http://localhost:2380"], {},
     'invalid value "http://localhost:2380" for flag --initial-cluster: '
     'entry "http://localhost:2380" must have the form name=peer-url'),
    ("cluster-bad-url", ["--initial-cluster", "default=localhost:2380"], {},
     'invalid value "default=localhost:2380" for flag --initial-cluster: '
     "URL scheme must be http or https: localhost:2380"),
    ("empty-cluster", ["--initial-cluster", ""], {},
     'invalid value "" for flag --initial-cluster: initial cluster unset and no discovery URL found'),
    ("election-under-5-heartbeats", ["--heartbeat-interval", "300", "--election-timeout", "1000"], {},
     "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]"),
    ("election-too-long", ["--heartbeat-interval", "10000", "--election-timeout", "60000"], {},
     "--election-timeout[60000ms] is too long, and should be set less than 50000ms"),
    ("heartbeat-zero", ["--heartbeat-interval", "0"], {}, "--heartbeat-interval must be >0 (set to 0ms)"),
    ("election-zero", ["--election-timeout", "0"], {}, "--election-timeout must be >0 (set to 0ms)"),
    ("snapshot-count-zero", ["--snapshot-count", "0"], {},
     'invalid value "0" for flag --snapshot-count: must be greater than 0'),
    ("snapshot-count-negative", ["--snapshot-count", "-10"], {},
     'invalid value "-10" for flag --snapshot-count: must be greater than 0'),
    ("catchup-zero", ["--snapshot-catchup-entries", "0"], {},
     'invalid value "0" for flag --snapshot-catchup-entries: must be greater than 0'),
    ("cluster-state", ["--initial-cluster-state", "bogus"], {},
     'invalid value "bogus" for flag --initial-cluster-state: must be one of new, existing'),
    ("compaction-mode", ["--auto-compaction-mode", "daily"], {},
     'invalid value "daily" for flag --auto-compaction-mode: must be one of periodic, revision'),
    ("log-level", ["--log-level", "verbose"], {},
     'invalid value "verbose" for flag --log-level: must be one of debug, info, warn, error, panic, fatal'),
    ("log-format", ["--log-format", "text"], {},
     'invalid value "text" for flag --log-format: must be one of json, console'),
    ("enum-case", ["--initial-cluster-state", "New"], {},
     'invalid value "New" for flag --initial-cluster-state: must be one of new, existing'),
    ("not-an-integer", ["--snapshot-count", "1e4"], {},
     'invalid value "1e4" for flag --snapshot-count: must be an integer'),
    ("integer-with-unit", ["--heartbeat-interval", "100ms"], {},
     'invalid value "100ms" for flag --heartbeat-interval: must be an integer'),
    ("integer-with-underscore", ["--max-request-bytes", "1_572_864"], {},
     'invalid value "1_572_864" for flag --max-request-bytes: must be an integer'),
    ("max-txn-ops-zero", ["--max-txn-ops", "0"], {},
     'invalid value "0" for flag --max-txn-ops: must be greater than 0'),
    ("max-wals-negative", ["--max-wals", "-1"], {},
     'invalid value "-1" for flag --max-wals: must not be negative'),
    ("negative-quota", ["--quota-backend-bytes", "-1"], {},
     'invalid value "-1" for flag --quota-backend-bytes: must not be negative'),
    ("retention-bad-unit", ["--auto-compaction-retention", "1d"], {},
     'invalid value "1d" for flag --auto-compaction-retention: must be a duration such as "1h", "30m" or '
     '"5s", or a whole number of hours (with --auto-compaction-mode periodic)'),
    ("retention-negative", ["--auto-compaction-retention", "-1"], {},
     'invalid value "-1" for flag --auto-compaction-retention: must not be negative'),
    ("retention-revision-duration",
     ["--auto-compaction-mode", "revision", "--auto-compaction-retention", "1h"], {},
     'invalid value "1h" for flag --auto-compaction-retention: '
     "must be a whole number of revisions (with --auto-compaction-mode revision)"),
    ("listen-client-without-advertise", ["--listen-client-urls", "http://127.0.0.1:2379"], {},
     "--advertise-client-urls is required when --listen-client-urls is set explicitly"),
    ("empty-name", ["--name", ""], {}, 'invalid value "" for flag --name: must not be empty'),
    ("env-value", [], {"PETCD_SNAPSHOT_COUNT": "abc"},
     'invalid value "abc" for flag --snapshot-count (from PETCD_SNAPSHOT_COUNT): must be an integer'),
    ("env-url", [], {"PETCD_INITIAL_CLUSTER": "default=localhost:2380"},
     'invalid value "default=localhost:2380" for flag --initial-cluster (from PETCD_INITIAL_CLUSTER): '
     "URL scheme must be http or https: localhost:2380"),
    ("newline-in-value", ["--log-level", "info\nwarn"], {},
     'invalid value "info\\nwarn" for flag --log-level: must be one of debug, info, warn, error, panic, fatal'),
]


@pytest.mark.parametrize("argv, env, message", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_bad_configuration_raises_config_error_with_one_line(argv, env, message):
    assert error_of(*argv, env=env) == message
    assert "\n" not in message


@pytest.mark.parametrize("argv, env, message", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_load_or_exit_prints_the_line_and_exits_2(capsys, argv, env, message):
    with pytest.raises(SystemExit) as info:
        load_or_exit(argv, env)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"petcd: error: {message}\n")


@pytest.mark.parametrize("yaml_text, message_tail", [
    ("name: a\nenable-v2: true\n",
     'unknown key "enable-v2" (keys are petcd\'s flag names without dashes, e.g. data-dir)'),
    ("config-file: other.yml\n", 'key "config-file" is not allowed in a config file'),
])
def test_config_file_keys_must_be_flags(config_file, yaml_text, message_tail):
    path = config_file(yaml_text)
    assert error_of("--config-file", path) == f"config file {path}: {message_tail}"


@pytest.mark.parametrize("yaml_text, reason", [
    ("- name: a\n", "the file must hold a YAML mapping of flag names to values, not a list"),
    ("just a string\n", "the file must hold a YAML mapping of flag names to values, not a str"),
    ("name: a\n  bad: indent\n", "invalid YAML at line 2, column 6: mapping values are not allowed here"),
])
def test_config_file_must_be_a_yaml_mapping(config_file, yaml_text, reason):
    path = config_file(yaml_text)
    assert error_of("--config-file", path) == f'invalid value "{path}" for flag --config-file: {reason}'


def test_missing_config_file(tmp_path):
    path = str(tmp_path / "absent.yml")
    assert error_of("--config-file", path) == (
        f'invalid value "{path}" for flag --config-file: cannot read the config file: No such file or directory')
    assert error_of(env={"PETCD_CONFIG_FILE": path}) == (
        f'invalid value "{path}" for flag --config-file (from PETCD_CONFIG_FILE): '
        "cannot read the config file: No such file or directory")


@pytest.mark.parametrize("yaml_text, flag, shown_value, reason", [
    ("snapshot-count: many\n", "snapshot-count", "many", "must be an integer"),
    ("listen-peer-urls: [http://127.0.0.1:2380]\n", "listen-peer-urls", "['http://127.0.0.1:2380']",
     "expected a string or number, not a list (write lists as one comma-separated string, as etcd does)"),
    ("name: yes\n", "name", "true", "expected a string or number; quote it"),
])
def test_bad_values_in_the_config_file_name_the_file(config_file, yaml_text, flag, shown_value, reason):
    path = config_file(yaml_text)
    assert error_of("--config-file", path) == (
        f'invalid value "{shown_value}" for flag --{flag} (from config file {path}): {reason}')


def test_unknown_flag_is_argparses_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        load_args("--enable-v2")
    assert info.value.code == 2
    assert "unrecognized arguments: --enable-v2" in capsys.readouterr().err


def test_flags_are_not_abbreviated(capsys):
    with pytest.raises(SystemExit) as info:
        load_args("--heartbeat", "100")
    assert info.value.code == 2
    assert "unrecognized arguments: --heartbeat" in capsys.readouterr().err


@hypothesis_settings(max_examples=200, deadline=None)
@given(heartbeat_ms=st.integers(1, 20_000), election_ms=st.integers(1, 60_000))
def test_raft_timing_rule_is_etcds(heartbeat_ms, election_ms):
    argv = ["--heartbeat-interval", str(heartbeat_ms), "--election-timeout", str(election_ms)]
    if 5 * heartbeat_ms <= election_ms <= 50_000:
        assert load_args(*argv).election_timeout_ms == election_ms
    else:
        assert error_of(*argv).startswith("--election-timeout[")


def test_through_a_real_process_stderr_is_one_line_and_status_is_2():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETCD_")}
    result = subprocess.run(
        [sys.executable, "-c", "from petcd.config import load_or_exit; load_or_exit()",
         "--listen-client-urls", "foo"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        'petcd: error: invalid value "foo" for flag --listen-client-urls: URL scheme must be http or https: foo\n')


def test_through_a_real_process_env_vars_are_read():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETCD_")}
    env["PETCD_NAME"] = "from-env"
    result = subprocess.run(
        [sys.executable, "-c", "from petcd.config import load_or_exit; print(load_or_exit().data_dir)"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "from-env.petcd\n", "")


# --- Bootstrap checks happen only when bootstrapping, as in etcd -------------------------

def test_bootstrap_checks_can_wait_for_the_entry_point():
    stale = ["--name", "x", "--initial-cluster", "default=http://localhost:2380"]
    s = load(stale, {}, bootstrap_checks=False)  # a restart: membership comes from the WAL
    with pytest.raises(ConfigError, match="couldn't find local name"):
        verify_bootstrap(s)


def test_joining_an_existing_cluster_skips_the_advertise_match_but_needs_the_name():
    joining = ["--initial-cluster-state", "existing", "--name", "a",
               "--initial-advertise-peer-urls", "http://10.0.0.2:2380"]
    assert load_args(*joining, "--initial-cluster", "a=http://10.0.0.1:2380").initial_cluster_state == "existing"
    assert "couldn't find local name" in error_of(*joining, "--initial-cluster", "b=http://10.0.0.1:2380")


# --- --help and --version ---------------------------------------------------------------

EVERY_FLAG = [
    "--name", "--data-dir", "--wal-dir", "--listen-peer-urls", "--initial-advertise-peer-urls",
    "--listen-client-urls", "--advertise-client-urls", "--initial-cluster", "--initial-cluster-token",
    "--initial-cluster-state", "--snapshot-count", "--snapshot-catchup-entries", "--heartbeat-interval",
    "--election-timeout", "--max-snapshots", "--max-wals", "--max-request-bytes", "--max-txn-ops",
    "--quota-backend-bytes", "--auto-compaction-mode", "--auto-compaction-retention", "--log-level",
    "--log-format", "--config-file", "--version", "--help",
]


def run_and_capture(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as info:
        load_args(*argv)
    assert info.value.code == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def test_help_documents_every_flag_in_etcds_groups(capsys):
    out = run_and_capture(capsys, "--help")
    for flag in EVERY_FLAG:
        assert f"{flag} " in out or f"{flag}\n" in out or f"{flag}," in out, flag
    sections = ["Member flags:", "Clustering flags:", "Logging flags:"]
    assert all(s in out for s in sections)
    positions = [out.index(s) for s in sections]
    assert positions == sorted(positions)
    assert out.index("--name") > positions[0] and out.index("--initial-cluster-token") > positions[1]
    assert "PETCD_INITIAL_CLUSTER" in out and "'${name}.petcd'" in out and "'10000'" in out


def test_version_prints_etcd_style_lines(capsys):
    lines = run_and_capture(capsys, "--version").splitlines()
    assert lines[0] == f"petcd Version: {petcd.__version__}"
    assert lines[1] == "API Version: 3.5"
    assert lines[2] == f"Python Version: {'.'.join(map(str, sys.version_info[:3]))}"
