"""petcd: a distributed, reliable key-value store wire-compatible with etcd v3."""

__version__ = "0.1.0"
