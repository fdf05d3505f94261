"""The ReadIndex queue: reads waiting for one heartbeat round to confirm leadership.

Raft dissertation section 6.4: the leader records its commit index when the read
arrives, proves it is still leader by hearing from a majority in a heartbeat round
carrying the request's context, and only then releases the read at that index.
Acks for a later request also confirm every earlier one (leadership at a later
moment implies leadership at the earlier one), so the queue is released in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raftkv.raft.messages import Message


@dataclass
class ReadIndexStatus:
    request: Message  # the READ_INDEX message (frm = the node that asked)
    index: int
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    def __init__(self) -> None:
        self.pending: dict[bytes, ReadIndexStatus] = {}
        self.queue: list[bytes] = []

    def add_request(self, index: int, m: Message) -> None:
        ctx = m.context
        if ctx in self.pending:
            return
        self.pending[ctx] = ReadIndexStatus(m, index)
        self.queue.append(ctx)

    def recv_ack(self, node: int, context: bytes) -> set[int] | None:
        status = self.pending.get(context)
        if status is None:
            return None
        status.acks.add(node)
        return status.acks

    def advance(self, context: bytes) -> list[ReadIndexStatus]:
        """Release every request up to and including `context`."""
        if context not in self.pending:
            return []
        released: list[ReadIndexStatus] = []
        while self.queue:
            ctx = self.queue.pop(0)
            released.append(self.pending.pop(ctx))
            if ctx == context:
                break
        return released

    def last_pending_context(self) -> bytes | None:
        return self.queue[-1] if self.queue else None

    def clear(self) -> None:
        self.pending.clear()
        self.queue.clear()
