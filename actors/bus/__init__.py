"""The bus: how a member's actors, and members, talk (ZeroMQ frames of msgpack).

- addresses: ipc inbox addresses from the run dir; tcp peer addresses from peer URLs.
- codec: Raft values (storage/raftstate.py, actors/raft/types.py) as positional
  msgpack arrays.
- envelope: one frame = msgpack [kind, payload]; the actors define the kinds.
- sockets: the process's context, Inbox (PULL) / Outbox (PUSH), their asyncio variant.
- peer: PeerTransport, ROUTER in / DEALER out per member, never blocking on a peer.
- bench: `python -m petcd.actors.bus.bench` prints codec and inbox figures.
"""
