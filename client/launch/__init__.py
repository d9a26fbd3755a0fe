"""scripts/launch: from one cluster description to each member's files for a server.

description.py reads and checks the YAML description; render.py turns it into the
text of each file (petcd's YAML config, its PETCD_* environment file, a systemd unit,
and the backup script, service and timer); main.py writes them and prints what an
operator types on each server.

It lives beside petcdctl and petcdutl because it is a tool an operator runs, like
them, and it only reads config's flag table: no member process imports it.
"""
