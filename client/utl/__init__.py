"""petcdutl: etcdutl's offline commands on petcd's files (snapshot status, restore)."""
