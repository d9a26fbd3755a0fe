"""petcd's Python client (grpcio) and petcdctl; see client.py."""

from petcd.client.client import Client
from petcd.client.errors import EtcdError

__all__ = ["Client", "EtcdError"]
