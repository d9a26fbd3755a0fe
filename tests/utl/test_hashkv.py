"""petcdutl hashkv: etcdutl's offline KV history hash, of a snapshot file or of a
member's store directory; a restored member's Maintenance.HashKV gives the same
(tests/utl/test_restore_history.py checks that one on a running member)."""

from __future__ import annotations

import json

from petcd.storage.mvcc import MvccStore, snapfile
from tests.utl.tools import petcdutl


def test_the_file_s_hash_in_etcdutl_s_formats(histories):
    as_json = petcdutl("hashkv", str(histories.path), "-w", "json")
    assert as_json.returncode == 0, as_json.stderr
    found = json.loads(as_json.stdout)
    assert (found["hashRevision"], found["compactRevision"]) == (
        histories.revision, histories.compact_revision)
    row = f"{found['hash']}, {histories.revision}, {histories.compact_revision}\n"
    assert petcdutl("hashkv", str(histories.path)).stdout == row
    fields = petcdutl("hashkv", str(histories.path), "-w", "fields").stdout
    assert fields == (f'"Hash" : {found["hash"]}\n"Hash revision" : {histories.revision}\n'
                      f'"Compact revision" : {histories.compact_revision}\n')
    older = json.loads(petcdutl("hashkv", str(histories.path), "--rev",
                                str(histories.compact_revision), "-w", "json").stdout)
    assert older["hashRevision"] == histories.compact_revision and older["hash"] != found["hash"]


def test_a_store_directory_hashes_as_the_file_it_was_made_from(histories, tmp_path):
    data_dir = tmp_path / "m1.petcd"
    assert petcdutl("snapshot", "restore", str(histories.path), "--data-dir",
                    str(data_dir)).returncode == 0
    store = data_dir / "member" / "snap" / "db"
    assert petcdutl("hashkv", str(store)).stdout == petcdutl("hashkv", str(histories.path)).stdout
    with MvccStore.open(str(store), readonly=True) as opened:
        assert opened.hash_kv().hash == snapfile.hash_kv(str(histories.path), 0).hash


def test_etcd_s_errors(histories, tmp_path):
    compacted = petcdutl("hashkv", str(histories.path), "--rev", str(histories.compact_revision - 1))
    assert (compacted.returncode, compacted.stderr) == (
        1, "Error: mvcc: required revision has been compacted\n")
    future = petcdutl("hashkv", str(histories.path), "--rev", str(histories.revision + 1))
    assert future.stderr == "Error: mvcc: required revision is a future revision\n"
    assert petcdutl("hashkv").stderr == "Error: accepts 1 arg(s), received 0\n"
    missing = petcdutl("hashkv", str(tmp_path / "nofile"))
    assert (missing.returncode, missing.stderr) == (
        1, f"Error: stat {tmp_path / 'nofile'}: no such file or directory\n")
    protobuf = petcdutl("hashkv", str(histories.path), "-w", "protobuf")
    assert (protobuf.returncode, protobuf.stderr) == (
        4, "Error: protobuf not supported as output format\n")
