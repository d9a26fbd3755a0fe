"""petcdutl snapshot status on snapshots that petcdctl snapshot save took from a real
petcd member: the numbers are the member's, a damaged file is refused as etcd refuses
it (status reads the store; only restore checks the SHA-256 trailer)."""

from __future__ import annotations

import json

import pytest

from petcd.storage.mvcc import snapfile
from tests.utl.tools import petcdutl


def test_simple_json_fields_and_table_give_the_member_s_numbers(saved):
    path, revision, keys = saved
    size_bytes = path.stat().st_size - 32
    as_json = petcdutl("snapshot", "status", str(path), "-w", "json")
    assert as_json.returncode == 0, as_json.stderr
    status = json.loads(as_json.stdout)
    assert status["revision"] == revision and status["totalKey"] == keys
    assert status["totalSize"] == size_bytes and 0 <= status["hash"] < 1 << 32
    simple = petcdutl("snapshot", "status", str(path))
    assert simple.stdout.split(", ")[:3] == [f"{status['hash']:x}", str(revision), str(keys)]
    table = petcdutl("-w", "table", "snapshot", "status", str(path)).stdout.splitlines()
    assert table[1].split() == ["|", "HASH", "|", "REVISION", "|", "TOTAL", "KEYS", "|",
                                "TOTAL", "SIZE", "|"]
    assert [cell.strip() for cell in table[3].split("|")[1:4]] == [
        f"{status['hash']:x}", str(revision), str(keys)]
    fields = petcdutl("snapshot", "status", str(path), "-w", "fields").stdout
    assert f'"Revision" : {revision}\n"Keys" : {keys}\n' in fields


def test_a_file_without_its_trailer_is_read_but_restore_would_refuse_it(saved, tmp_path):
    path, revision, _ = saved
    bare = tmp_path / "bare.db"
    bare.write_bytes(path.read_bytes()[:-32])  # a data.mdb as copied out of a data dir
    status = json.loads(petcdutl("snapshot", "status", str(bare), "-w", "json").stdout)
    assert status["revision"] == revision
    with pytest.raises(snapfile.SnapshotFileError,
                       match="snapshot missing hash but --skip-hash-check=false"):
        snapfile.verify_trailer(str(bare))
    snapfile.verify_trailer(str(path))


def test_a_truncated_file_is_refused_with_exit_1(saved, tmp_path):
    path, _, _ = saved
    cut = tmp_path / "cut.db"
    cut.write_bytes(path.read_bytes()[:8192])
    done = petcdutl("snapshot", "status", str(cut))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("Error: ") and "file size too small" in done.stderr


def test_a_flipped_byte_changes_the_hash_and_fails_the_trailer_check(saved, tmp_path):
    path, _, _ = saved
    data = bytearray(path.read_bytes())
    data[data.index(b"value-7") + 6] ^= 0x01  # the value of key-7, in a history record
    flipped = tmp_path / "flipped.db"
    flipped.write_bytes(bytes(data))
    before = json.loads(petcdutl("snapshot", "status", str(path), "-w", "json").stdout)
    after = json.loads(petcdutl("snapshot", "status", str(flipped), "-w", "json").stdout)
    assert after["hash"] != before["hash"] and after["revision"] == before["revision"]
    with pytest.raises(snapfile.SnapshotFileError, match=r"^expected sha256 \[\d+( \d+)*\], got"):
        snapfile.verify_trailer(str(flipped))


def test_etcd_s_argument_errors_and_exit_codes(tmp_path):
    none = petcdutl("snapshot", "status")
    assert (none.returncode, none.stderr) == (
        128, "Error: snapshot status requires exactly one argument\n")
    restore_flag = petcdutl("snapshot", "status", "snap.db", "--name", "m1")
    assert (restore_flag.returncode, restore_flag.stderr) == (1, "Error: unknown flag: --name\n")
    missing = petcdutl("snapshot", "status", str(tmp_path / "nofile"))
    assert (missing.returncode, missing.stderr) == (
        1, f"Error: stat {tmp_path / 'nofile'}: no such file or directory\n")
    not_lmdb = tmp_path / "text.db"
    not_lmdb.write_text("not a store\n" * 1000)
    assert petcdutl("snapshot", "status", str(not_lmdb)).returncode == 1
    bad_format = petcdutl("snapshot", "status", str(not_lmdb), "-w", "protobuf")
    assert (bad_format.returncode, bad_format.stderr) == (
        4, "Error: protobuf not supported as output format\n")
